"""Where translations go: never over an input, never over an existing file without --overwrite, and
every file that cannot be named or written is reported while the rest are translated."""
from __future__ import annotations

import errno
import os

import pytest
import torch
from PIL import Image

from cyclegan.checkpoint import save_checkpoint
from cyclegan.cli import main
from cyclegan.config import ModelConfig
from cyclegan.errors import ConfigError
from cyclegan.inference import Translator
from cyclegan.inference import translator as translator_module
from cyclegan.training.model import CycleGAN

from conftest import write_images


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("outputs_model") / "run"
    config = ModelConfig(net_g="resnet_6blocks", ngf=8, ndf=8)
    torch.manual_seed(0)
    save_checkpoint(folder / "checkpoints", CycleGAN(config).networks(), config, None, epoch=0, iteration=0)
    return folder


def translate(run, *arguments) -> int:
    return main(["translate", str(run), *map(str, arguments), "--device", "cpu", "--no-progress"])


def contents(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    [line] = captured.err.strip().splitlines()
    return line


# --- inputs are never replaced -------------------------------------------------------------------

@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_translating_a_folder_into_itself_is_refused_before_anything_is_written(run, tmp_path, capsys, overwrite):
    photos = tmp_path / "photos"
    write_images(photos, 2, size=(32, 32))
    before = contents(photos)
    assert translate(run, photos, "--out", photos, *overwrite) == 2
    assert contents(photos) == before
    line = one_error_line(capsys)
    assert "img_000.png" in line and "input" in line and f"--out {tmp_path / 'photos_translated'}" in line


def test_an_input_file_whose_output_is_itself_is_refused(run, tmp_path, capsys):
    photos = tmp_path / "photos"
    [image] = write_images(photos, 1, size=(32, 32))
    before = image.read_bytes()
    assert translate(run, image, "--out", photos) == 2
    assert image.read_bytes() == before and contents(photos) == {image.name: before}
    assert str(image) in one_error_line(capsys)


def test_an_out_folder_inside_an_input_folder_is_refused_only_where_names_collide(run, tmp_path, capsys):
    photos = tmp_path / "photos"
    write_images(photos, 1, size=(32, 32))
    [inner] = write_images(photos / "translated", 1, size=(32, 32), prefix="inner")
    # The out folder's own file is also an input: its translation would replace it.
    assert translate(run, photos, inner, "--out", photos / "translated") == 2
    assert contents(photos / "translated") == {inner.name: inner.read_bytes()}
    assert inner.name in one_error_line(capsys)
    # No name collides: translated into the sub-folder of the input folder.
    assert translate(run, photos, "--out", photos / "translated") == 0
    assert sorted(contents(photos / "translated")) == ["img_000.png", inner.name]


def test_an_out_folder_reached_through_a_link_or_a_hard_linked_input_is_still_the_input(run, tmp_path, capsys):
    photos = tmp_path / "photos"
    [image] = write_images(photos, 1, size=(32, 32))
    before = image.read_bytes()
    (tmp_path / "alias").symlink_to(photos, target_is_directory=True)
    assert translate(run, photos, "--out", tmp_path / "alias", "--overwrite") == 2
    assert "img_000.png" in one_error_line(capsys)
    linked = tmp_path / "out"
    linked.mkdir()
    os.link(image, linked / image.name)
    assert translate(run, image, "--out", linked, "--overwrite") == 2
    assert "img_000.png" in one_error_line(capsys)
    assert image.read_bytes() == before


def photos_and_an_earlier_result(tmp_path, count: int):
    """`count` photos img_000.png... and an --out folder already holding an img_001.png of its own."""
    photos, out = tmp_path / "photos", tmp_path / "out"
    write_images(photos, count, size=(32, 32))
    out.mkdir()
    (out / "img_001.png").write_bytes(b"an earlier result")
    return photos, out


def test_an_existing_output_is_kept_unless_overwrite_is_given(run, tmp_path, capsys):
    photos, out = photos_and_an_earlier_result(tmp_path, 2)
    assert translate(run, photos, "--out", out) == 2
    assert contents(out) == {"img_001.png": b"an earlier result"}  # nothing written, not even img_000
    line = one_error_line(capsys)
    assert str(out / "img_001.png") in line and "already exists" in line and "--overwrite" in line
    assert translate(run, photos, "--out", out, "--overwrite") == 0
    assert sorted(contents(out)) == ["img_000.png", "img_001.png"]
    assert Image.open(out / "img_001.png").size == (32, 32)


def test_the_library_refuses_an_existing_output_with_a_config_error(run, tmp_path):
    photos = tmp_path / "photos"
    write_images(photos, 1, size=(32, 32))
    out = tmp_path / "out"
    translator = Translator.from_checkpoint(run, device="cpu")
    translator.translate_files([photos], out)
    with pytest.raises(ConfigError, match="img_000.png already exists"):
        translator.translate_files([photos], out)
    assert [path.name for path in translator.translate_files([photos], out, overwrite=True).written] == ["img_000.png"]


@pytest.mark.parametrize("out_name, in_the_way, reason", [
    ("results.png", "results.png", "is not a folder"),
    ("results.png/sub", "results.png", "is not a folder"),
    ("dangling", "dangling", "is a link to nothing"),
])
def test_an_out_folder_that_is_a_file_is_refused_by_name_and_the_file_kept(run, tmp_path, capsys, out_name, in_the_way,
                                                                          reason):
    # It used to fail after the model was loaded with the operating system's bare "File exists (PATH)".
    photos = tmp_path / "photos"
    write_images(photos, 1, size=(32, 32))
    (tmp_path / "results.png").write_bytes(b"an earlier result")
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    out = tmp_path / out_name
    assert translate(run, photos, "--out", out) == 2
    assert one_error_line(capsys) == (f"cyclegan translate: error: cannot write into --out {out}: "
                                      f"{tmp_path / in_the_way} {reason}; choose another --out folder")
    assert (tmp_path / "results.png").read_bytes() == b"an earlier result"
    assert not (tmp_path / "missing").exists()


# --- names and writes that fail are reported, the rest translated --------------------------------

def test_a_file_named_without_an_image_extension_is_reported_and_the_rest_translated(run, tmp_path, capsys):
    photos = tmp_path / "photos"
    write_images(photos, 1, size=(32, 32))
    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "x.jpg.1", format="JPEG")
    assert translate(run, photos / "img_000.png", tmp_path / "x.jpg.1", "--out", tmp_path / "out") == 1
    assert sorted(contents(tmp_path / "out")) == ["img_000.png"]
    error = capsys.readouterr().err
    assert "Traceback" not in error
    [reason] = [line for line in error.splitlines() if "x.jpg.1" in line]
    assert "'.1'" in reason and "rename" in reason


