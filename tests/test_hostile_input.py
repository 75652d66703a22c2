"""Hostile and broken files (tests/hostile.py) met by training, translation and `data check`.

Every bad file is named in a warning or error and the rest is still used; nothing ends in a
traceback. Two symbolic links that point at each other are the exception in folders given to
training or translation: `list_images` leaves out links it cannot follow without a word, so
only `data check` names them (translation names one given explicitly).
"""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from cyclegan import checkpoint as ckpt
from cyclegan.cli import main
from cyclegan.config import ModelConfig
from cyclegan.data.check import check_dataset
from cyclegan.data.datasets import SkippedImageWarning
from cyclegan.data.images import load_image
from cyclegan.errors import DatasetError
from cyclegan.training import trainer as trainer_module
from cyclegan.training.model import build_model
from cyclegan.training.trainer import Trainer

from conftest import tiny_config
from hostile import build_hostile_corpus

LINKS = {"loop_a.png", "loop_b.png"}


@pytest.fixture
def corpus(tmp_path):
    return build_hostile_corpus(tmp_path / "corpus")


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A run folder with one checkpoint of an untrained tiny model (translation needs no training)."""
    run = tmp_path_factory.mktemp("runs") / "untrained"
    config = ModelConfig(net_g="resnet_6blocks", ngf=8, ndf=8)
    torch.manual_seed(0)
    ckpt.save_checkpoint(run / "checkpoints", build_model(config).networks(), config, None, epoch=0, iteration=0)
    return run


def hostile_dataset(root: Path):
    """trainA and trainB, each a full hostile corpus (with different good images)."""
    return build_hostile_corpus(root / "trainA"), build_hostile_corpus(root / "trainB", seed=20)


def skipped_warnings(record) -> str:
    return "\n".join(str(w.message) for w in record if issubclass(w.category, SkippedImageWarning))


# ----------------------------------------------------------------------------- data check
def test_data_check_lists_every_bad_file_and_counts_every_good_one(corpus, capsys):
    report = check_dataset(corpus.folder, crop_size=32, load_size=36)

    folder = report.folders["."]
    listed = {Path(path).name for path, _ in folder.unreadable + folder.not_images}
    assert listed == set(corpus.bad)
    assert folder.images == len(corpus.good)
    assert {Path(path).name for path, _ in folder.tiny} == set(corpus.tiny)
    assert [path for path, _ in folder.misnamed] == ["png_named.jpg"]
    assert {"RGB", "CMYK", "P", "I;16"} <= set(folder.modes)
    assert report.fatal == []

    assert main(["data", "check", str(corpus.folder), "--crop-size", "32", "--load-size", "36"]) == 0
    out = capsys.readouterr().out
    for name in corpus.bad:
        assert f": {name}: " in out, name


# ----------------------------------------------------------------------------- training
def test_training_skips_every_bad_file_with_a_warning_naming_it_and_uses_the_rest(tmp_path):
    corpus_a, corpus_b = hostile_dataset(tmp_path / "data")
    # The arithmetic pinned: this run is planned long enough for --precision auto to time it.
    config = tiny_config(tmp_path / "data", tmp_path / "runs", precision="fp32", channels_last=False, nnpack=False)
    # Serial pairing and one epoch: every file of both folders is drawn exactly once.
    config.data.serial_batches, config.data.load_size, config.data.crop_size = True, 28, 24
    config.loss.lambda_identity = 0.0
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer = Trainer(config)
        config.run.max_iters = len(trainer.dataset)
        result = trainer.train()

    expected = sorted(str(corpus.path(name)) for corpus in (corpus_a, corpus_b) for name in corpus.bad
                      if name not in LINKS)
    assert result.skipped_files == expected
    messages = skipped_warnings(record)
    for path in expected:
        assert f"skipping {path}" in messages, path
    used = {Path(path).name for path in trainer.dataset.paths_a}
    assert set(corpus_a.good) <= used
    assert result.iteration == len(trainer.dataset) and result.checkpoint.exists()


def test_training_in_mode_none_skips_images_too_small_for_the_networks_with_a_warning(tmp_path):
    # Needs datasets.py to drop images whose size cannot be processed (see cyclegan.data.check.size_problem).
    corpus_a, _ = hostile_dataset(tmp_path / "data")
    config = tiny_config(tmp_path / "data", tmp_path / "runs", max_iters=1)
    config.data.preprocess = "none"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer = Trainer(config)

    messages = skipped_warnings(record)
    for name in corpus_a.tiny:
        assert f"skipping {corpus_a.path(name)}" in messages
        assert corpus_a.path(name) not in trainer.dataset.paths_a
    assert trainer.train().iteration == 1


def test_training_refuses_a_dataset_without_usable_images_naming_both_folders_before_building_a_model(
        tmp_path, monkeypatch):
    # Needs the trainer to call cyclegan.data.check.fatal_problems before building anything.
    for name in ("trainA", "trainB"):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "notes.jpg").write_text("not an image")
        (tmp_path / "data" / name / "empty.png").write_bytes(b"")
    monkeypatch.setattr(trainer_module, "build_model", lambda *args: pytest.fail("a model was built"))

    with pytest.raises(DatasetError) as error:
        Trainer(tiny_config(tmp_path / "data", tmp_path / "runs"))

    message = str(error.value)
    assert str(tmp_path / "data" / "trainA") in message and str(tmp_path / "data" / "trainB") in message
    assert "notes.jpg" in message
    assert not (tmp_path / "runs").exists()


def test_training_on_a_folder_of_truncated_images_only_stops_with_a_one_line_error(tmp_path, capsys):
    # Truncation shows only when pixels are decoded, so this is found at the first batch, not before.
    corpus_a, _ = hostile_dataset(tmp_path / "data")
    for name in os.listdir(corpus_a.folder):
        if name not in corpus_a.decodable:
            corpus_a.path(name).unlink()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedImageWarning)
        code = main(["train", "--data", str(tmp_path / "data"), "--runs-dir", str(tmp_path / "runs"),
                     "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--load-size", "28",
                     "--crop-size", "24", "--num-workers", "0", "--no-progress", "--no-tensorboard",
                     "--max-iters", "2"])

    assert code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(corpus_a.folder) in error and "decoded" in error


# ----------------------------------------------------------------------------- translation
def expect_translated(corpus, out: Path, names) -> None:
    """Every name was written to `out`, with the size of its input."""
    for name in names:
        written = out / name
        assert written.exists(), name
        with Image.open(written) as image:
            assert image.size == load_image(corpus.path(name)).size, name


def test_translate_reports_every_bad_file_and_writes_every_good_one(corpus, run_folder, tmp_path, capsys):
    for name in corpus.tiny:  # tiny images: see the next test
        corpus.path(name).unlink()
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.png").write_bytes(b"written before")

    code = main(["translate", str(run_folder), str(corpus.folder), str(corpus.path("loop_a.png")),
                 "--out", str(out), "--no-progress", "--device", "cpu"])

    assert code == 1
    error = capsys.readouterr().err
    for name in set(corpus.bad) - {"loop_b.png"}:
        assert str(corpus.path(name)) in error, name
    good = [name for name in corpus.good if name not in corpus.tiny]
    expect_translated(corpus, out, good)
    assert sorted(os.listdir(out)) == sorted(good + ["earlier.png"])  # no temporary file left behind
    assert (out / "earlier.png").read_bytes() == b"written before"


def test_translate_keeps_the_size_of_images_smaller_than_the_network_needs(corpus, run_folder, tmp_path):
    # Needs inference.py to pad inputs up to the generator's minimum size (a 1x1 input now raises
    # "Expected more than 1 spatial element" from the instance norm at the ResNet's bottleneck).
    out = tmp_path / "out"

    code = main(["translate", str(run_folder), *(str(corpus.path(name)) for name in corpus.tiny),
                 "--out", str(out), "--no-progress", "--device", "cpu"])

    assert code == 0
    expect_translated(corpus, out, corpus.tiny)


def test_translate_as_a_real_process_reports_bad_files_without_a_traceback(corpus, run_folder, tmp_path):
    out = tmp_path / "out"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}

    finished = subprocess.run(
        [sys.executable, "-m", "cyclegan", "translate", str(run_folder), str(corpus.folder), "--out", str(out),
         "--no-progress", "--device", "cpu"],
        capture_output=True, text=True, errors="backslashreplace", timeout=300, env=environment)

    assert "Traceback" not in finished.stderr, finished.stderr
    assert finished.returncode == 1
    assert f"could not translate {len(set(corpus.bad) - LINKS)} file(s)" in finished.stderr
    expect_translated(corpus, out, corpus.good)


def test_a_full_disk_while_translating_ends_with_a_one_line_error_and_keeps_what_was_written(
        corpus, run_folder, tmp_path, monkeypatch, capsys):
    # Needs cli.main to report OSError in one line (see the report); outputs are written atomically.
    from cyclegan.inference import translator as inference

    out = tmp_path / "out"
    good = sorted(name for name in corpus.good if name not in corpus.tiny)
    real_save, lock, saved = inference.save_image_atomic, threading.Lock(), []

    def save_three_then_fail(image, path):
        with lock:  # saves run in worker threads
            if len(saved) == 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            saved.append(Path(path).name)
        real_save(image, path)

    monkeypatch.setattr(inference, "save_image_atomic", save_three_then_fail)
    code = main(["translate", str(run_folder), *(str(corpus.path(name)) for name in good), "--out", str(out),
                 "--no-progress", "--device", "cpu"])

    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "No space left on device" in error
    assert sorted(os.listdir(out)) == sorted(saved)
    expect_translated(corpus, out, saved)
