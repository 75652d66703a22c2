"""`cyclegan experiment`: train a suite of variants under one budget and tabulate their scores."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    from cyclegan.studies.suites import SUITES

    parser = subparsers.add_parser(
        "experiment", help="Train and evaluate a suite of variants (ablation, lambda, improvements, ...) under one budget.",
        description="Trains every variant of a suite with the same data, seed and budget by running `cyclegan "
                    "train`, evaluates each with `cyclegan evaluate`, and writes results.md, results.csv and "
                    "commands.sh (the exact commands of every row) into --out. Flags after `--` go to every "
                    "training command, e.g. `-- --netG resnet_6blocks --ngf 32 --load-size 72 --crop-size 64`.")
    parser.add_argument("suite", choices=sorted(SUITES), help="Which variants to run: " + "; ".join(
        f"{name}: {', '.join(v.name for v in variants)}" for name, variants in SUITES.items()))
    parser.add_argument("--data", required=True, help="Dataset with trainA/ trainB/ testA/ testB/.")
    parser.add_argument("--out", required=True, help="Folder for the runs, logs and tables.")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--iters", type=int, help="Training iterations per variant.")
    budget.add_argument("--minutes", type=float, help="Training minutes per variant.")
    parser.add_argument("--seed", type=int, default=0, help="Seed shared by all variants.")
    parser.add_argument("--only", help="Comma-separated variant names to run (default: all of the suite).")
    parser.add_argument("--eval-flags", default="",
                        help="Extra flags for every `cyclegan evaluate`, as one string; write it with = when it "
                             "starts with a dash: --eval-flags=--no-fid.")
    parser.add_argument("--columns", help="Comma-separated metric keys to show in results.md (default: all).")
    parser.add_argument("--resume", action="store_true",
                        help="Keep the variants already trained and evaluated in --out by the same commands (they "
                             "stay in the tables), and continue an interrupted training from its last checkpoint; "
                             "without it every variant run starts afresh.")
    # Its trainings run as child processes, which stop cleanly on the SIGTERM a scheduler sends them
    # all; unwinding this process on it would kill them before they save (cli.Terminated).
    parser.set_defaults(func=run, takes_passthrough=True, sigterm_unwinds=False)


def run(args: argparse.Namespace) -> int:
    import shlex

    from cyclegan.studies.suites import run_suite

    train_flags = args.passthrough  # everything after `--`
    rows = run_suite(args.suite, Path(args.data), Path(args.out), iterations=args.iters, minutes=args.minutes,
                     seed=args.seed, extra_train_flags=train_flags, extra_eval_flags=shlex.split(args.eval_flags),
                     only=args.only.split(",") if args.only else None,
                     columns=args.columns.split(",") if args.columns else None, resume=args.resume)
    print((Path(args.out) / "results.md").read_text())
    return 0 if all(row.get("status") == "ok" for row in rows) else 1
