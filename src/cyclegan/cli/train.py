"""`cyclegan train`: train a CycleGAN on two folders of images."""
from __future__ import annotations

import argparse
import contextlib
import signal
from pathlib import Path

from cyclegan.cli import reference
from cyclegan.cli.options import add_config_arguments, config_from_args, given_options, merge
from cyclegan.config import TrainConfig, config_differences
from cyclegan.errors import ConfigError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="Train a CycleGAN on two folders of images.",
        description="Train a CycleGAN. Defaults follow the paper (ResNet-9, 70x70 PatchGAN, LSGAN, lambda 10, "
                    "identity 0.5, pool 50, Adam 2e-4, 100 + 100 epochs). Everything is written to runs/<name>/.",
        epilog="The reference code's spellings work too: every option in snake_case (--lambda_A, --gan_mode, "
               "--no_flip), --dataroot, --n_epochs, --n_epochs_decay, --checkpoints_dir, --num_threads, "
               "--lr_decay_iters, --model cycle_gan and --gpu_ids (-1: --device cpu; N: --device cuda:N). Its "
               "display and logging options are ignored with a note; the few that cannot be honoured stop "
               "with one saying what to use instead.")
    parser.add_argument("--config", metavar="FILE", help="JSON config file (as written to runs/<name>/config.json); "
                                                         "flags given on the command line override it.")
    parser.add_argument("--resume", metavar="RUN", help="Continue the run in this folder (runs/<name>) from its latest "
                                                        "checkpoint; its saved config is used, so no flag needs repeating.")
    add_config_arguments(parser)
    reference.add_train_options(parser)
    parser.set_defaults(func=run)


def resolve_config(args: argparse.Namespace) -> tuple[TrainConfig, "object | None"]:
    """The config to train with, and the checkpoint to resume from (or None)."""
    if args.resume and "init_from" in given_options(args).get("run", {}):
        raise ConfigError("--init-from starts a new run from a model and --resume continues a run from its own "
                          "checkpoint; give one of them")
    if not args.resume:
        config = config_from_args(args)
        reference.check_dataset_mode(args, config.model.model)
        return config, None
    from cyclegan.checkpoint import find_checkpoint

    run_dir = Path(args.resume)
    saved_path = run_dir / "config.json"
    if not saved_path.exists():
        raise ConfigError(f"cannot resume: {saved_path} not found (is {run_dir} a run folder written by cyclegan train?)")
    saved = TrainConfig.load(saved_path)
    given = given_options(args)
    if given.get("run", {}).get("precision") == "auto":  # the run already chose; keep its choice
        del given["run"]["precision"]
    requested = merge(saved, given)
    differences = config_differences(saved, requested)
    if differences:
        raise ConfigError("cannot resume with a different configuration; these options differ from the "
                          "saved run: " + "; ".join(differences) + ". Start a new run (--name) to change them")
    # The run keeps its folder even when resumed from elsewhere: name and runs-dir come from the path.
    requested.run.name, requested.run.runs_dir = run_dir.name, str(run_dir.parent)
    reference.check_dataset_mode(args, requested.model.model)
    return requested, find_checkpoint(run_dir)


def run(args: argparse.Namespace) -> int:
    from cyclegan.training.run_lock import run_lock
    from cyclegan.training.trainer import Trainer

    config, resume = resolve_config(args)
    trainer = Trainer(config, resume=resume, announce=lambda line: print(line, flush=True))
    if trainer.dist.is_main:
        print(trainer.arithmetic.describe())
        for line in trainer.init_notes:
            print(line)
    if resume is not None and trainer.dist.is_main:
        print(f"resuming {trainer.run_dir} at iteration {trainer.iteration} (epoch {trainer.epoch + 1})")
    try:
        # Under torchrun the processes of one run share it: the main one locks for all.
        with run_lock(trainer.run_dir) if trainer.dist.is_main else contextlib.nullcontext():
            result = trainer.train()
    except BaseException:
        trainer.dist.close(wait_for_others=False)
        raise
    trainer.dist.close()
    if not result.is_main_process:  # under torchrun, rank 0 reports for all
        return 128 + result.stopped_by_signal if result.stopped_by_signal is not None else 0
    print(f"run folder:  {result.run_dir}")
    print(f"checkpoint:  {result.checkpoint}")
    gallery = result.run_dir / "gallery" / "index.html"
    if gallery.exists():  # not with --gallery-size 0
        print(f"gallery:     {gallery}")
    print(f"plots:       {result.run_dir / 'losses.png'}, {result.run_dir / 'accuracy.png'}")
    print(f"iterations:  {result.iteration} in {result.seconds:.1f} s; epochs completed: {result.epoch}")
    if result.eval_seconds:
        share = result.eval_seconds / max(result.seconds - result.eval_seconds, 1e-9)
        print(f"validation:  {result.eval_seconds:.1f} s of evaluations ({share:.1%} of the training time); "
              f"scores in {result.run_dir / 'metrics.jsonl'}, {result.run_dir / 'metrics.png'}")
    if result.best_checkpoint is not None:
        print(f"best:        {result.best_checkpoint} (--pick best)")
    if result.skipped_files:
        print(f"skipped {len(result.skipped_files)} unreadable file(s):")
        for path in result.skipped_files:
            print(f"  {path}")
    if result.clipped_values:
        print(f"clipped {result.clipped_values} training-image value(s) outside the intensity windows "
              "(--window-a/--window-b)")
    if result.nonfinite_skipped:
        print(f"skipped {result.nonfinite_skipped} update(s) with non-finite losses")
    if result.stopped_by_signal is not None:
        print(f"stopped by {signal.Signals(result.stopped_by_signal).name}; continue with: "
              f"cyclegan train --resume {result.run_dir}")
        return 128 + result.stopped_by_signal
    return 0
