"""Command-line flags generated from the config dataclasses, so the two can never disagree."""
from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any, Callable

from cyclegan.cli import reference
from cyclegan.config import SECTIONS, TrainConfig, model_default_text
from cyclegan.config import flag_of as _flag
from cyclegan.config import negative_flag_of


def _dest_of(field: dataclasses.Field) -> str:
    return field.name


def _value_type(field: dataclasses.Field, owner: type):
    hint = typing.get_type_hints(owner)[field.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _spellings(flag: str, aliases: tuple[str, ...] = ()) -> list[str]:
    """`flag`, its snake_case spelling (the reference's) and further aliases, each once."""
    return list(dict.fromkeys([flag, reference.snake_case(flag) or flag, *aliases]))


def _own_spellings(field: dataclasses.Field, flag: str) -> list[str]:
    return [flag, *field.metadata.get("aliases", ())] if flag == _flag(field) else [flag]


def _shown_default(field: dataclasses.Field) -> str | None:
    shown = field.metadata.get("shown_default")
    return shown if shown is not None else None if field.default is None else str(field.default)


def add_option_arguments(parser, owner: type, *, dest: Callable[[dataclasses.Field], str] = _dest_of,
                         spellings: Callable[[dataclasses.Field, str], list[str]] = _own_spellings,
                         value_type: Callable[[dataclasses.Field, type], Callable] = lambda field, base: base,
                         shown_default: Callable[[dataclasses.Field], str | None] = _shown_default,
                         keep_defaults: bool = True, groups: dict | None = None) -> None:
    """Add one flag per field of the dataclass `owner` (made with `cyclegan.config.option`), to
    `parser` or to the one of `groups` its field's `group` names: a bool field gets its flag and
    the negative one, any other a typed flag (the field's `parse`, else its type). The help is the
    field's, with " (default: ...)" where `shown_default` gives one.

    With `keep_defaults` the namespace holds every field's default (`options_from_args` builds the
    dataclass from it); without, defaults are left out (SUPPRESS), so that only the flags a user
    typed appear. `dest`, `spellings` (a field's flags, given the positive or the negative one)
    and `value_type` change how each field is named and read, as training's options need."""
    for field in dataclasses.fields(owner):
        container = (groups or {}).get(field.metadata.get("group"), parser)
        default = field.default if keep_defaults else argparse.SUPPRESS
        shown = shown_default(field)
        help_text = field.metadata["help"] + (f" (default: {shown})" if shown else "")
        base = _value_type(field, owner)
        if base is bool:
            container.add_argument(*spellings(field, _flag(field)), dest=dest(field), action="store_true",
                                   default=default, help=help_text)
            container.add_argument(*spellings(field, negative_flag_of(field)), dest=dest(field),
                                   action="store_false", default=default, help=f"Opposite of {_flag(field)}.")
            continue
        choices = field.metadata.get("choices")
        container.add_argument(*spellings(field, _flag(field)), dest=dest(field),
                               type=_typed_error(field.metadata["parse"]) if field.metadata.get("parse")
                               else value_type(field, base), default=default,
                               choices=choices, help=help_text,
                               metavar=None if choices else field.metadata.get("metavar") or field.name.upper())


def _typed_error(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """`parse` as an argparse type whose ValueError message is shown: argparse shows only
    "invalid parse_time value: 'abc'" for a ValueError, but the message of an ArgumentTypeError."""
    def typed(text: str):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    typed.__name__ = parse.__name__
    return typed


def options_from_args(owner: type, args: argparse.Namespace, **values):
    """The `owner` dataclass from the flags `add_option_arguments(..., keep_defaults=True)` added,
    with `values` for fields set otherwise."""
    typed = {field.name: getattr(args, _dest_of(field)) for field in dataclasses.fields(owner)
             if field.name not in values}
    return owner(**typed, **values)


def add_config_arguments(parser: argparse.ArgumentParser, sections=tuple(SECTIONS)) -> None:
    """Add one flag per config field. Defaults are left out of the namespace (SUPPRESS), so that
    only the flags a user actually typed override a config file or a resumed run's config.

    Each flag also answers to the reference code's spellings of it (`cyclegan.cli.reference`),
    listed on the same help line."""
    for section_name in sections:
        section_cls = SECTIONS[section_name]
        group = parser.add_argument_group(f"{section_name} options", section_cls.__doc__.splitlines()[0])

        def spellings(field, flag, section_name=section_name):
            aliases = reference.TRAIN_ALIASES.get((section_name, field.name), ()) if flag == _flag(field) else ()
            return _spellings(flag, aliases)

        add_option_arguments(
            group, section_cls, keep_defaults=False, spellings=spellings,
            dest=lambda field, section_name=section_name: f"{section_name}.{field.name}",
            value_type=lambda field, base, section_name=section_name: reference.value_type(section_name, field.name,
                                                                                          base),
            shown_default=lambda field, section_name=section_name: str(
                model_default_text(section_name, field.name) or field.default))


def given_options(args: argparse.Namespace) -> dict[str, dict]:
    """The config values typed on the command line, as {section: {field: value}}."""
    given: dict[str, dict] = {}
    for dest, value in vars(args).items():
        if "." in dest:
            section, name = dest.split(".", 1)
            given.setdefault(section, {})[name] = value
    return given


def merge(base: TrainConfig, overrides: dict[str, dict]) -> TrainConfig:
    values = base.to_dict()
    for section, fields in overrides.items():
        values[section].update(fields)
    return TrainConfig.from_dict(values)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then --config FILE, then the flags typed on the command line. The config applies
    the model's own defaults itself, to whatever none of these set."""
    config_file = getattr(args, "config", None)
    values = TrainConfig.load(Path(config_file)).to_dict() if config_file else {}
    for section, fields in given_options(args).items():
        values.setdefault(section, {}).update(fields)
    return TrainConfig.from_dict(values)
