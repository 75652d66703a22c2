"""Users of the reference code (junyanz/pytorch-CycleGAN-and-pix2pix) are at home: every option of its
training and test scripts is either accepted with the same meaning as our own spelling, or answered
with a one-line note saying what to use instead.

The lists below are the reference's options as its option files define them (options/base_options.py,
train_options.py, test_options.py, and the cycle_gan, pix2pix and test models' own), each with a value
a user could give, written out here rather than taken from our code.
"""
from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cyclegan.cli import build_parser, main
from cyclegan.cli.options import config_from_args, given_options
from cyclegan.config import TrainConfig

SRC = Path(__file__).resolve().parents[1] / "src"
IGNORED, REFUSED = "ignored", "refused"

# (reference option and value, our spelling of the same thing | IGNORED | REFUSED)
TRAIN_OPTIONS = [
    # base_options.py
    (["--dataroot", "datasets/horse2zebra"], ["--data", "datasets/horse2zebra"]),
    (["--name", "h2z"], ["--name", "h2z"]),
    (["--use_wandb"], ["--log-to", "wandb"]),
    (["--wandb_project_name", "CycleGAN"], ["--tracker-project", "CycleGAN"]),
    (["--gpu_ids", "-1"], ["--device", "cpu"]),
    (["--gpu_ids", "1"], ["--device", "cuda:1"]),
    (["--gpu_ids", "0,1"], REFUSED),
    (["--checkpoints_dir", "./checkpoints"], ["--runs-dir", "./checkpoints"]),
    (["--model", "cycle_gan"], ["--model", "cyclegan"]),
    (["--model", "pix2pix"], ["--model", "pix2pix"]),
    (["--input_nc", "1"], ["--input-nc", "1"]),
    (["--output_nc", "1"], ["--output-nc", "1"]),
    (["--ngf", "32"], ["--ngf", "32"]),
    (["--ndf", "32"], ["--ndf", "32"]),
    (["--netD", "n_layers"], ["--netD", "n_layers"]),
    (["--netG", "resnet_6blocks"], ["--netG", "resnet_6blocks"]),
    (["--n_layers_D", "4"], ["--n-layers-D", "4"]),
    (["--norm", "batch"], ["--norm", "batch"]),
    (["--init_type", "xavier"], ["--init-type", "xavier"]),
    (["--init_gain", "0.05"], ["--init-gain", "0.05"]),
    (["--no_dropout"], ["--no-dropout"]),
    (["--dataset_mode", "unaligned"], []),
    (["--dataset_mode", "single"], REFUSED),
    # --direction is ours too (CUT's one direction); with --model cyclegan, BtoA is refused by the config
    (["--direction", "BtoA"], ["--direction", "BtoA"]),
    (["--serial_batches"], ["--serial-batches"]),
    (["--num_threads", "8"], ["--num-workers", "8"]),
    (["--batch_size", "4"], ["--batch-size", "4"]),
    (["--load_size", "143"], ["--load-size", "143"]),
    (["--crop_size", "128"], ["--crop-size", "128"]),
    (["--max_dataset_size", "inf"], []),
    (["--max_dataset_size", "1000"], REFUSED),
    (["--preprocess", "scale_width"], ["--preprocess", "scale_width"]),
    (["--no_flip"], ["--no-flip"]),
    (["--display_winsize", "128"], IGNORED),
    (["--epoch", "latest"], IGNORED),
    (["--load_iter", "5"], IGNORED),
    (["--verbose"], IGNORED),
    (["--suffix", "{model}_{netG}"], REFUSED),
    # train_options.py
    (["--display_freq", "100"], IGNORED),
    (["--display_ncols", "3"], IGNORED),
    (["--display_id", "-1"], IGNORED),
    (["--display_server", "http://localhost"], IGNORED),
    (["--display_env", "main"], IGNORED),
    (["--display_port", "8097"], IGNORED),
    (["--update_html_freq", "500"], IGNORED),
    (["--print_freq", "10"], IGNORED),
    (["--no_html"], IGNORED),
    (["--save_latest_freq", "1000"], IGNORED),
    (["--save_epoch_freq", "10"], IGNORED),
    (["--save_by_iter"], IGNORED),
    (["--continue_train"], REFUSED),
    (["--epoch_count", "1"], []),
    (["--epoch_count", "5"], REFUSED),
    (["--phase", "train"], []),
    (["--phase", "val"], REFUSED),
    (["--n_epochs", "50"], ["--epochs", "50"]),
    (["--n_epochs_decay", "25"], ["--epochs-decay", "25"]),
    (["--beta1", "0.9"], ["--beta1", "0.9"]),
    (["--lr", "0.001"], ["--lr", "0.001"]),
    (["--gan_mode", "vanilla"], ["--gan-mode", "vanilla"]),
    (["--pool_size", "0"], ["--pool-size", "0"]),
    (["--lr_policy", "step"], ["--lr-policy", "step"]),
    (["--lr_decay_iters", "30"], ["--lr-decay-epochs", "30"]),
    # the models' own: cycle_gan_model.py, pix2pix_model.py
    (["--lambda_A", "5"], ["--lambda-A", "5"]),
    (["--lambda_B", "5"], ["--lambda-B", "5"]),
    (["--lambda_identity", "0.1"], ["--lambda-identity", "0.1"]),
    (["--lambda_L1", "50"], ["--lambda-L1", "50"]),
    # names of earlier reference versions
    (["--niter", "50"], ["--epochs", "50"]),
    (["--niter_decay", "25"], ["--epochs-decay", "25"]),
    (["--lr_policy", "lambda"], ["--lr-policy", "linear"]),
]