def test_a_folder_of_only_unsupported_photos_says_so_and_fails(run, tmp_path, capsys):
    photos = tmp_path / "phone"
    photos.mkdir()
    for name in ("IMG_0001.HEIC", "IMG_0002.heic", "notes.txt"):
        (photos / name).write_bytes(b"\x00\x00\x00\x18ftypheic")
    assert translate(run, photos, "--out", tmp_path / "out") == 1
    error = capsys.readouterr().err
    assert "Traceback" not in error
    [reason] = [line for line in error.splitlines() if str(photos) in line]
    assert "no supported images" in reason and ".heic (2)" in reason and ".txt (1)" in reason
    assert ".png" in reason and ".jpg" in reason


def test_a_name_near_the_file_system_limit_is_translated(run, tmp_path):
    photos = tmp_path / "photos"
    write_images(photos, 1, size=(32, 32))
    long_name = "l" * 251 + ".png"  # 255 bytes: the longest name the file system allows
    Image.new("RGB", (32, 32), (10, 200, 10)).save(photos / long_name)
    report = Translator.from_checkpoint(run, device="cpu").translate_files([photos], tmp_path / "out")
    assert report.failed == []
    assert sorted(contents(tmp_path / "out")) == ["img_000.png", long_name]


def test_a_renamed_duplicate_too_long_for_the_file_system_is_shortened_with_a_note(run, tmp_path):
    long_name = "l" * 251 + ".png"
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (32, 32), (10, 200, 10)).save(tmp_path / folder / long_name)
    report = Translator.from_checkpoint(run, device="cpu").translate_files([tmp_path / "a", tmp_path / "b"],
                                                                          tmp_path / "out")
    shortened = "l" * 249 + "_1.png"
    assert report.failed == []
    assert sorted(contents(tmp_path / "out")) == sorted([long_name, shortened])
    [note] = report.notes
    assert str(tmp_path / "b" / long_name) in note and shortened in note and "255" in note


