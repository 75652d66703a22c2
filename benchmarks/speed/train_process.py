"""Whole training processes, start to exit: `cyclegan train` against a plain reference script.

A user feels the whole process, not one iteration: start-up (imports, dataset checks, model
building), data loading, logging and the final checkpoint count too. This script times short runs
of `python -m cyclegan train --max-iters N` and of `reference_train.py --iterations N` (the
reference code's train.py at small scale) at two iteration counts N1 < N2, in alternation, each in
a fresh process, and separates each program's cost into

    fixed cost      = the intercept: start-up, dataset scan, model build, final checkpoint (and for
                      the project its end-of-run plots and gallery)
    per-iteration   = the slope, (time at N2 - time at N1) / (N2 - N1)

in wall seconds and in CPU seconds (user + system of the child and its workers, from os.wait4;
steadier than wall time on a busy machine), with each child's peak RSS (ru_maxrss). Both programs
log every --log-every iterations, so the time from process start to the first logged iteration and
the time from the last one to exit (the final checkpoint) are read off too. It also times the
start-up alone (`import torch`, `cyclegan train --help`, ...) and lists, from `python -X importtime`,
which packages the start-up imports spend their time in. See README.md.

    python benchmarks/speed/train_process.py --size 128 --netG resnet_6blocks --ngf 32 --ndf 64 \
        --iterations 2,8 --repeats 3 --threads 1 --json process.json
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

import common

BENCHMARKS = Path(__file__).resolve().parent  # benchmarks/speed/, beside reference_train.py
ROOT = BENCHMARKS.parents[1]
SOURCE = ROOT / "src"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cityscapes"
PROJECT, REFERENCE = "project", "reference"
VARIANTS = (PROJECT, REFERENCE)
# The line each program prints once its data and networks are ready, just before the first iteration.
READY_MARKERS = {PROJECT: "precision:", REFERENCE: "---------- Networks initialized"}
REFERENCE_LOSS_PREFIX = "(epoch:"  # reference_train.py's loss lines; the project writes log.jsonl
IMPORT_COMMANDS = {
    # What `cyclegan train` imports before it reads any data: the parser of every subcommand, then
    # the trainer (the first Adam step adds torch._dynamo, the end-of-run plots matplotlib).
    PROJECT: ["-X", "importtime", "-c",
              "import cyclegan.cli, cyclegan.training.trainer; cyclegan.cli.build_parser()"],
    REFERENCE: ["-X", "importtime", str(BENCHMARKS / "reference_train.py"), "--help"],
}


def startup_probes() -> dict[str, list[str]]:
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import torch": [sys.executable, "-c", "import torch"],
        "import torch._dynamo": [sys.executable, "-c", "import torch._dynamo"],
        "cyclegan train --help": [sys.executable, "-m", "cyclegan", "train", "--help"],
        "reference_train.py --help": [sys.executable, str(BENCHMARKS / "reference_train.py"), "--help"],
    }


def child_environment(threads: int | None) -> dict[str, str]:
    """The children run this checkout's package (src/ first on PYTHONPATH), unbuffered, so that
    each printed line is timed when it is printed; with --threads, that many OpenMP threads."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE), os.environ.get("PYTHONPATH")]))
    if threads is not None:
        environment["OMP_NUM_THREADS"] = str(threads)
    return environment


