"""How every command reads its command line: whole option names only, one-line errors that name an
unknown option and suggest the real one, and the flags several commands share defined once."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cyclegan.cli import build_parser, main
from cyclegan.config import BACKENDS, DIRECTIONS, PRECISIONS

SRC = Path(__file__).resolve().parents[1] / "src"


def all_parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from all_parsers(child)


def parser_of(prog: str) -> argparse.ArgumentParser:
    return next(parser for parser in all_parsers(build_parser()) if parser.prog == prog)


def option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return parser._option_string_actions[flag]


def error_of(argv: list[str], capsys) -> str:
    """What `cyclegan ARGV` prints when it refuses its command line (exit status 2)."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    return capsys.readouterr().err


def test_no_command_or_subcommand_accepts_abbreviated_options():
    parsers = list(all_parsers(build_parser()))
    assert len(parsers) > 15  # every subcommand, down to `data prepare unpaired`
    assert [parser.prog for parser in parsers if parser.allow_abbrev] == []


@pytest.mark.parametrize("argv, message", [
    # `--out` was taken for --output-nc, so `--out 1` silently made domain B grayscale.
    (["train", "--out", "1"], "cyclegan train: error: unknown option --out; did you mean --output-nc?"),
    (["translate", "model.pth", "a.png", "--out", "o", "--dev", "cpu"],
     "cyclegan translate: error: unknown option --dev; did you mean --device?"),
    (["train", "--lamda-A", "3"], "cyclegan train: error: unknown option --lamda-A; did you mean --lambda-A?"),
    (["data", "synth", "out", "--trian=5"], "cyclegan data synth: error: unknown option --trian; did you mean --train?"),
    (["models", "download", "horse2zebra", "--sha", "00"],
     "cyclegan models download: error: unknown option --sha; did you mean --sha256?"),
    (["--verbose", "train"], "cyclegan: error: unknown option --verbose; `cyclegan --help` lists the options"),
])
def test_an_unknown_option_is_refused_in_one_line_that_names_it_and_the_closest_real_one(argv, message, capsys):
    assert error_of(argv, capsys) == message + "\n"


def test_an_unknown_option_is_named_before_a_missing_argument(capsys):
    assert error_of(["translate", "model.pth", "a.png", "--dev", "cpu"], capsys) == (
        "cyclegan translate: error: unknown option --dev; did you mean --device?\n")


def test_arguments_after_a_double_dash_are_refused_by_commands_that_take_none(capsys):
    assert error_of(["translate", "model.pth", "a.png", "--out", "o", "--", "--device", "cpu"], capsys) == (
        "cyclegan translate: error: unrecognized arguments after --: --device cpu\n")


def test_the_installed_command_refuses_an_abbreviation_before_doing_anything(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cyclegan", "train", "--data", str(tmp_path), "--out", "runs"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(SRC)})
    assert result.returncode == 2
    assert result.stderr == "cyclegan train: error: unknown option --out; did you mean --output-nc?\n"
    assert result.stdout == "" and list(tmp_path.iterdir()) == []


# Which commands have each shared flag, and its default there. Training takes --device and
# --precision from its config (RunConfig), so it is not listed.
SHARED_FLAGS = {
    "--device": {"translate": "auto", "serve": "auto", "evaluate": "auto", "demo": "auto"},
    "--precision": {"translate": "auto", "serve": "auto", "evaluate": "auto"},
    "--direction": {"translate": None, "export": None, "serve": None},  # None: the model's first direction
    "--backend": {"translate": "auto"},
    "--no-progress": {"translate": True, "demo": True, "data download": True, "models download": True},
}
CHOICES = {"--device": None, "--precision": PRECISIONS, "--direction": DIRECTIONS, "--backend": BACKENDS,
           "--no-progress": None}


@pytest.mark.parametrize("flag", list(SHARED_FLAGS))
def test_a_flag_shared_by_several_commands_is_the_same_flag_in_each(flag):
    actions = {command: option(parser_of(f"cyclegan {command}"), flag) for command in SHARED_FLAGS[flag]}
    assert {command: action.default for command, action in actions.items()} == SHARED_FLAGS[flag]
    assert {action.choices for action in actions.values()} == {CHOICES[flag]}
    assert len({action.dest for action in actions.values()}) == 1
    if flag != "--direction":  # its help says what the direction selects in each command
        assert len({action.help for action in actions.values()}) == 1


def test_each_shared_flag_is_defined_in_one_place_only():
    sources = {path.name: path.read_text() for path in (SRC / "cyclegan" / "cli").glob("*.py")}
    for flag in SHARED_FLAGS:
        defining = [name for name, text in sources.items() if f'add_argument("{flag}"' in text]
        assert defining == ["arguments.py"], flag


def test_serve_collects_every_direction_given_and_translate_takes_one():
    serve = build_parser().parse_args(["serve", "run", "--direction", "BtoA", "--direction", "AtoB"])
    translate = build_parser().parse_args(["translate", "run", "a.png", "--out", "o", "--direction", "BtoA"])
    assert (serve.direction, translate.direction) == (["BtoA", "AtoB"], "BtoA")
    assert build_parser().parse_args(["translate", "run", "a.png", "--out", "o", "--no-progress"]).progress is False


@pytest.mark.parametrize("command, argv, unwinds", [
    ("translate", ["translate", "model", "photos", "--out", "out"], True),
    ("study", ["study", "precision", "--out", "out", "--iters", "1"], False),
    ("experiment", ["experiment", "ablation", "--data", "d", "--out", "out", "--iters", "1"], False),
])
def test_sigterm_unwinds_a_command_but_not_one_whose_trainings_are_child_processes(monkeypatch, command, argv,
                                                                                  unwinds):
    # Unwound, a translation removes the temporary file it was writing; a study or experiment that
    # unwound would kill its training children before they save, so SIGTERM keeps its default
    # there and reaches the children themselves.
    import importlib
    import signal

    from cyclegan import cli

    seen = []
    monkeypatch.setattr(importlib.import_module(f"cyclegan.cli.{command}"), "run",
                        lambda args: seen.append(signal.getsignal(signal.SIGTERM)) or 0)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(argv) == 0
    assert (seen[0] is not before) is unwinds
    assert signal.getsignal(signal.SIGTERM) is before  # put back afterwards
