"""Does bf16 training give the same results as float32? Loss curves and scores over several seeds.

For every seed, `cyclegan experiment precision` trains the same model twice, with
`--precision fp32` and `--precision bf16`, for the same number of iterations, and evaluates both.
This script is `cyclegan study precision` with the baseline fp32 (cyclegan.studies.seeded: it runs
the experiments, several at once with --parallel, which suits a GPU: small models leave it mostly
idle, and keeps finished runs when called again), and then compares the two precisions against the
run-to-run noise in its own tables:
for every score, and for every loss term averaged over the last quarter of training, it reports
the mean and standard deviation over seeds of each precision, the difference of the means and
that difference in units of its standard error. "within noise" means |difference| <= 2 standard
errors. It writes parity.md, parity.json and loss_curves.png into --out.

    python benchmarks/studies/precision_parity.py --data experiments/synth64 --out experiments/precision_synth64 \\
        --iters 2000 --seeds 0,1,2 --parallel 3 --eval-flags=--no-fid -- --netG resnet_6blocks --ngf 16 \\
        --ndf 16 --load-size 72 --crop-size 64 --lambda-identity 0 --no-tensorboard
    python benchmarks/studies/precision_parity.py --out experiments/precision_synth64 --summarize   # tables again
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cyclegan.studies import seeded as study

PRECISIONS = ("fp32", "bf16")
# The scores compared; absent ones (e.g. FID with --no-fid, segmentation on a set without labels)
# are left out of the table.
SCORES = tuple(score.key for score in study.SCORES)
LOSSES = study.loss_keys()


def as_study(args: argparse.Namespace) -> study.Study:
    return study.Study(suite="precision", out=args.out, seeds=args.seeds, variants=list(PRECISIONS), baseline="fp32",
                       data=args.data, iterations=args.iters, parallel=args.parallel, eval_flags=args.eval_flags,
                       train_flags=args.train_flags)


def compare(values: dict[str, dict[str, list[float]]], keys) -> list[dict]:
    """bf16 against fp32 per key, in this script's columns (the statistics are cyclegan.studies.comparison's)."""
    return [{"key": row["key"], "fp32_mean": row["baseline_mean"], "fp32_sd": row["baseline_sd"],
             "fp32_n": row["baseline_n"], "bf16_mean": row["mean"], "bf16_sd": row["sd"], "bf16_n": row["n"],
             "difference": row["difference"], "standard_errors": row["standard_errors"],
             "within_noise": row["verdict"] == "within noise"}
            for row in study.compare(values, "fp32", [(key, None) for key in keys])]


def markdown(rows: list[dict], label: str) -> list[str]:
    lines = [f"| {label} | fp32 mean ± sd (n) | bf16 mean ± sd (n) | bf16 − fp32 | in std. errors | within noise |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['key']} | {row['fp32_mean']:.4f} ± {row['fp32_sd']:.4f} ({row['fp32_n']}) | "
                     f"{row['bf16_mean']:.4f} ± {row['bf16_sd']:.4f} ({row['bf16_n']}) | {row['difference']:+.4f} | "
                     f"{row['standard_errors']:+.2f} | {'yes' if row['within_noise'] else 'NO'} |")
    return lines


def summarize(args: argparse.Namespace) -> bool:
    scores = study.read_scores(args.out, args.seeds, PRECISIONS, keys=SCORES)
    curves = study.read_curves(args.out, args.seeds, PRECISIONS)
    score_rows = compare(scores, SCORES)
    loss_rows = compare(study.late_means(curves, LOSSES), LOSSES)
    if not score_rows and not loss_rows:
        print(f"no finished runs under {args.out}", file=sys.stderr)
        return False
    config = {"seeds": args.seeds}
    commands = study.seed_commands(args.out, args.seeds[0])
    lines = [f"# bf16 vs fp32: {len(args.seeds)} seeds ({', '.join(map(str, args.seeds))})", ""]
    if commands:
        lines += ["Commands of seed " + str(args.seeds[0]) + " (the other seeds differ only in `--seed`):", "",
                  "```", *commands, "```", ""]
    lines += ["Scores (one value per seed and precision):", "", *markdown(score_rows, "score"), "",
              "Loss terms, mean over the last quarter of each run's log:", "", *markdown(loss_rows, "loss term"), "",
              "within noise: |bf16 − fp32| ≤ 2 standard errors, the standard error being "
              "sqrt(sd_fp32²/n + sd_bf16²/n) over seeds."]
    (args.out / "parity.md").write_text("\n".join(lines) + "\n")
    (args.out / "parity.json").write_text(json.dumps({"config": config, "scores": score_rows,
                                                      "late_losses": loss_rows}, indent=2) + "\n")
    study.plot_curves(curves, LOSSES, args.out / "loss_curves.png",
                      title="fp32 (blue) and bf16 (orange), one line per seed")
    print("\n".join(lines))
    return True


def split_train_flags(argv: list[str] | None) -> tuple[list[str], list[str]]:
    """(this script's arguments, the training flags after a bare `--`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--" not in argv:
        return argv, []
    split = argv.index("--")
    return argv[:split], argv[split + 1:]


def parse_args(argv=None) -> argparse.Namespace:
    argv, train_flags = split_train_flags(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="Dataset with trainA/ trainB/ testA/ testB/ (not needed with --summarize).")
    parser.add_argument("--out", type=Path, required=True, help="Folder for the experiments and the tables.")
    parser.add_argument("--iters", type=int, default=2000, help="Training iterations per run.")
    parser.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds; each trains fp32 and bf16.")
    parser.add_argument("--parallel", type=int, default=1, help="Runs (precision and seed) trained at once.")
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
        study.run_study(as_study(args))
    return 0 if summarize(args) else 1


if __name__ == "__main__":
    sys.exit(main())