def run_process(command: list[str], environment: dict[str, str], *, ready_marker: str | None = None,
                log_prefix: str | None = None, log_file: Path | None = None, timeout: float = 3600) -> dict:
    """Run `command` to its end and return its wall and CPU seconds, peak RSS and milestones.

    Milestones: `ready`, when a line starting with `ready_marker` was printed; `logs`, when each
    logged iteration appeared, either as a printed line starting with `log_prefix` or as a line of
    `log_file` (polled every 10 ms). Each is a pair [wall seconds since the start, CPU seconds the
    process had used by then (read from /proc when the milestone is seen; None elsewhere)].
    Raises RuntimeError with the end of the output if the command fails.
    """
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=environment)
    lines: list[tuple[list, str]] = []

    def read() -> None:
        for line in child.stdout:
            marked = line.startswith(tuple(filter(None, (ready_marker, log_prefix))))
            lines.append(([time.perf_counter() - started, cpu_seconds(child.pid) if marked else None], line))

    finished = threading.Event()
    growth: list[tuple[list, int]] = []  # ([seconds, CPU seconds], size) whenever log_file grew

    def watch() -> None:
        size = 0
        while not finished.is_set():
            try:
                current = log_file.stat().st_size
            except FileNotFoundError:
                current = 0
            if current > size:
                growth.append(([time.perf_counter() - started, cpu_seconds(child.pid)], current))
                size = current
            finished.wait(0.01)

    threads = [threading.Thread(target=read, daemon=True)]
    if log_file is not None:
        threads.append(threading.Thread(target=watch, daemon=True))
    for thread in threads:
        thread.start()
    killer = threading.Timer(timeout, child.kill)
    killer.start()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    killer.cancel()
    child.returncode = os.waitstatus_to_exitcode(status)
    finished.set()
    for thread in threads:
        thread.join()
    child.stdout.close()
    output = "".join(line for _, line in lines)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit {child.returncode}):\n{output[-3000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    ready = next((when for when, line in lines if ready_marker and line.startswith(ready_marker)), None)
    if log_file is not None:
        logs = line_times(log_file, growth, [wall, cpu])
    else:
        logs = [when for when, line in lines if log_prefix and line.startswith(log_prefix)]
    maxrss = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024  # Linux: KiB
    return {"wall": wall, "cpu": cpu, "peak_rss": maxrss, "ready": ready, "logs": logs, "output": output[-2000:]}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds that process `pid` has used so far (Linux /proc; else None)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


def line_times(path: Path, growth: list[tuple[list, int]], end: list) -> list[list]:
    """When each line of `path` was written: the first poll that saw the file reach that line's
    end (the process's end for a line written after the last poll)."""
    times = []
    if not path.exists():
        return times
    offset = 0
    for line in path.read_bytes().splitlines(keepends=True):
        offset += len(line)
        times.append(next((when for when, size in growth if size >= offset), end))
    return times


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def project_command(args: argparse.Namespace, iterations: int, runs_dir: Path, name: str) -> list[str]:
    return [sys.executable, "-m", "cyclegan", "train", "--data", str(args.data), "--max-iters", str(iterations),
            "--netG", args.netG, "--ngf", str(args.ngf), "--ndf", str(args.ndf),
            "--load-size", str(args.load_size), "--crop-size", str(args.size),
            "--num-workers", str(args.num_workers), "--seed", str(args.seed), "--device", args.device,
            "--log-every", str(args.log_every), "--no-progress",
            "--tensorboard" if args.tensorboard else "--no-tensorboard",
            "--runs-dir", str(runs_dir), "--name", name]


def reference_command(args: argparse.Namespace, iterations: int, out: Path) -> list[str]:
    return [sys.executable, str(BENCHMARKS / "reference_train.py"), "--dataroot", str(args.data),
            "--iterations", str(iterations), "--size", str(args.size), "--load-size", str(args.load_size),
            "--netG", args.netG, "--ngf", str(args.ngf), "--ndf", str(args.ndf), "--seed", str(args.seed),
            "--num-workers", str(args.num_workers), "--print-freq", str(args.log_every), "--device", args.device,
            "--out", str(out)]


def run_training(variant: str, iterations: int, args: argparse.Namespace, workdir: Path,
                 environment: dict[str, str]) -> dict:
    """One whole training process; its output folder is measured, then deleted."""
    name = f"{variant}-{iterations}-{time.monotonic_ns()}"
    if variant == PROJECT:
        out = workdir / "runs" / name
        result = run_process(project_command(args, iterations, workdir / "runs", name), environment,
                             ready_marker=READY_MARKERS[PROJECT], log_file=out / "log.jsonl")
    else:
        out = workdir / name
        result = run_process(reference_command(args, iterations, out), environment,
                             ready_marker=READY_MARKERS[REFERENCE], log_prefix=REFERENCE_LOSS_PREFIX)
    result["output_bytes"] = folder_bytes(out)
    shutil.rmtree(out, ignore_errors=True)
    return result


def fit_line(n1: int, t1: float, n2: int, t2: float) -> dict:
    """The straight line through (n1, t1) and (n2, t2): its intercept (the fixed cost) and slope."""
    per_iteration = (t2 - t1) / (n2 - n1)
    return {"fixed": t1 - n1 * per_iteration, "per_iteration": per_iteration}


def median_or_none(values: list) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def milestones(results: list[dict]) -> dict:
    """Medians of when a program was ready, when it logged its first iteration, and how long it
    took from its last logged iteration to its exit, each as {"wall": s, "cpu": s} (None where
    not seen). They do not depend on the iteration count, so runs of both counts are pooled."""
    picks = {
        "ready": lambda r: r["ready"],
        "first_iteration": lambda r: r["logs"][0] if r["logs"] else None,
        "end": lambda r: ([r["wall"] - r["logs"][-1][0],
                           None if r["logs"][-1][1] is None else r["cpu"] - r["logs"][-1][1]]
                          if r["logs"] else None),
    }
    summary = {}
    for name, pick in picks.items():
        values = [pick(result) for result in results]
        summary[name] = {measure: median_or_none([v[index] if v else None for v in values])
                         for index, measure in enumerate(("wall", "cpu"))}
    return summary


def analyse(runs: dict[str, dict[int, list[dict]]], iterations: tuple[int, int]) -> dict:
    """Per program: summaries at each iteration count, its milestones, and the fixed/per-iteration
    split from the medians and from each round (the runs of one round ran back to back); then the
    project/reference ratios. `runs[program][n]` lists run_process's results in round order."""
    n1, n2 = iterations
    variants = {}
    for variant, by_count in runs.items():
        counts = {}
        for n, results in by_count.items():
            counts[str(n)] = {
                "wall": common.summary_dict(common.summarize([r["wall"] for r in results])),
                "cpu": common.summary_dict(common.summarize([r["cpu"] for r in results])),
                "peak_rss": statistics.median(r["peak_rss"] for r in results),
                "logged_iterations": [len(r["logs"]) for r in results],
                "output_bytes": statistics.median(r.get("output_bytes", 0) for r in results),
            }
        fit = {}
        for measure in ("wall", "cpu"):
            line = fit_line(n1, counts[str(n1)][measure]["median"], n2, counts[str(n2)][measure]["median"])
            per_round = [fit_line(n1, first[measure], n2, second[measure])
                         for first, second in zip(by_count[n1], by_count[n2])]
            fit[measure] = {**line, "per_round": per_round}
        variants[variant] = {"iterations": counts, "fit": fit,
                             "milestones": milestones([r for results in by_count.values() for r in results]),
                             "peak_rss": max(counts[str(n)]["peak_rss"] for n in iterations)}
    ratios = {}
    if PROJECT in variants and REFERENCE in variants:
        project, reference = variants[PROJECT], variants[REFERENCE]
        for measure in ("wall", "cpu"):
            for n in iterations:
                ratios[f"{measure}_{n}"] = (project["iterations"][str(n)][measure]["median"]
                                            / reference["iterations"][str(n)][measure]["median"])
            for part in ("fixed", "per_iteration"):
                ratios[f"{part}_{measure}"] = project["fit"][measure][part] / reference["fit"][measure][part]
            for name in ("ready", "first_iteration", "end"):
                mine, theirs = project["milestones"][name][measure], reference["milestones"][name][measure]
                ratios[f"{name}_{measure}"] = mine / theirs if mine is not None and theirs else None
        ratios["peak_rss"] = project["peak_rss"] / reference["peak_rss"]
    return {"variants": variants, "ratios": ratios}


def import_breakdown(command: list[str], environment: dict[str, str], top: int = 8) -> dict:
    """`python -X importtime ...`: where the imports' time goes, per top-level package."""
    result = subprocess.run([sys.executable, *command], capture_output=True, text=True, env=environment)
    by_package = imports_by_package(result.stderr)
    return {"command": " ".join(["python", *command]), "total": sum(by_package.values()),
            "by_package": by_package, "top": list(by_package.items())[:top]}


def imports_by_package(importtime: str) -> dict[str, float]:
    """Seconds of `-X importtime` output summed per top-level package, from each module's own
    (self) time, so that nothing is counted twice; largest first."""
    by_package: dict[str, float] = {}
    for line in importtime.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # not an import line, or the header
        package = fields[2].strip().split(".")[0]
        by_package[package] = by_package.get(package, 0.0) + int(fields[0]) / 1e6
    return dict(sorted(by_package.items(), key=lambda item: -item[1]))


def measure_startup(args: argparse.Namespace, environment: dict[str, str]) -> dict:
    """Each start-up probe `--repeats` times in alternation (one untimed round first), then the
    import breakdown of both programs."""
    results: dict[str, list[dict]] = {}
    probes = startup_probes()

    def probe(name: str):
        return lambda: results.setdefault(name, []).append(run_process(probes[name], environment))

    common.alternate({name: probe(name) for name in probes}, args.repeats, warmup=1)
    summary = {}
    for name, runs in results.items():
        timed = runs[1:]  # the first was the warm-up
        summary[name] = {"wall": common.summary_dict(common.summarize([r["wall"] for r in timed])),
                         "cpu": common.summary_dict(common.summarize([r["cpu"] for r in timed])),
                         "times": [r["wall"] for r in timed], "cpu_times": [r["cpu"] for r in timed],
                         "command": " ".join(probes[name])}
    imports = {variant: import_breakdown(command, environment) for variant, command in IMPORT_COMMANDS.items()}
    return {"probes": summary, "imports": imports}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None,
                        help=f"Dataset with trainA/ and trainB/ (default: {DEFAULT_DATA}).")
    parser.add_argument("--iterations", default="2,12", help="The two iteration counts N1,N2 (N1 < N2).")
    parser.add_argument("--size", type=int, default=128, help="Crop size.")
    parser.add_argument("--load-size", type=int, default=None, help="Resize size (default: size x 286/256).")
    parser.add_argument("--netG", default="resnet_6blocks",
                        choices=("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128"))
    parser.add_argument("--ngf", type=int, default=32)
    parser.add_argument("--ndf", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-workers", type=int, default=0,
                        help="DataLoader workers of both programs (the reference's default is 4, the project's 2; "
                             "0, the default here, loads in the training process for both).")
    parser.add_argument("--log-every", type=int, default=1,
                        help="Both programs log the losses every this many iterations (1: the first logged "
                             "iteration is the first iteration).")
    parser.add_argument("--tensorboard", action="store_true",
                        help="Let the project log to TensorBoard too (when installed); off by default.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs per program and iteration count.")
    parser.add_argument("--warmup", type=int, default=0, help="Untimed runs per program and iteration count.")
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP_NUM_THREADS of every child (default: inherited, i.e. torch's choice).")
    parser.add_argument("--device", default="cpu", help="Device of both programs (cpu, cuda, ...).")
    parser.add_argument("--startup", action=argparse.BooleanOptionalAction, default=True,
                        help="Also time the start-up probes and list the start-up imports.")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="Where the runs write (each run's folder is deleted once measured; default: a "
                             "temporary folder).")
    parser.add_argument("--json", default=None, help="Also write the results to this JSON file.")
    args = parser.parse_args(argv)
    try:
        counts = tuple(int(text) for text in args.iterations.split(","))
    except ValueError:
        counts = ()
    if len(counts) != 2 or not 1 <= counts[0] < counts[1]:
        parser.error(f"--iterations takes two counts N1,N2 with 1 <= N1 < N2, got {args.iterations!r}")
    args.counts = counts
    common.check_counts(parser, {"--repeats": args.repeats, "--log-every": args.log_every}, args.warmup)
    if args.data is None:
        if not DEFAULT_DATA.is_dir():
            parser.error(f"the default dataset {DEFAULT_DATA} is absent (see ../shared/data/README.md); "
                         "pass --data DIR with trainA/ and trainB/, e.g. one made by `cyclegan data synth DIR`")
        args.data = DEFAULT_DATA
    missing = [name for name in ("trainA", "trainB") if not (args.data / name).is_dir()]
    if missing:
        parser.error(f"{args.data} has no {' or '.join(missing)}/ folder")
    if args.load_size is None:
        args.load_size = round(args.size * 286 / 256)
    return args


def print_report(args: argparse.Namespace, analysis: dict, startup: dict | None) -> None:
    variants, ratios = analysis["variants"], analysis["ratios"]
    n1, n2 = args.counts
    rows = []
    for variant, result in variants.items():
        for n in args.counts:
            c = result["iterations"][str(n)]
            wall, cpu = c["wall"], c["cpu"]
            rows.append([variant, str(n), common.seconds(wall["median"]), common.seconds(wall["iqr"]),
                         f"{common.seconds(wall['min'])}-{common.seconds(wall['max'])}",
                         common.seconds(cpu["median"]), common.seconds(cpu["iqr"]),
                         common.megabytes(c["peak_rss"]), common.megabytes(c["output_bytes"])])
    print()
    print(common.format_table(["program", "iters", "wall s", "IQR", "min-max", "CPU s", "CPU IQR", "peak MiB",
                               "written MiB"], rows))

    rows = []
    for variant, result in variants.items():
        wall, cpu = result["fit"]["wall"], result["fit"]["cpu"]
        rows.append([variant, common.seconds(wall["fixed"]), value_range([r["fixed"] for r in wall["per_round"]]),
                     common.seconds(wall["per_iteration"]),
                     value_range([r["per_iteration"] for r in wall["per_round"]]),
                     common.seconds(cpu["fixed"]), value_range([r["fixed"] for r in cpu["per_round"]]),
                     common.seconds(cpu["per_iteration"]), value_range([r["per_iteration"] for r in cpu["per_round"]]),
                     common.megabytes(result["peak_rss"])])
    if ratios:
        rows.append(["project/ref", ratio(ratios["fixed_wall"]), "", ratio(ratios["per_iteration_wall"]), "",
                     ratio(ratios["fixed_cpu"]), "", ratio(ratios["per_iteration_cpu"]), "", ratio(ratios["peak_rss"])])
    print()
    print(common.format_table(["program", "fixed s", "per round", "s/iter", "per round", "fixed CPU s", "per round",
                               "CPU s/iter", "per round", "peak MiB"], rows))
    print(f"fixed (the intercept) and s/iter (the slope) of the line through the medians at {n1} and {n2} "
          "iterations; 'per round': the same from each round's two runs (min-max)")

    rows = []
    for variant, result in variants.items():
        row = [variant]
        for name in ("ready", "first_iteration", "end"):
            row += [optional_seconds(result["milestones"][name]["wall"]),
                    optional_seconds(result["milestones"][name]["cpu"])]
        rows.append(row)
    if ratios:
        rows.append(["project/ref"] + [ratio(ratios[f"{name}_{measure}"]) for name in ("ready", "first_iteration", "end")
                                       for measure in ("wall", "cpu")])
    print()
    print(common.format_table(["program", "ready s", "CPU s", "1st iter s", "CPU s", "end s", "CPU s"], rows))
    print("medians over all runs, from process start: ready = data and networks built (the project's "
          "'precision:' line, the reference's 'Networks initialized'); 1st iter = first iteration logged; "
          "end = from the last logged iteration to exit (final checkpoint; the project's plots and gallery)")
    if ratios:
        print("project/reference, whole process: " + "; ".join(
            f"{n} iterations {ratios[f'wall_{n}']:.2f}x wall, {ratios[f'cpu_{n}']:.2f}x CPU" for n in args.counts))

    if startup:
        rows = [[name, common.seconds(p["wall"]["median"]), common.seconds(p["wall"]["iqr"]),
                 common.seconds(p["cpu"]["median"]), common.seconds(p["cpu"]["iqr"])]
                for name, p in startup["probes"].items()]
        print()
        print(common.format_table(["start-up probe", "wall s", "IQR", "CPU s", "CPU IQR"], rows))
        for variant, imports in startup["imports"].items():
            top = ", ".join(f"{package} {seconds:.2f}" for package, seconds in imports["top"])
            print(f"imports, {variant} ({imports['command']}): {imports['total']:.2f} s; by package: {top}")


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def optional_seconds(value: float | None) -> str:
    return "-" if value is None else common.seconds(value)


def value_range(values: list[float]) -> str:
    return f"{common.seconds(min(values))}-{common.seconds(max(values))}"


def main(argv=None) -> int:
    args = parse_args(argv)
    common.set_threads(args.threads)
    n1, n2 = args.counts
    print(f"whole training processes, {args.netG}, {args.size}x{args.size} (load {args.load_size}), ngf {args.ngf}, "
          f"ndf {args.ndf}, {args.num_workers} data workers, log every {args.log_every}, on {args.data}; "
          f"{n1} and {n2} iterations, {args.repeats} timed runs each, alternating")
    machine = common.announce(torch.device(args.device), [])
    environment = child_environment(args.threads)

    startup = measure_startup(args, environment) if args.startup else None
    runs: dict[str, dict[int, list[dict]]] = {variant: {n: [] for n in args.counts} for variant in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench-process-", dir=args.workdir) as tmp:
        def training(variant: str, n: int):
            return lambda: runs[variant][n].append(run_training(variant, n, args, Path(tmp), environment))

        steps = {f"{variant} {n}": training(variant, n) for n in args.counts for variant in VARIANTS}
        common.alternate(steps, args.repeats, args.warmup)
    for by_count in runs.values():
        for n in by_count:
            del by_count[n][:args.warmup]

    analysis = analyse(runs, args.counts)
    print_report(args, analysis, startup)
    # A child's ru_maxrss is at least this process's peak RSS (Linux carries it over fork and exec),
    # so a child peak at or below it would be this process's, not the child's.
    parent_peak = common.peak_rss_bytes()
    if any(run["peak_rss"] <= parent_peak for by_count in runs.values() for results in by_count.values()
           for run in results):
        print(f"warning: a child's peak RSS is not above this process's ({common.megabytes(parent_peak)} MiB), "
              "which it inherits as a floor: that peak is unknown")
    if args.json:
        common.write_json(args.json, {
            "benchmark": "train_process", "machine": machine,
            "config": {"data": str(args.data), "iterations": list(args.counts), "size": args.size,
                       "load_size": args.load_size, "netG": args.netG, "ngf": args.ngf, "ndf": args.ndf,
                       "seed": args.seed, "num_workers": args.num_workers, "log_every": args.log_every,
                       "tensorboard": args.tensorboard, "repeats": args.repeats, "warmup": args.warmup,
                       "threads": args.threads, "device": args.device},
            "commands": {PROJECT: project_command(args, n2, Path("RUNS"), "NAME"),
                         REFERENCE: reference_command(args, n2, Path("OUT"))},
            "parent_peak_rss": parent_peak,
            "runs": {variant: {str(n): results for n, results in by_count.items()} for variant, by_count in runs.items()},
            **analysis,
            "startup": startup,
        })
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
