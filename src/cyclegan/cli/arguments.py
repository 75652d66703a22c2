"""The parser every command uses, and the flags several commands share, each defined once here.

`CommandParser` refuses abbreviations (argparse would take `train --out runs` for `--output-nc
runs`) and answers an unknown option with one line that names it and the closest real option.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib

from cyclegan.config import BACKENDS, DIRECTIONS, PICKS, PRECISIONS, RunConfig


class HelpFormatter(argparse.HelpFormatter):
    """Lists every spelling of an option once before its value: `--lambda-A, --lambda_A LAMBDA_A`,
    not `--lambda-A LAMBDA_A, --lambda_A LAMBDA_A`."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        value = self._format_args(action, self._get_default_metavar_for_optional(action))
        return f"{', '.join(action.option_strings)} {value}"


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser for `cyclegan` and each of its subcommands (add_subparsers makes every
    subparser one too): no abbreviations, one-line errors, unknown options named with a suggestion."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        # Each parser refuses its own leftovers (a subcommand's parser is called by its parent's),
        # so the error names the command that was meant and suggests one of its own options. A
        # command without subcommands looks first, so that an unknown option is named before any
        # missing argument is.
        if args is not None and self._subparsers is None:
            for arg in args:
                if arg == "--":
                    break
                if arg.startswith("--") and " " not in arg and \
                        arg.split("=", 1)[0] not in self._option_string_actions:
                    self.error(self.unknown_option_message(arg))
        namespace, extras = super().parse_known_args(args, namespace)
        unknown = next((arg for arg in extras if _looks_like_option(arg)), None)
        if unknown is not None:
            self.error(self.unknown_option_message(unknown))
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    def unknown_option_message(self, arg: str) -> str:
        flag = arg.split("=", 1)[0]
        known = [option for action in self._actions if action.help != argparse.SUPPRESS
                 for option in action.option_strings]
        # An abbreviation is best answered with the option it abbreviates.
        close = [option for option in known if option.startswith(flag)] or \
            difflib.get_close_matches(flag, known, n=1)
        hint = f"did you mean {close[0]}?" if close else f"`{self.prog} --help` lists the options"
        return f"unknown option {flag}; {hint}"

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _looks_like_option(arg: str) -> bool:
    if not arg.startswith("-") or arg == "-":
        return False
    try:
        float(arg)  # a negative number is a value
    except ValueError:
        return True
    return False


def _run_help(name: str) -> str:
    return next(field.metadata["help"] for field in dataclasses.fields(RunConfig) if field.name == name)


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    # The same choice as training's --device, so the same help.
    parser.add_argument("--device", default="auto", help=_run_help("device"))


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="Arithmetic: auto (for a folder or video of 50 images or more, the fastest candidate "
                             "timed on this model and size, cached for the next run; else the cached decision, else "
                             "fp32; see docs/PERFORMANCE.md), fp32, tf32 (CUDA), or bf16 / fp16 autocast "
                             "(default: auto).")


def add_direction_argument(parser: argparse.ArgumentParser, help: str, repeatable: bool = False) -> None:
    """--direction AtoB|BtoA; `repeatable` collects a list instead of one value. Left out it is
    None: the command takes the model's first direction (`default_direction`)."""
    if repeatable:
        parser.add_argument("--direction", choices=DIRECTIONS, action="append", help=help)
    else:
        parser.add_argument("--direction", choices=DIRECTIONS, default=None,
                            help=f"{help} (default: AtoB, or the one direction a one-direction model holds, "
                                 "as a CUT run trained with --direction BtoA)")


def default_direction(asked: str | None, model) -> str:
    """The direction a command applies: the one asked, else the model's first (AtoB where it has it,
    so that a model trained in one direction only is applied in that one without saying so)."""
    return asked or model.available_directions[0].value


def add_pick_argument(parser: argparse.ArgumentParser) -> None:
    """--pick latest|best: which checkpoint of a run folder."""
    parser.add_argument("--pick", choices=PICKS, default="latest",
                        help="Which checkpoint of a run folder: latest, or best (the best validation score of "
                             "training, checkpoints/best.json) (default: latest).")


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="Run the model with PyTorch or onnxruntime (auto: onnxruntime for .onnx files).")


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """--no-progress, read as `args.progress`."""
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="Do not show progress bars.")
