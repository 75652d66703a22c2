"""The experiment runner: budgets, paired data for pix2pix, tables with the exact commands."""
import csv

import pytest

from cyclegan.cli import main
from cyclegan.data.synth import generate_synthetic_dataset
from cyclegan.errors import ConfigError
from cyclegan.experiments import budget_flags, flatten, paired_training_data, run_suite, train_command

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
