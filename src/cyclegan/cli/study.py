"""`cyclegan study`: a suite of `cyclegan experiment` over several seeds, every variant against a baseline."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    from cyclegan.studies.seeded import PRIMARY
    from cyclegan.studies.suites import SUITES

    parser = subparsers.add_parser(
        "study", help="Train a suite over several seeds and say which variants beat a baseline beyond the noise.",
        description="Runs `cyclegan experiment SUITE --only VARIANT --seed S --resume` for every variant and seed "
                    "(OUT/seed_S/), evaluates a run's best checkpoint too where it kept one, and compares every "
                    "variant with the baseline per score and per loss term: a difference counts only beyond two "
                    "standard errors over seeds. Writes study.md, study.json and loss_curves.png into --out; called "
                    "again with the same arguments it keeps the finished runs. Flags after `--` go to every training "
                    "command.")
    parser.add_argument("suite", choices=sorted(SUITES), help="The suite of `cyclegan experiment` to study.")
    parser.add_argument("--data", type=Path, help="Dataset with trainA/ trainB/ testA/ testB/ (not needed with "
                                                  "--summarize).")
    parser.add_argument("--out", type=Path, required=True, help="Folder for the runs and the tables.")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--iters", type=int, help="Training iterations per run.")
    budget.add_argument("--minutes", type=float, help="Training minutes per run.")
    parser.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds; each trains every variant.")
    parser.add_argument("--parallel", type=int, default=1, help="Runs (variant and seed) trained at once.")
    parser.add_argument("--baseline", help="The variant every other is compared with (default: the suite's first).")
    parser.add_argument("--only", help="Comma-separated variants to study (default: all of the suite; the baseline "
                                       "is always included).")
    parser.add_argument("--primary", default=",".join(PRIMARY),
                        help="Comma-separated scores a winner must be better on (those present count; "
                             "default: %(default)s).")
    parser.add_argument("--eval-flags", default="", help="Extra flags for `cyclegan evaluate`, as one string; write "
                                                         "it with = when it starts with a dash: --eval-flags=--no-fid.")
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                        help="With --parallel > 1, skip the 1-iteration run that first caches the evaluation's "
                             "networks.")
    parser.add_argument("--summarize", action="store_true", help="Only rebuild the tables from finished runs.")
    # Its trainings run as child processes, which stop cleanly on the SIGTERM a scheduler sends them
    # all; unwinding this process on it would kill them before they save (cli.Terminated).
    parser.set_defaults(func=run, takes_passthrough=True, sigterm_unwinds=False)


def run(args: argparse.Namespace) -> int:
    from cyclegan.studies import seeded

    study = seeded.study_from_options(
        args.suite, args.out, seeds=args.seeds, baseline=args.baseline, only=args.only, primary=args.primary,
        data=args.data, iterations=args.iters, minutes=args.minutes, parallel=args.parallel,
        eval_flags=args.eval_flags, train_flags=args.passthrough, warm_up=args.warm_up,
        summarize_only=args.summarize)
    return seeded.run(study, summarize_only=args.summarize)