def test_a_file_that_cannot_be_written_is_reported_and_the_rest_translated(run, tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    write_images(photos, 3, size=(32, 32))
    save = translator_module.save_image_atomic

    def too_large_for_the_second(image, path):
        if path.name == "img_001.png":  # one file's own problem (a full disk stops the run instead)
            raise OSError(errno.EFBIG, os.strerror(errno.EFBIG), str(path))
        save(image, path)

    monkeypatch.setattr(translator_module, "save_image_atomic", too_large_for_the_second)
    report = Translator.from_checkpoint(run, device="cpu").translate_files([photos], tmp_path / "out")
    assert [path.name for path in report.written] == ["img_000.png", "img_002.png"]
    [(path, reason)] = report.failed
    assert path == photos / "img_001.png"
    assert str(tmp_path / "out" / "img_001.png") in reason and os.strerror(errno.EFBIG) in reason and "\n" not in reason
    assert sorted(contents(tmp_path / "out")) == ["img_000.png", "img_002.png"]


# --- continuing an interrupted translation ---------------------------------------------------------

def test_skip_existing_leaves_the_outputs_that_exist_and_translates_the_rest(run, tmp_path, capsys):
    photos, out = photos_and_an_earlier_result(tmp_path, 3)
    capsys.readouterr()
    assert translate(run, photos, "--out", out, "--skip-existing") == 0
    assert capsys.readouterr().out.splitlines()[-1] == (f"translated 2 file(s) into {out}; left 1 that exist "
                                                        "already (--skip-existing)")
    assert contents(out)["img_001.png"] == b"an earlier result"
    assert sorted(contents(out)) == ["img_000.png", "img_001.png", "img_002.png"]
    assert Image.open(out / "img_002.png").size == (32, 32)


def test_skip_existing_and_overwrite_together_are_refused(run, tmp_path, capsys):
    photos = tmp_path / "photos"
    write_images(photos, 1, size=(32, 32))
    assert translate(run, photos, "--out", tmp_path / "out", "--skip-existing", "--overwrite") == 2
    assert one_error_line(capsys) == ("cyclegan translate: error: --overwrite replaces the outputs that exist and "
                                      "--skip-existing keeps them; give one")
    assert not (tmp_path / "out").exists()


def test_a_translation_stopped_by_sigterm_leaves_whole_files_only_and_skip_existing_finishes_it(run, tmp_path):
    # As `timeout` or a batch scheduler stops it: SIGTERM to the process group, mid-folder.
    import signal
    import subprocess
    import sys
    import time

    photos, out = tmp_path / "photos", tmp_path / "out"
    write_images(photos, 1500, size=(48, 48))
    command = [sys.executable, "-m", "cyclegan", "translate", str(run), str(photos), "--out", str(out),
               "--device", "cpu", "--no-progress", "--precision", "fp32"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while (not out.is_dir() or len(os.listdir(out)) < 20) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the translation ended before it could be stopped"
    os.killpg(process.pid, signal.SIGTERM)
    _stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 143
    assert stderr.strip().splitlines()[-1] == "cyclegan translate: terminated" and "Traceback" not in stderr
    written = sorted(os.listdir(out))
    assert 20 <= len(written) < 1500
    assert all(name.endswith(".png") and not name.startswith(".") for name in written)  # no temporary left
    assert all(Image.open(out / name).size == (48, 48) for name in written)  # each whole
    before = {name: (out / name).read_bytes() for name in written}

    finished = subprocess.run(command + ["--skip-existing"], capture_output=True, text=True, env=environment,
                              timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.splitlines()[-1] == (f"translated {1500 - len(written)} file(s) into {out}; left "
                                                f"{len(written)} that exist already (--skip-existing)")
    assert len(os.listdir(out)) == 1500
    assert all((out / name).read_bytes() == data for name, data in before.items())