TRANSLATE_OPTIONS = [
    # base_options.py, as the test script reads them
    (["--dataroot", "datasets/horse2zebra/testA"], REFUSED),
    (["--name", "horse2zebra_pretrained"], REFUSED),
    (["--use_wandb"], IGNORED),
    (["--wandb_project_name", "CycleGAN"], IGNORED),
    (["--gpu_ids", "-1"], ["--device", "cpu"]),
    (["--gpu_ids", "0"], ["--device", "cuda:0"]),
    (["--gpu_ids", "0,1"], REFUSED),
    (["--checkpoints_dir", "./checkpoints"], REFUSED),
    (["--model", "test"], IGNORED),
    (["--input_nc", "3"], IGNORED),
    (["--output_nc", "3"], IGNORED),
    (["--ngf", "64"], IGNORED),
    (["--ndf", "64"], IGNORED),
    (["--netD", "basic"], IGNORED),
    (["--netG", "resnet_9blocks"], IGNORED),
    (["--n_layers_D", "3"], IGNORED),
    (["--norm", "instance"], IGNORED),
    (["--init_type", "normal"], IGNORED),
    (["--init_gain", "0.02"], IGNORED),
    (["--no_dropout"], IGNORED),
    (["--dataset_mode", "single"], IGNORED),
    (["--direction", "BtoA"], ["--direction", "BtoA"]),
    (["--serial_batches"], IGNORED),
    (["--num_threads", "4"], IGNORED),
    (["--batch_size", "4"], ["--batch-size", "4"]),
    (["--load_size", "256"], REFUSED),
    (["--crop_size", "256"], REFUSED),
    (["--max_dataset_size", "10"], IGNORED),
    (["--preprocess", "none"], []),
    (["--preprocess", "resize_and_crop"], REFUSED),
    (["--no_flip"], IGNORED),
    (["--display_winsize", "256"], IGNORED),
    (["--epoch", "latest"], []),
    (["--epoch", "10"], REFUSED),
    (["--load_iter", "0"], []),
    (["--load_iter", "5"], REFUSED),
    (["--verbose"], IGNORED),
    (["--suffix", "x"], REFUSED),
    # test_options.py
    (["--results_dir", "./results/"], ["--out", "./results/"]),
    (["--aspect_ratio", "1.0"], []),
    (["--aspect_ratio", "2.0"], REFUSED),
    (["--phase", "test"], IGNORED),
    (["--eval"], IGNORED),
    (["--num_test", "50"], IGNORED),
    # test_model.py
    (["--model_suffix", "_A"], REFUSED),
]


@functools.cache
def parser() -> argparse.ArgumentParser:
    return build_parser()


def train_args(argv: list[str]) -> argparse.Namespace:
    return parser().parse_args(["train", *argv])


def train_config(argv: list[str]) -> TrainConfig:
    return config_from_args(train_args(argv))


def translate_args(argv: list[str]) -> argparse.Namespace:
    out = [] if "--results_dir" in argv or "--out" in argv else ["--out", "translated"]
    return parser().parse_args(["translate", "latest_net_G.pth", "photos", *out, *argv])


def parsed_values(args: argparse.Namespace) -> dict:
    return {key: value for key, value in vars(args).items() if key != "func"}


