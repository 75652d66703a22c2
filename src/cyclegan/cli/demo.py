"""`cyclegan demo`: the whole pipeline on built-in data, in a few minutes on a CPU."""
from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

from cyclegan.cli.arguments import add_device_argument, add_progress_argument

# A small model on 64 px synthetic scenes: big enough to learn visibly, small enough that the
# whole demo (data, training, translation) fits in about five minutes on two CPU cores. Labels
# <-> photo has no use for the identity loss (label colours are not photo colours), as in the
# paper's Cityscapes experiments.
DEMO_SETTINGS = {
    "model": {"net_g": "resnet_6blocks", "ngf": 24, "ndf": 32},
    "data": {"load_size": 72, "crop_size": 64, "num_workers": 1},
    "optim": {"epochs": 1, "epochs_decay": 1},
    "loss": {"lambda_identity": 0.0},
    "run": {"gallery_size": 6, "log_every": 20},
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="Build the synthetic labels <-> scenes set, train a small model, translate and score its test images.",
        description="Runs everything on built-in data and needs nothing from you: generates a procedural "
                    "labels <-> street-scenes dataset, trains a small CycleGAN on the CPU (or GPU), translates "
                    "the test images both ways and prints where the gallery, plots and translations are.")
    parser.add_argument("--out", default="demo_out", help="Folder for the dataset, run and translations.")
    parser.add_argument("--iterations", type=int, default=2000, help="Training iterations at most (batch size 1).")
    parser.add_argument("--minutes", type=float, default=3.5,
                        help="Training time at most, whichever of the two limits comes first; keeps the whole demo "
                             "within about five minutes on a slow CPU.")
    parser.add_argument("--train-size", type=int, default=600, help="Synthetic training scenes per domain.")
    parser.add_argument("--test-size", type=int, default=50, help="Synthetic test scenes (paired, with ground truth).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the data and the training.")
    add_device_argument(parser)
    parser.add_argument("--no-scores", action="store_true",
                        help="Skip the evaluation (per-pixel / per-class accuracy and IoU against the ground truth).")
    parser.add_argument("--segmenter-steps", type=int, default=300,
                        help="Training steps of the segmenter behind the labels -> photo score (cached afterwards).")
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def _synthetic_set_matches(data_dir: Path, args: argparse.Namespace) -> bool:
    """True when a previous demo left the very set this one would generate."""
    try:
        info = json.loads((data_dir / "classes.json").read_text())
    except (OSError, ValueError):
        return False
    return (info.get("size"), info.get("seed"), info.get("n_train"), info.get("n_test")) == (
        64, args.seed, args.train_size, args.test_size)


def _check_arguments(args: argparse.Namespace) -> None:
    """ConfigError naming the demo's own flag, before minutes of data generation: the checks further
    down name training's flags (--max-iters for --iterations) or none (n_train for --train-size)."""
    from cyclegan.errors import ConfigError
    from cyclegan.fileio import unwritable_reason

    for flag, value in (("--iterations", args.iterations), ("--train-size", args.train_size),
                        ("--test-size", args.test_size), ("--segmenter-steps", args.segmenter_steps)):
        if value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")
    if not 0 < args.minutes < math.inf:
        raise ConfigError(f"--minutes must be a positive number, got {args.minutes:g}")
    unwritable = unwritable_reason(Path(args.out))
    if unwritable:
        raise ConfigError(f"cannot write into --out {args.out}: {unwritable}; choose another --out folder")


def run(args: argparse.Namespace) -> int:
    from cyclegan.cli.options import merge
    from cyclegan.config import TrainConfig
    from cyclegan.data.layout import iterations_per_epoch, training_dataset
    from cyclegan.data.synth import generate_synthetic_dataset
    from cyclegan.inference import load_translators
    from cyclegan.training.trainer import Trainer

    _check_arguments(args)
    out = Path(args.out)
    data_dir = out / "synthetic"
    if _synthetic_set_matches(data_dir, args):
        print(f"[1/4] reusing the synthetic labels <-> scenes set in {data_dir}")
    else:
        print(f"[1/4] generating the synthetic labels <-> scenes set in {data_dir}")
        if data_dir.exists():
            shutil.rmtree(data_dir)
        generate_synthetic_dataset(data_dir, size=64, n_train=args.train_size, n_test=args.test_size, seed=args.seed)

    run_name = "demo"
    overrides = {section: dict(values) for section, values in DEMO_SETTINGS.items()}
    overrides["data"]["data"] = str(data_dir)
    overrides["run"].update(name=run_name, runs_dir=str(out / "runs"), seed=args.seed, device=args.device,
                            max_iters=args.iterations, max_minutes=args.minutes, progress=args.progress)
    config = merge(TrainConfig(), overrides)
    # Two epochs (constant, then linear decay) spread over exactly `iterations` steps.
    epoch = iterations_per_epoch(len(training_dataset(config)), config.data.batch_size)
    config.optim.epochs = max(1, args.iterations // (2 * epoch))
    config.optim.epochs_decay = max(1, -(-args.iterations // epoch) - config.optim.epochs)
    run_dir = out / "runs" / run_name
    if run_dir.exists():
        shutil.rmtree(run_dir)  # the demo always starts afresh
    print(f"[2/4] training {config.model.net_g} (ngf {config.model.ngf}) at {config.data.crop_size} px for "
          f"{args.iterations} iterations or {args.minutes:g} minutes, whichever comes first")
    result = Trainer(config).train()

    print("[3/4] translating the test images")
    translations = {}
    translators = load_translators(result.run_dir, device=args.device)
    for direction, folder in (("AtoB", "testA"), ("BtoA", "testB")):
        translator = translators[direction]
        target = out / f"translated_{direction}"
        report = translator.translate_files([data_dir / folder], target, overwrite=True)  # the demo's own folder
        translations[direction] = (target, len(report.written))

    scores = None
    if not args.no_scores:
        from cyclegan.evaluation.evaluate import evaluate, format_report

        print("[4/4] scoring the translations against the ground truth (FID is left to `cyclegan evaluate`)")
        # A short segmenter run (cached for later demos) keeps the whole demo within minutes.
        scores = evaluate(result.run_dir, data_dir, fid=False, device=args.device, segmenter_steps=args.segmenter_steps)
    print()
    if scores is not None:
        print(format_report(scores))
        print()
    print(f"trained {result.iteration} iterations in {result.seconds / 60:.1f} min")
    print(f"gallery:      {result.run_dir / 'gallery' / 'index.html'}")
    print(f"plots:        {result.run_dir / 'losses.png'}  {result.run_dir / 'accuracy.png'}")
    print(f"checkpoint:   {result.checkpoint}")
    for direction, (target, count) in translations.items():
        print(f"translations: {target} ({count} images, {direction})")
    return 0
