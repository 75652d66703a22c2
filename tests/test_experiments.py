"""The experiment runner: budgets, paired data for pix2pix, tables with the exact commands."""
import csv

import pytest

from cyclegan.cli import build_parser, main
from cyclegan.cli.options import config_from_args
from cyclegan.data.synth import generate_synthetic_dataset
from cyclegan.errors import ConfigError
from cyclegan.studies.suites import (SUITES, budget_flags, flatten, paired_training_data, run_suite, train_command,
                                  variant_slug)

from conftest import write_images


def test_iteration_budget_squeezes_the_paper_schedule_into_the_budget():
    assert budget_flags(1000, None, 300) == ["--max-iters", "1000", "--epochs", "2", "--epochs-decay", "2"]
    assert budget_flags(100, None, 600) == ["--max-iters", "100", "--epochs", "1", "--epochs-decay", "1"]
    assert budget_flags(None, 2.5, 600) == ["--max-minutes", "2.5", "--epochs", "100000", "--epochs-decay", "0"]


def test_an_iteration_budget_counts_iterations_not_images_when_batches_hold_several(tmp_path):
    write_images(tmp_path / "trainA", 6, prefix="x")
    write_images(tmp_path / "trainB", 6, prefix="x")
    command = train_command(tmp_path, tmp_path / "runs", "v", 0, 12, None, ["--batch-size", "2"])
    # 6 images in batches of 2: 3 iterations an epoch, so 12 iterations are 4 epochs (2 + 2 decaying).
    assert command[command.index("--max-iters"):command.index("--max-iters") + 6] == [
        "--max-iters", "12", "--epochs", "2", "--epochs-decay", "2"]


def test_pix2pix_gets_generated_pairs_for_the_synthetic_set_and_none_for_unpaired_folders(tmp_path):
    generate_synthetic_dataset(tmp_path / "synth", size=32, n_train=3, n_test=2, seed=1)
    paired = paired_training_data(tmp_path / "synth", tmp_path / "out")
    assert sorted(p.name for p in (paired / "trainB").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    write_images(tmp_path / "unpaired" / "trainA", 2, prefix="a")
    write_images(tmp_path / "unpaired" / "trainB", 2, prefix="b")
    assert paired_training_data(tmp_path / "unpaired", tmp_path / "out2") is None


def test_flatten_keeps_numeric_leaves_with_dotted_names():
    report = {"a": {"b": 1, "c": {"d": 2.5}}, "e": "text", "f": None, "g": True}
    assert flatten(report) == {"a.b": 1.0, "a.c.d": 2.5}


def test_a_suite_needs_exactly_one_budget(tmp_path):
    with pytest.raises(ConfigError, match="exactly one budget"):
        run_suite("lambda", tmp_path, tmp_path / "out", iterations=10, minutes=1.0)


def test_experiment_command_trains_evaluates_and_writes_tables_with_the_commands(tmp_path, capsys):
    data = tmp_path / "synth"
    generate_synthetic_dataset(data, size=32, n_train=4, n_test=2, seed=0)
    out = tmp_path / "out"
    code = main(["experiment", "lambda", "--only", "lambda=10", "--data", str(data), "--out", str(out),
                 "--iters", "2", "--eval-flags", f"--no-fid --segmenter-steps 2 --segmenter-size 32 --cache {tmp_path}",
                 "--", "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--load-size", "36",
                 "--crop-size", "32", "--num-workers", "0", "--no-tensorboard", "--lambda-identity", "0"])
    assert code == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(row["variant"], row["status"], row["iterations"]) for row in rows] == [("lambda=10", "ok", "2")]
    assert float(rows[0]["segmentation.labels_to_photo.class_iou"]) >= 0.0
    commands = (out / "commands.sh").read_text()
    assert "cyclegan train --data" in commands and "--lambda-A 10 --lambda-B 10" in commands
    assert "cyclegan evaluate" in commands and "--no-fid" in commands
    assert "| lambda=10 | 2 |" in capsys.readouterr().out