def refusal(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as stopped:
        parser().parse_args(argv)
    assert stopped.value.code == 2
    return capsys.readouterr().err


def _ids(options):
    return [" ".join(argv) for argv, _ in options]


def test_the_lists_hold_every_reference_option_once_per_value():
    for options in (TRAIN_OPTIONS, TRANSLATE_OPTIONS):
        assert len(_ids(options)) == len(set(_ids(options)))
    train_flags = {argv[0] for argv, _ in TRAIN_OPTIONS}
    translate_flags = {argv[0] for argv, _ in TRANSLATE_OPTIONS}
    # base_options.py has 33, train_options.py 23, the models 4 (and 2 earlier names); test_options.py 5
    # and the test model 1. Both scripts read every base option (and --phase).
    assert (len(train_flags), len(translate_flags), len(train_flags & translate_flags)) == (62, 39, 34)


@pytest.mark.parametrize("reference, ours", TRAIN_OPTIONS, ids=_ids(TRAIN_OPTIONS))
def test_train_answers_every_reference_training_option(reference, ours, capsys):
    if ours == REFUSED:
        error = refusal(["train", *reference], capsys)
        assert error.startswith("cyclegan train: error: ") and reference[0] in error
        assert error.count("\n") == 1
    elif ours == IGNORED:
        args = train_args(reference)
        assert config_from_args(args) == TrainConfig()
        assert len(args.reference_notes) == 1
        assert args.reference_notes[0].startswith(f"{reference[0]} is ignored: ")
    else:
        args = train_args(reference)
        assert given_options(args) == given_options(train_args(ours))  # the same fields, the same values
        assert config_from_args(args) == train_config(ours)
        assert getattr(args, "reference_notes", []) == []


@pytest.mark.parametrize("reference, ours", TRANSLATE_OPTIONS, ids=_ids(TRANSLATE_OPTIONS))
def test_translate_answers_every_reference_test_option(reference, ours, capsys):
    if ours == REFUSED:
        error = refusal(["translate", "latest_net_G.pth", "photos", "--out", "o", *reference], capsys)
        assert error.startswith("cyclegan translate: error: ") and reference[0] in error
        assert error.count("\n") == 1
    elif ours == IGNORED:
        args = translate_args(reference)
        notes = args.reference_notes
        del args.reference_notes
        assert parsed_values(args) == parsed_values(translate_args([]))
        assert len(notes) == 1 and notes[0].startswith(f"{reference[0]} is ignored: ")
    else:
        assert parsed_values(translate_args(reference)) == parsed_values(translate_args(ours))


@pytest.mark.parametrize("argv, message", [
    (["--continue_train"], "cyclegan train: error: --continue_train is not supported: continue a run with "
                           "--resume runs/NAME, which restores its epoch, optimisers and image pools"),
    (["--gpu_ids", "0,2"], "cyclegan train: error: argument --gpu_ids: several GPUs train with one process each "
                           "here: CUDA_VISIBLE_DEVICES=0,2 torchrun --nproc-per-node 2 -m cyclegan train ..."),
])
def test_a_refused_reference_option_says_what_to_use_instead(argv, message, capsys):
    assert refusal(["train", *argv], capsys) == message + "\n"


@pytest.mark.parametrize("argv, model", [(["--dataset_mode", "aligned"], "cyclegan"),
                                         (["--dataset_mode", "unaligned", "--model", "pix2pix"], "pix2pix")])
def test_a_dataset_mode_that_does_not_fit_the_model_is_refused(argv, model, tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), *argv]) == 2
    error = capsys.readouterr().err
    assert error == (f"cyclegan train: error: --dataset_mode {argv[1]} does not fit --model {model}: the layout "
                     "follows --model: cyclegan reads unpaired trainA/ and trainB/ (the reference's unaligned), "
                     "pix2pix aligned A|B pairs (aligned)\n")


def test_the_dataset_mode_of_the_model_is_accepted(tmp_path, capsys):
    # The data folder is checked after the options: getting that far means they were accepted.
    assert main(["train", "--dataroot", str(tmp_path / "missing"), "--model", "pix2pix",
                 "--dataset_mode", "aligned", "--runs-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"cyclegan train: error: dataset folder {tmp_path / 'missing'} does not exist\n"


def test_notes_for_ignored_options_are_printed_one_line_each_and_the_command_runs(tmp_path):
    command = [sys.executable, "-m", "cyclegan", "train", "--dataroot", str(tmp_path / "missing"),
               "--display_id", "0", "--print_freq", "10", "--lambda_A", "5", "--runs-dir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(SRC)})
    assert result.returncode == 2  # the data folder is missing: the options were all taken
    assert result.stderr.splitlines() == [
        "cyclegan train: note: --display_id is ignored: it only steers the reference's display; the run folder "
        "has losses.png, accuracy.png and gallery/",
        "cyclegan train: note: --print_freq is ignored: it only sets how often the reference prints losses; "
        "--log-every sets how often they go to log.jsonl",
        f"cyclegan train: error: dataset folder {tmp_path / 'missing'} does not exist",
    ]


def test_help_shows_each_reference_spelling_once_beside_ours():
    text = parser()._subparsers._group_actions[0].choices["train"].format_help()
    lines = [line for line in text.splitlines() if line.startswith("  -")]  # the option list
    for ours, theirs in (("--lambda-A", "--lambda_A"), ("--data", "--dataroot"), ("--epochs", "--n_epochs"),
                         ("--no-flip", "--no_flip"), ("--runs-dir", "--checkpoints_dir")):
        showing = [line for line in lines if theirs in line.replace(",", " ").split()]
        assert len(showing) == 1 and showing[0].strip().startswith(ours + ","), (theirs, showing)
    # Options that only get a note stay out of the option list.
    assert "--display_id" not in text and "--continue_train" not in text
