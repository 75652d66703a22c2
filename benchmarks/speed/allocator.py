"""What glibc's malloc setting costs and saves in training: peak RSS and seconds per iteration of
the reference iteration and of the project's default Trainer step, each in a fresh process, under
glibc's default (adaptive) mmap threshold and under a fixed one (`MALLOC_MMAP_THRESHOLD_` in the
process's environment, which glibc applies as `mallopt(M_MMAP_THRESHOLD)` before the first
allocation), so every block of that size or more goes back to the system when freed. Each process
is train_step.py's memory probe, which also reports the seconds of each of its iterations.

Why it is a question: with the Winograd (NNPACK) convolutions the project's peak RSS is above the
reference's under glibc's default, and the fixed threshold removes that extra (docs/PERFORMANCE.md);
the price is page faults on every large allocation. Setting and kind run one after the other
(not alternated within a process, since the setting is process-wide), in the order given, so run
it on a quiet machine and repeat with `--rounds`.

    python benchmarks/speed/allocator.py --size 256 --iterations 4 --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import torch

import common
import train_step

SETTINGS = ("default", "fixed")
KINDS = (train_step.REFERENCE, "fp32")


def run_probe(args: argparse.Namespace, setting: str, kind: str) -> dict:
    """One fresh process: one malloc setting, one kind of iteration; its times and peak RSS."""
    step_args = train_step.parse_args(["--size", str(args.size), "--netG", args.netG, "--ngf", str(args.ngf),
                                       "--probe-iterations", str(args.iterations)])
    step_args.device, step_args.threads = torch.device("cpu"), args.threads
    env = {"MALLOC_MMAP_THRESHOLD_": str(args.threshold)} if setting == "fixed" else {}
    try:
        return common.peak_memory_in_subprocess(Path(train_step.__file__),
                                                train_step.probe_arguments(step_args, kind), env=env)
    except RuntimeError as error:
        raise SystemExit(f"probe {setting} {kind}: {error}") from error


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--netG", default="resnet_9blocks", choices=("resnet_9blocks", "resnet_6blocks"))
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=4,
                        help="Iterations per process; the first is left out of the median.")
    parser.add_argument("--rounds", type=int, default=1, help="Times the four processes run.")
    parser.add_argument("--threshold", type=int, default=1 << 20, help="The fixed mmap threshold, bytes.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    parser.add_argument("--json", default=None, help="Also write the results to this JSON file.")
    args = parser.parse_args(argv)
    if args.iterations < 2 or args.rounds < 1:
        parser.error("--iterations must be at least 2 (the first is a warm-up) and --rounds at least 1")
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        parser.error("unset MALLOC_MMAP_THRESHOLD_ first: the processes measuring glibc's default would inherit it")

    print(f"training iteration, {args.netG}, {args.size}x{args.size}, {args.iterations} iterations per "
          f"process, {args.rounds} round(s); fixed mmap threshold {args.threshold} bytes")
    results: dict[str, list[dict]] = {f"{setting} {kind}": [] for setting in SETTINGS for kind in KINDS}
    for _ in range(args.rounds):
        for setting in SETTINGS:
            for kind in KINDS:
                results[f"{setting} {kind}"].append(run_probe(args, setting, kind))

    def median_seconds(name: str) -> float:
        return statistics.median(t for probe_result in results[name] for t in probe_result["probe_times"][1:])

    def peak_mib(name: str) -> float:
        return statistics.median(probe_result["peak_rss"] for probe_result in results[name]) / 2**20

    reference_peak = peak_mib("default reference")
    print(f"\n{'malloc':8} {'iteration':10} {'s/iter':>8} {'vs default':>10} {'peak MiB':>9} {'peak/ref':>9}")
    for name in results:
        setting, kind = name.split()
        slower = median_seconds(name) / median_seconds(f"default {kind}")
        print(f"{setting:8} {kind:10} {median_seconds(name):8.2f} {slower:9.2f}x {peak_mib(name):9.0f} "
              f"{peak_mib(name) / reference_peak:9.2f}")
    print("s/iter: median over the iterations after each process's first; vs default: that time against the "
          "same iteration under glibc's default; peak/ref: peak RSS against the reference under the default")
    if args.json:
        Path(args.json).write_text(json.dumps({"benchmark": "allocator", "config": vars(args),
                                               "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
