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


def test_a_staged_folder_appears_whole_under_its_name_and_leaves_nothing_beside_it(tmp_path):
    from cyclegan.fileio import staged_folder

    destination = tmp_path / "dataset"
    with staged_folder(destination) as staged:
        (staged.path / "trainA").mkdir()
        (staged.path / "trainA" / "0.png").write_bytes(b"png")
        assert not destination.exists()  # nothing under the name until the write is complete
    assert (destination / "trainA" / "0.png").read_bytes() == b"png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]


@pytest.mark.parametrize("interruption", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_an_interrupted_staged_write_leaves_no_destination_and_no_staging_folder(tmp_path, interruption):
    from cyclegan.fileio import staged_folder

    destination = tmp_path / "dataset"
    with pytest.raises(type(interruption)):
        with staged_folder(destination) as staged:
            (staged.path / "half.png").write_bytes(b"half")
            raise interruption
    assert list(tmp_path.iterdir()) == []


def test_a_staged_folder_can_move_a_folder_inside_it_into_place_and_drops_the_rest(tmp_path):
    from cyclegan.fileio import staged_folder

    destination = tmp_path / "horse2zebra"
    destination.mkdir()  # an empty folder is replaced
    with staged_folder(destination) as staged:
        (staged.path / "horse2zebra" / "trainA").mkdir(parents=True)
        (staged.path / "__MACOSX").mkdir()
        staged.contents = staged.path / "horse2zebra"
    assert sorted(p.name for p in destination.iterdir()) == ["trainA"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["horse2zebra"]


def test_a_staged_folder_refuses_a_destination_that_holds_files(tmp_path):
    from cyclegan.fileio import staged_folder

    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="dataset already exists and is not an empty folder"):
        with staged_folder(tmp_path / "dataset"):
            pass
    assert (tmp_path / "dataset" / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]


def test_names_are_shortened_by_their_bytes_on_disk_even_when_they_are_not_utf8():
    from cyclegan.fileio import shorten_to_bytes

    assert shorten_to_bytes("abc", 3) == "abc"
    assert shorten_to_bytes("aé b", 2) == "a"  # é is 2 bytes: never cut inside it
    undecodable = "caf\udce9 latin-1"  # b"caf\xe9 latin-1", as os.listdir gives a Latin-1 name
    assert shorten_to_bytes(undecodable, 4) == "caf\udce9"
    assert shorten_to_bytes(undecodable, 100) == undecodable
