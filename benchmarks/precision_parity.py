"""Does bf16 training give the same results as float32? Loss curves and scores over several seeds.

For every seed, `cyclegan experiment precision` trains the same model twice, with
`--precision fp32` and `--precision bf16`, for the same number of iterations, and evaluates both.
This script runs those experiments (several at once with --parallel, which suits a GPU: small
models leave it mostly idle) and then compares the two precisions against the run-to-run noise:
for every score, and for every loss term averaged over the last quarter of training, it reports
the mean and standard deviation over seeds of each precision, the difference of the means and
that difference in units of its standard error. "within noise" means |difference| <= 2 standard
errors. It writes parity.md, parity.json and loss_curves.png into --out.

    python benchmarks/precision_parity.py --data experiments/synth64 --out experiments/precision_synth64 \\
        --iters 2000 --seeds 0,1,2 --parallel 3 --eval-flags=--no-fid -- --netG resnet_6blocks --ngf 16 \\
        --ndf 16 --load-size 72 --crop-size 64 --lambda-identity 0 --no-tensorboard
    python benchmarks/precision_parity.py --out experiments/precision_synth64 --summarize   # tables again
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PRECISIONS = ("fp32", "bf16")
# The scores compared, as flattened by `cyclegan experiment` (results.csv columns); absent ones
# (e.g. FID with --no-fid, segmentation on a set without labels) are left out of the table.
SCORES = (
    "segmentation.photo_to_labels.pixel_accuracy", "segmentation.photo_to_labels.class_accuracy",
    "segmentation.photo_to_labels.class_iou", "segmentation.labels_to_photo.pixel_accuracy",
    "segmentation.labels_to_photo.class_accuracy", "segmentation.labels_to_photo.class_iou",
    "directions.AtoB.fid", "directions.BtoA.fid", "directions.AtoB.cycle_l1", "directions.BtoA.cycle_l1",
    "directions.AtoB.psnr", "directions.BtoA.psnr", "directions.AtoB.ssim", "directions.BtoA.ssim",
)
LOSSES = ("loss_G_AB", "loss_G_BA", "loss_cycle_A", "loss_cycle_B", "loss_idt_A", "loss_idt_B",
          "loss_D_A", "loss_D_B", "acc_D_A", "acc_D_B")


def seed_dir(out: Path, seed: int) -> Path:
    return out / f"seed_{seed}"


def experiment_command(args: argparse.Namespace, seed: int) -> list[str]:
    command = [sys.executable, "-m", "cyclegan", "experiment", "precision", "--data", str(args.data),
               "--out", str(seed_dir(args.out, seed)), "--iters", str(args.iters), "--seed", str(seed)]
    if args.eval_flags:
        command.append(f"--eval-flags={args.eval_flags}")
    return command + (["--", *args.train_flags] if args.train_flags else [])


def run_experiments(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)

    def run(seed: int) -> tuple[int, int, float]:
        command = experiment_command(args, seed)
        started = time.perf_counter()
        log = args.out / f"seed_{seed}.log"
        with open(log, "w", encoding="utf-8") as handle:
            handle.write(shlex.join(command) + "\n")
            handle.flush()
            code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT).returncode
        return seed, code, time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        for seed, code, seconds in pool.map(run, args.seeds):
            status = "ok" if code == 0 else f"FAILED (exit {code}; see {args.out / f'seed_{seed}.log'})"
            print(f"seed {seed}: {status}, {seconds / 60:.1f} min", flush=True)


def read_scores(out: Path, seeds: list[int]) -> dict[str, dict[str, list[float]]]:
    """{precision: {score: [value per seed]}} from each run's evaluation.json (which `cyclegan
    experiment` writes, as does a `cyclegan evaluate RUN --out RUN/evaluation.json` run by hand)."""
    from cyclegan.experiments import flatten

    scores: dict[str, dict[str, list[float]]] = {p: {} for p in PRECISIONS}
    for seed in seeds:
        for precision in PRECISIONS:
            report = seed_dir(out, seed) / "runs" / precision / "evaluation.json"
            if not report.exists():
                continue
            flat = flatten(json.loads(report.read_text()))
            for key in SCORES:
                if isinstance(flat.get(key), (int, float)):
                    scores[precision].setdefault(key, []).append(float(flat[key]))
    return scores


def read_curves(out: Path, seeds: list[int]) -> dict[str, list[list[dict]]]:
    """{precision: [log.jsonl records of one run, per seed]}."""
    curves: dict[str, list[list[dict]]] = {p: [] for p in PRECISIONS}
    for seed in seeds:
        for precision in PRECISIONS:
            log = seed_dir(out, seed) / "runs" / precision / "log.jsonl"
            if log.exists():
                curves[precision].append([json.loads(line) for line in log.read_text().splitlines() if line.strip()])
    return curves


def late_means(curves: dict[str, list[list[dict]]]) -> dict[str, dict[str, list[float]]]:
    """Each loss term's mean over the last quarter of each run's log."""
    result: dict[str, dict[str, list[float]]] = {p: {} for p in PRECISIONS}
    for precision, runs in curves.items():
        for records in runs:
            tail = records[len(records) - max(1, len(records) // 4):]
            for key in LOSSES:
                values = [record[key] for record in tail if key in record]
                if values:
                    result[precision].setdefault(key, []).append(statistics.fmean(values))
    return result


def compare(values: dict[str, dict[str, list[float]]], keys) -> list[dict]:
    rows = []
    for key in keys:
        a, b = values["fp32"].get(key, []), values["bf16"].get(key, [])
        if not a or not b:
            continue
        sd_a = statistics.stdev(a) if len(a) > 1 else float("nan")
        sd_b = statistics.stdev(b) if len(b) > 1 else float("nan")
        difference = statistics.fmean(b) - statistics.fmean(a)
        standard_error = math.sqrt(sd_a ** 2 / len(a) + sd_b ** 2 / len(b))
        z = difference / standard_error if standard_error > 0 else (0.0 if difference == 0 else float("inf"))
        rows.append({"key": key, "fp32_mean": statistics.fmean(a), "fp32_sd": sd_a, "fp32_n": len(a),
                     "bf16_mean": statistics.fmean(b), "bf16_sd": sd_b, "bf16_n": len(b),
                     "difference": difference, "standard_errors": z,
                     "within_noise": bool(abs(z) <= 2) if math.isfinite(z) else False})
    return rows


def markdown(rows: list[dict], label: str) -> list[str]:
    lines = [f"| {label} | fp32 mean ± sd (n) | bf16 mean ± sd (n) | bf16 − fp32 | in std. errors | within noise |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['key']} | {row['fp32_mean']:.4f} ± {row['fp32_sd']:.4f} ({row['fp32_n']}) | "
                     f"{row['bf16_mean']:.4f} ± {row['bf16_sd']:.4f} ({row['bf16_n']}) | {row['difference']:+.4f} | "
                     f"{row['standard_errors']:+.2f} | {'yes' if row['within_noise'] else 'NO'} |")
    return lines


def plot_curves(curves: dict[str, list[list[dict]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [key for key in LOSSES if any(key in records[0] for runs in curves.values() for records in runs if records)]
    if not keys:
        return
    columns = 4
    rows = math.ceil(len(keys) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    colours = {"fp32": "tab:blue", "bf16": "tab:orange"}
    for axis, key in zip(axes.flat, keys):
        for precision, runs in curves.items():
            for index, records in enumerate(runs):
                points = [(r["iteration"], r[key]) for r in records if key in r]
                if points:
                    x, y = zip(*points)
                    axis.plot(x, y, color=colours[precision], alpha=0.6, linewidth=1,
                              label=precision if index == 0 else None)
        axis.set_title(key)
        axis.set_xlabel("iteration")
    for axis in list(axes.flat)[len(keys):]:
        axis.axis("off")
    axes.flat[0].legend()
    figure.suptitle("fp32 (blue) and bf16 (orange), one line per seed")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def summarize(args: argparse.Namespace) -> bool:
    scores = read_scores(args.out, args.seeds)
    curves = read_curves(args.out, args.seeds)
    score_rows = compare(scores, SCORES)
    loss_rows = compare(late_means(curves), LOSSES)
    if not score_rows and not loss_rows:
        print(f"no finished runs under {args.out}", file=sys.stderr)
        return False
    config = {"seeds": args.seeds}
    first = seed_dir(args.out, args.seeds[0]) / "commands.sh"
    lines = [f"# bf16 vs fp32: {len(args.seeds)} seeds ({', '.join(map(str, args.seeds))})", ""]
    if first.exists():
        lines += ["Commands of seed " + str(args.seeds[0]) + " (the other seeds differ only in `--seed`):", "",
                  "```", *[line for line in first.read_text().splitlines() if line.startswith("cyclegan")], "```", ""]
    lines += ["Scores (one value per seed and precision):", "", *markdown(score_rows, "score"), "",
              "Loss terms, mean over the last quarter of each run's log:", "", *markdown(loss_rows, "loss term"), "",
              "within noise: |bf16 − fp32| ≤ 2 standard errors, the standard error being "
              "sqrt(sd_fp32²/n + sd_bf16²/n) over seeds."]
    (args.out / "parity.md").write_text("\n".join(lines) + "\n")
    (args.out / "parity.json").write_text(json.dumps({"config": config, "scores": score_rows,
                                                      "late_losses": loss_rows}, indent=2) + "\n")
    plot_curves(curves, args.out / "loss_curves.png")
    print("\n".join(lines))
    return True


def parse_args(argv=None) -> argparse.Namespace:
    if argv is None:
        argv = sys.argv[1:]
    train_flags: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, train_flags = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="Dataset with trainA/ trainB/ testA/ testB/ (not needed with --summarize).")
    parser.add_argument("--out", type=Path, required=True, help="Folder for the experiments and the tables.")
    parser.add_argument("--iters", type=int, default=2000, help="Training iterations per run.")
    parser.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds; each trains fp32 and bf16.")
    parser.add_argument("--parallel", type=int, default=1, help="Seeds run at once.")
    parser.add_argument("--eval-flags", default="", help="Extra flags for `cyclegan evaluate`, as one string.")
    parser.add_argument("--summarize", action="store_true", help="Only rebuild the tables from finished runs.")
    args = parser.parse_args(argv)
    try:
        args.seeds = [int(text) for text in args.seeds.split(",") if text.strip()]
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers, got {args.seeds!r}")
    if len(args.seeds) < 2:
        parser.error("--seeds needs at least two seeds: the comparison is against the spread between seeds")
    if args.parallel < 1 or args.iters < 1:
        parser.error("--parallel and --iters must be at least 1")
    if not args.summarize and args.data is None:
        parser.error("--data is required unless --summarize")
    args.train_flags = train_flags
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.summarize:
        run_experiments(args)
    return 0 if summarize(args) else 1


if __name__ == "__main__":
    sys.exit(main())
