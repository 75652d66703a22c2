"""The `cyclegan` command. Each subcommand lives in its own module with a `register` function."""
from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import re
import signal
import sys
import threading

from cyclegan.cli import reference
from cyclegan.cli.arguments import CommandParser
from cyclegan.errors import CycleGANError

# Each module adds its subcommand(s) to the parser and sets `func` on them.
COMMAND_MODULES = ["train", "translate", "demo", "data", "serve", "models", "export", "experiment", "study", "evaluate",
                   "tune"]


def build_parser() -> argparse.ArgumentParser:
    import importlib

    # Every subcommand's parser is a CommandParser too (add_subparsers takes the parent's class).
    parser = CommandParser(
        prog="cyclegan",
        description="Unpaired image-to-image translation with CycleGAN (Zhu et al., ICCV 2017).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(f"cyclegan.cli.{module_name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # At exit, Python runs full garbage collections over every object still alive: about a second
    # of CPU once torch and torch._dynamo are loaded (docs/PERFORMANCE.md, "Whole process"). The
    # process is ending and nothing there needs collecting, so the heap is frozen first (atexit runs
    # before those collections; registered once however often main is called).
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after a bare `--` is passed through untouched (e.g. `experiment ... -- TRAIN FLAGS`).
    passthrough: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, passthrough = argv[:split], argv[split + 1:]
    args = parser.parse_args(_attach_negative_values(argv))
    if passthrough and not getattr(args, "takes_passthrough", False):
        parser.exit(2, f"cyclegan {args.command}: error: unrecognized arguments after --: {' '.join(passthrough)}\n")
    args.passthrough = passthrough
    for note in getattr(args, reference.NOTES, ()):  # reference-code options that change nothing here
        print(f"cyclegan {args.command}: note: {note}", file=sys.stderr)
    try:
        with _sigterm_unwinds() if getattr(args, "sigterm_unwinds", True) else contextlib.nullcontext():
            return int(args.func(args) or 0)
    except CycleGANError as error:
        print(f"cyclegan {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a vanished folder: one line, not a traceback
        where = f" ({error.filename})" if error.filename else ""
        print(f"cyclegan {args.command}: error: {error.strerror or error}{where}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"cyclegan {args.command}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"cyclegan {args.command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised wherever the command is, as Ctrl-C raises KeyboardInterrupt, so that it unwinds
    the same way: a file being written atomically is removed, not left as a temporary beside the
    outputs. `cyclegan train` handles SIGTERM itself while it trains (it finishes the step and saves);
    `study` and `experiment`, whose trainings are child processes, leave it to its default."""


@contextlib.contextmanager
def _sigterm_unwinds():
    if threading.current_thread() is not threading.main_thread():  # only there can a handler be set
        yield
        return

    def unwind(_signum, _frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


_NEGATIVE_VALUE = re.compile(r"-\.?\d[\d.,eE+-]*")


def _attach_negative_values(argv: list[str]) -> list[str]:
    """`--window-b -1000,2000` as `--window-b=-1000,2000`: argparse takes a lone "-1000,2000" for a
    flag (it accepts only single numbers that start with a minus sign), so a window or list of
    numbers starting below zero would otherwise need the `=` form."""
    joined: list[str] = []
    for token in argv:
        if (joined and joined[-1].startswith("--") and "=" not in joined[-1]
                and _NEGATIVE_VALUE.fullmatch(token) and "," in token):
            joined[-1] = f"{joined[-1]}={token}"
        else:
            joined.append(token)
    return joined
