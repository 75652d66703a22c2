"""Where translated videos and their frames go, and what a failure to write one says: a video is
never written over an input or an existing file, frames of two videos never share a folder, and a
muxer's error names the output and lets the other files go on."""
from __future__ import annotations

import errno
import os

import pytest

from cyclegan.cli import main
from cyclegan.inference import video as video_module

from conftest import require_module
from test_video import decoded_frames, make_clip, save_tiny_model

av = require_module("av", "video")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("video_model") / "run")


def translate(run, *arguments) -> int:
    return main(["translate", str(run), *map(str, arguments), "--device", "cpu", "--no-progress"])


def test_a_video_translated_into_its_own_folder_is_refused_and_left_as_it_was(run, tmp_path, capsys):
    clips = tmp_path / "clips"
    clips.mkdir()
    clip = make_clip(clips / "clip.mp4", frames=4, rate=25, audio=False, quick=True)
    before = clip.read_bytes()
    assert translate(run, clips, "--out", clips, "--overwrite") == 2
    assert clip.read_bytes() == before and [path.name for path in clips.iterdir()] == ["clip.mp4"]
    error = capsys.readouterr().err
    assert "clip.mp4" in error and "--out" in error and "Traceback" not in error


def test_an_existing_translated_video_is_kept_unless_overwrite_is_given(run, tmp_path, capsys):
    clip = make_clip(tmp_path / "clip.mp4", frames=4, rate=25, audio=False, quick=True)
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.mp4").write_bytes(b"an earlier result")
    assert translate(run, clip, "--out", out) == 2
    assert (out / "clip.mp4").read_bytes() == b"an earlier result"
    assert "already exists" in capsys.readouterr().err
    assert translate(run, clip, "--out", out, "--overwrite") == 0
    assert len(decoded_frames(out / "clip.mp4")) == 4


def test_frames_of_same_named_videos_get_a_folder_each(run, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    make_clip(tmp_path / "a" / "clip.mp4", frames=3, rate=25, audio=False, quick=True)
    make_clip(tmp_path / "b" / "clip.mp4", frames=5, rate=25, audio=False, quick=True)
    make_clip(tmp_path / "b" / "clip.mov", frames=2, rate=25, audio=False, quick=True)
    frames = tmp_path / "frames"
    assert translate(run, tmp_path / "a" / "clip.mp4", tmp_path / "b", "--out", tmp_path / "out",
                     "--frames-dir", frames) == 0
    counts = {folder.name: len(list(folder.iterdir())) for folder in frames.iterdir()}
    # Each video's frames in a folder named after its output.
    assert sorted((tmp_path / "out").iterdir()) == [tmp_path / "out" / name
                                                     for name in ("clip.mov", "clip.mp4", "clip_1.mp4")]
    assert counts == {"clip.mp4": 3, "clip_1": 5, "clip.mov": 2}


def test_frames_already_in_a_frames_folder_are_kept_unless_overwrite_is_given(run, tmp_path, capsys):
    clip = make_clip(tmp_path / "clip.mp4", frames=3, rate=25, audio=False, quick=True)
    (tmp_path / "frames" / "clip").mkdir(parents=True)
    (tmp_path / "frames" / "clip" / "000001.png").write_bytes(b"an earlier frame")
    assert translate(run, clip, "--out", tmp_path / "out", "--frames-dir", tmp_path / "frames") == 2
    assert "--overwrite" in capsys.readouterr().err and not (tmp_path / "out" / "clip.mp4").exists()
    assert translate(run, clip, "--out", tmp_path / "out", "--frames-dir", tmp_path / "frames", "--overwrite") == 0
    assert len(list((tmp_path / "frames" / "clip").iterdir())) == 3


class FailingContainer:
    """The real output container, whose mux fails with `error` once the first packet is in."""

    def __init__(self, container, error):
        self._container, self._error, self._muxed = container, error, 0

    def mux(self, packet):
        if self._muxed:
            raise self._error
        self._muxed += 1
        return self._container.mux(packet)

    def __getattr__(self, name):
        return getattr(self._container, name)


@pytest.mark.parametrize("error, expected", [
    (av.error.FFmpegError(errno.EINVAL, "Invalid argument"), "Invalid argument"),
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), "No space left on device"),
])
def test_a_muxer_error_names_the_output_and_the_other_files_are_still_translated(run, tmp_path, capsys,
                                                                                 monkeypatch, error, expected):
    clips = tmp_path / "clips"
    clips.mkdir()
    make_clip(clips / "a.mp4", frames=6, rate=25, audio=False, quick=True)
    make_clip(clips / "b.mp4", frames=6, rate=25, audio=False, quick=True)
    opened = video_module._Sink.__init__

    def failing_for_a(self, av_module, path, *rest):
        opened(self, av_module, path, *rest)
        if ".a.mp4." in path.name:  # the temporary file of a.mp4's translation
            self.container = FailingContainer(self.container, error)

    monkeypatch.setattr(video_module._Sink, "__init__", failing_for_a)
    out = tmp_path / "out"
    assert translate(run, clips, "--out", out, "--batch-size", "2") == 1
    assert [path.name for path in out.iterdir()] == ["b.mp4"]
    assert len(decoded_frames(out / "b.mp4")) == 6
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    [reason] = [line for line in captured.err.splitlines() if "a.mp4" in line]
    assert str(out / "a.mp4") in reason and expected in reason
