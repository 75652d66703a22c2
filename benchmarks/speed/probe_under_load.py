"""Does `--precision auto` choose right on a busy machine? The training probe timed by the wall
clock against the same probe timed by the process's CPU time, under a load this script makes.

A machine shared with other programs (a CI runner, a lab server) lends its cores by turns: a
call timed by the wall clock then also counts the time the process waited for a core, which
differs from call to call, and with one timed call per candidate that waiting can decide the
choice. With one torch thread the CPU time the process spent computing does not include the
waiting. `--load N` starts N busy processes (pure-Python loops; `--bursts`: in random spells, as other
programs' jobs come and go) beside the probes; then, for
each repeat, the probe runs once with each clock, in turn, and the script prints what each chose
and the times it measured. Which candidate is truly fastest comes from a quiet run of
benchmarks/speed/train_step.py on the same machine (docs/PERFORMANCE.md), not from this script.

    python benchmarks/speed/probe_under_load.py --size 128 --netG resnet_9blocks --load 2 --repeats 4 [--bursts]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import time
from collections import Counter
from pathlib import Path

import torch

import common
from cyclegan.config import TrainConfig
from cyclegan.training.arithmetic_probe import TrainingProbe
from cyclegan.training.trainer import Trainer
from cyclegan.tuning import candidates, probe

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def spin(stop_at: float, bursts: bool, seed: int) -> None:
    """Keep a core busy until `stop_at`; with `bursts`, in random spells of 0.5-4 s separated by
    pauses as long (other programs' jobs starting and ending), so the waiting varies between calls."""
    rng = random.Random(seed)
    while time.time() < stop_at:
        until = time.time() + (rng.uniform(0.5, 4.0) if bursts else stop_at)
        while time.time() < min(until, stop_at):
            pass
        if bursts:
            time.sleep(rng.uniform(0.5, 4.0))


def summary(results: list[dict]) -> list[str]:
    """Per clock: what the probes chose, and each candidate's time over the repeats (median, and
    the spread (max - min) / median: how much the clock's reading of one call varies)."""
    lines = []
    for name in CLOCKS:
        entries = [entry for entry in results if entry["clock"] == name]
        chosen = Counter(entry["chosen"] for entry in entries)
        lines.append(f"{name} clock chose: " + ", ".join(f"{label} {count}x" for label, count in chosen.most_common()))
        for label in entries[0]["seconds"] if entries else ():
            values = sorted(entry["seconds"][label] for entry in entries)
            median = statistics.median(values)
            lines.append(f"  {label:<12} median {median:.3f} s, spread {(values[-1] - values[0]) / median:.0%} "
                         f"over {len(values)} probes")
    return lines


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--netG", default="resnet_9blocks")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--load", type=int, default=2, help="Busy processes started beside the probes.")
    parser.add_argument("--bursts", action="store_true", help="The busy processes work in random spells.")
    parser.add_argument("--repeats", type=int, default=4, help="Probes per clock.")
    parser.add_argument("--budget", type=float, default=20.0, help="Each probe's budget in seconds (the trainer's).")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    common.set_threads(args.threads)
    device = torch.device("cpu")
    config = TrainConfig()
    config.model.net_g, config.model.ngf = args.netG, args.ngf
    config.data.crop_size = config.data.load_size = args.size
    options = candidates(device)
    print(common.describe_machine(common.machine_description(device)))
    print(f"probe of the training iteration, {args.netG}, {args.size}x{args.size}, budget {args.budget:g} s, "
          f"{args.load} busy processes beside it{' (in bursts)' if args.bursts else ''}; candidates: {', '.join(c.label for c in options)}", flush=True)
    # Long enough for every probe; the busy processes end by themselves if this script is killed.
    stop_at = time.time() + 60 * 60
    load = [multiprocessing.Process(target=spin, args=(stop_at, args.bursts, index), daemon=True)
            for index in range(args.load)]
    for process in load:
        process.start()
    results = []
    try:
        for repeat in range(args.repeats):
            for name, timer in CLOCKS.items():
                started = time.perf_counter()
                with TrainingProbe(config, Trainer, timer=timer) as measure:
                    result = probe(options, measure, args.budget, planned_iterations=None)
                seconds = ", ".join(f"{label} {value:.3g}" for label, value in result.seconds.items())
                print(f"repeat {repeat}, {name:>4} clock: chose {result.chosen.label:<10} after {result.rounds} "
                      f"round(s), {time.perf_counter() - started:.0f} s, load average {os.getloadavg()[0]:.1f}; "
                      f"{seconds}", flush=True)
                results.append({"repeat": repeat, "clock": name, "chosen": result.chosen.label,
                                "rounds": result.rounds, "seconds": result.seconds})
    finally:
        for process in load:
            process.terminate()
    print("\n".join(summary(results)))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
