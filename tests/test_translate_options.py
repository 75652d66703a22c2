"""translate's and serve's options: typed dataclasses whose flags are generated as training's are,
so a default lives in one place and a flag cannot drift from its field."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from cyclegan.cli import build_parser, main
from cyclegan.cli.options import add_option_arguments, options_from_args
from cyclegan.config import ServeLimits, option
from cyclegan.errors import ConfigError
from cyclegan.inference.options import TranslateOptions
from cyclegan.inference.video import VIDEO_BATCH_SIZE, VideoOptions

from conftest import require_module


def translate_args(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["translate", "model", "a.png", "--out", "o", *flags])


def test_translate_without_flags_gives_the_dataclass_defaults():
    assert options_from_args(TranslateOptions, translate_args()) == TranslateOptions()


def test_every_translate_flag_sets_its_field():
    options = options_from_args(TranslateOptions, translate_args(
        "--tile", "256", "--overlap", "16", "--no-nnpack", "--channels-last", "--batch_size", "3",
        "--io-threads", "2", "--overwrite", "--video-codec", "libvpx-vp9", "--video-crf", "20",
        "--frames-dir", "frames", "--start", "1:30", "--duration", "5"))
    assert options == TranslateOptions(tile=256, overlap=16, nnpack=False, channels_last=True, batch_size=3,
                                       io_threads=2, overwrite=True, video_codec="libvpx-vp9", video_crf=20,
                                       frames_dir=Path("frames"), start=90.0, duration=5.0)
    assert options_from_args(TranslateOptions, translate_args("--no-channels-last")).channels_last is False


def test_the_video_options_take_the_batch_and_leave_its_default_to_the_video_module():
    assert TranslateOptions(batch_size=2, video_crf=20).video_options() == VideoOptions(batch_size=2, crf=20)
    assert TranslateOptions().video_options().frames_per_batch == VIDEO_BATCH_SIZE == 4


def test_overwrite_is_documented_as_asked():
    translate = build_parser()._subparsers._group_actions[0].choices["translate"]
    action = next(action for action in translate._actions if "--overwrite" in action.option_strings)
    assert action.help == "Replace output files that exist already (inputs are never replaced)."
    assert action.default is False


@pytest.mark.parametrize("flag", ["--batch-size", "--io-threads"])
def test_a_count_below_one_is_a_one_line_error(tmp_path, capsys, flag):
    assert main(["translate", str(tmp_path / "missing"), "a.png", "--out", str(tmp_path / "o"), flag, "0"]) == 2
    assert capsys.readouterr().err == f"cyclegan translate: error: {flag} must be at least 1, got 0\n"


def test_serve_flags_build_its_limits_with_their_units():
    args = build_parser().parse_args(["serve", "run"])
    assert options_from_args(ServeLimits, args) == ServeLimits()
    args = build_parser().parse_args(["serve", "run", "--max-upload-mb", "0.5", "--max-pixels", "100", "--workers",
                                      "1", "--queue", "0", "--timeout", "3"])
    assert options_from_args(ServeLimits, args) == ServeLimits(max_upload_bytes=524288, max_pixels=100, workers=1,
                                                               queue=0, timeout_s=3.0)


@pytest.mark.parametrize("flag, value, message", [
    # Named by their fields alone before (max_upload_bytes for --max-upload-mb), not by what the user typed.
    ("--max-upload-mb", "0", "max_upload_bytes (--max-upload-mb) must be at least 1, got 0"),
    ("--max-pixels", "0", "max_pixels (--max-pixels) must be at least 1, got 0"),
    ("--workers", "0", "workers (--workers) must be at least 1, got 0"),
    ("--queue", "-1", "queue (--queue) must be 0 or more, got -1"),
    ("--timeout", "0", "timeout_s (--timeout) must be positive, got 0.0"),
])
def test_a_serving_limit_out_of_range_is_one_line_naming_its_flag(tmp_path, capsys, flag, value, message):
    require_module("starlette", "web")
    assert main(["serve", str(tmp_path / "missing"), flag, value]) == 2
    assert capsys.readouterr().err == f"cyclegan serve: error: serving limit {message}\n"


@pytest.mark.parametrize("port", [-1, 65536])
def test_a_port_outside_the_tcp_range_is_refused_by_name_not_blamed_on_the_host(port):
    require_module("starlette", "web")
    from cyclegan.serving.app import bind_socket

    # -1 used to say "cannot resolve --host 127.0.0.1", and 70000 that the port was already in use.
    with pytest.raises(ConfigError) as refused:
        bind_socket("127.0.0.1", port)
    assert str(refused.value) == f"--port must be 0 to 65535 (0 picks a free one), got {port}"


@dataclass(frozen=True)
class Example:
    """A made-up section."""

    size: int = option(8, "The size", metavar="PX")
    name: str | None = option(None, "A name (default: none)", aliases=("--called",))
    loud: bool = option(False, "Be loud")
    kind: str = option("a", "The kind", choices=("a", "b"))


def test_a_dataclass_gets_one_typed_flag_per_field_with_its_help_and_default():
    parser = argparse.ArgumentParser()
    add_option_arguments(parser, Example)
    actions = {action.dest: action for action in parser._actions if action.dest != "help"}
    assert actions["size"].option_strings == ["--size"] and actions["size"].help == "The size (default: 8)"
    assert actions["size"].metavar == "PX"
    assert actions["name"].option_strings == ["--name", "--called"] and actions["name"].help == "A name (default: none)"
    assert actions["kind"].choices == ("a", "b")
    assert options_from_args(Example, parser.parse_args([])) == Example()
    assert options_from_args(Example, parser.parse_args(["--size", "3", "--called", "x", "--loud", "--kind", "b"])) \
        == Example(size=3, name="x", loud=True, kind="b")
    assert options_from_args(Example, parser.parse_args(["--loud", "--no-loud"])).loud is False


@pytest.mark.parametrize("argv, message", [
    # argparse showed only "invalid parse_time value: 'abc'", and inf MiB ended in an OverflowError traceback.
    (["translate", "model", "a.png", "--out", "o", "--start", "abc"],
     "cyclegan translate: error: argument --start: not a time: 'abc' (use seconds, MM:SS or HH:MM:SS)"),
    (["serve", "run", "--max-upload-mb", "inf"],
     "cyclegan serve: error: argument --max-upload-mb: not a size in MiB: 'inf' (e.g. 20 or 0.5)"),
])
def test_a_value_an_option_cannot_parse_is_refused_with_the_parsers_own_reason(capsys, argv, message):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == message