def test_the_improvements_suite_runs_each_option_alone_and_all_together_against_the_paper_defaults():
    assert [(variant.name, variant.flags, variant.paired) for variant in SUITES["improvements"]] == [
        ("paper defaults", [], False),
        ("resize-conv up-sampling", ["--upsample", "resize_conv"], False),
        ("anti-aliased sampling", ["--antialias", "--upsample", "antialias"], False),
        ("spectral norm", ["--spectral-norm"], False),
        ("DiffAugment", ["--diff-augment", "color,translation,cutout"], False),
        ("all", ["--antialias", "--upsample", "antialias", "--spectral-norm", "--diff-augment",
                 "color,translation,cutout"], False),
    ]
    chosen = {}
    for variant in SUITES["improvements"]:
        config = config_from_args(build_parser().parse_args(["train", "--data", "d", *variant.flags]))
        chosen[variant.name] = (config.model.upsample, config.model.antialias, config.model.spectral_norm,
                                config.loss.diff_augment)
    assert chosen == {
        "paper defaults": ("transposed", False, False, ""),
        "resize-conv up-sampling": ("resize_conv", False, False, ""),
        "anti-aliased sampling": ("antialias", True, False, ""),
        "spectral norm": ("transposed", False, True, ""),
        "DiffAugment": ("transposed", False, False, "color,translation,cutout"),
        "all": ("antialias", True, True, "color,translation,cutout"),
    }
    assert [variant_slug(v.name) for v in SUITES["improvements"]] == [
        "paper_defaults", "resize_conv_up_sampling", "anti_aliased_sampling", "spectral_norm", "diffaugment", "all"]


def test_an_unknown_variant_is_refused_with_the_suites_variants(tmp_path):
    write_images(tmp_path / "trainA", 2, prefix="a")
    write_images(tmp_path / "trainB", 2, prefix="b")
    with pytest.raises(ConfigError, match="no variant 'spectral'.*paper defaults, resize-conv up-sampling"):
        run_suite("improvements", tmp_path, tmp_path / "out", iterations=2, only=["spectral"])


def test_resume_keeps_the_variants_finished_by_the_same_commands_and_lists_them_with_the_new_ones(tmp_path):
    data = tmp_path / "synth"
    generate_synthetic_dataset(data, size=32, n_train=4, n_test=2, seed=0)
    out = tmp_path / "out"
    common = ["--data", str(data), "--out", str(out), "--iters", "1",
              "--eval-flags", f"--no-fid --segmenter-steps 2 --segmenter-size 32 --cache {tmp_path}", "--resume",
              "--", "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--load-size", "36", "--crop-size", "32",
              "--num-workers", "0", "--no-tensorboard", "--lambda-identity", "0"]
    assert main(["experiment", "lambda", "--only", "lambda=10", *common]) == 0
    trained = (out / "lambda_10.train.log").stat().st_mtime_ns
    assert main(["experiment", "lambda", "--only", "lambda=1", *common]) == 0
    assert (out / "lambda_10.train.log").stat().st_mtime_ns == trained  # kept, not trained again
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(row["variant"], row["status"], row["iterations"]) for row in rows] == [
        ("lambda=1", "ok", "1"), ("lambda=10", "ok", "1")]
    commands = (out / "commands.sh").read_text()
    assert "# lambda=1\n" in commands and "# lambda=10\n" in commands


@pytest.mark.parametrize("budget, message", [
    # Each variant's `train` refused these, after --out was made, naming training's --max-iters / --max-minutes.
    ({"iterations": 0}, "--iters must be at least 1, got 0"),
    ({"minutes": 0.0}, "--minutes must be a positive number, got 0"),
])
def test_a_budget_that_trains_nothing_is_refused_before_out_is_made(tmp_path, budget, message):
    write_images(tmp_path / "trainA", 2, prefix="a")
    write_images(tmp_path / "trainB", 2, prefix="b")
    with pytest.raises(ConfigError) as refused:
        run_suite("lambda", tmp_path, tmp_path / "out", **budget)
    assert str(refused.value) == message and not (tmp_path / "out").exists()


def test_an_out_folder_that_is_a_file_is_refused_by_name(tmp_path, capsys):
    write_images(tmp_path / "trainA", 2, prefix="a")
    write_images(tmp_path / "trainB", 2, prefix="b")
    (tmp_path / "out").write_text("kept")
    assert main(["experiment", "lambda", "--data", str(tmp_path), "--out", str(tmp_path / "out"), "--iters", "1"]) == 2
    assert capsys.readouterr().err == (f"cyclegan experiment: error: cannot write into --out {tmp_path / 'out'}: "
                                       f"{tmp_path / 'out'} is not a folder; choose another --out folder\n")
    assert (tmp_path / "out").read_text() == "kept"
