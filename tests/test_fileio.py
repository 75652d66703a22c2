"""Atomic writes: all or nothing, and ordinary permissions; the cache root."""
import os
import stat
from pathlib import Path

import pytest

from cyclegan.fileio import CACHE_ENV, write_bytes_atomic


def test_atomic_write_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a" / "file.bin"
    write_bytes_atomic(target, b"first")
    write_bytes_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    from cyclegan.fileio import write_atomic

    target = tmp_path / "file.bin"
    write_bytes_atomic(target, b"good")

    def fail(temporary):
        temporary.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_atomic(target, fail)
    assert target.read_bytes() == b"good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]


def test_atomic_writes_get_the_permissions_the_umask_gives_a_plain_file(tmp_path):
    previous = os.umask(0o022)
    try:
        write_bytes_atomic(tmp_path / "file.bin", b"x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "file.bin").stat().st_mode) == 0o644


def test_checkpoint_files_get_the_umask_permissions_too(tmp_path):
    # safetensors replaces the file it is given with a new one of mode 0600.
    import torch

    from cyclegan.config import ModelConfig
    from cyclegan.checkpoint import save_checkpoint

    previous = os.umask(0o022)
    try:
        files = save_checkpoint(tmp_path / "checkpoints", {"G_AB": torch.nn.Linear(2, 2)}, ModelConfig(), None,
                                epoch=0, iteration=0)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(files.weights.stat().st_mode) == 0o644


def test_cyclegan_cache_is_the_root_of_the_models_and_the_segmenters_caches(monkeypatch, tmp_path):
    from cyclegan import zoo
    from cyclegan.evaluation import segmenter

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert zoo.cache_dir() == tmp_path / "cache" / "models"
    assert segmenter.cache_dir() == tmp_path / "cache" / "segmenters"
    monkeypatch.setenv(CACHE_ENV, "~/elsewhere")
    assert zoo.cache_dir() == Path.home() / "elsewhere" / "models"
    assert segmenter.cache_dir() == Path.home() / "elsewhere" / "segmenters"
