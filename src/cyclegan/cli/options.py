"""Command-line flags generated from the config dataclasses, so the two can never disagree."""
from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

from cyclegan.cli import reference
from cyclegan.config import SECTIONS, TrainConfig, model_default_text
from cyclegan.config import flag_of as _flag
from cyclegan.config import negative_flag_of


def _value_type(field: dataclasses.Field, owner: type):
    hint = typing.get_type_hints(owner)[field.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _spellings(flag: str, aliases: tuple[str, ...] = ()) -> list[str]:
    """`flag`, its snake_case spelling (the reference's) and further aliases, each once."""
    return list(dict.fromkeys([flag, reference.snake_case(flag) or flag, *aliases]))


def add_config_arguments(parser: argparse.ArgumentParser, sections=tuple(SECTIONS)) -> None:
    """Add one flag per config field. Defaults are left out of the namespace (SUPPRESS), so that
    only the flags a user actually typed override a config file or a resumed run's config.

    Each flag also answers to the reference code's spellings of it (`cyclegan.cli.reference`),
    listed on the same help line."""
    for section_name in sections:
        section_cls = SECTIONS[section_name]
        group = parser.add_argument_group(f"{section_name} options", section_cls.__doc__.splitlines()[0])
        for field in dataclasses.fields(section_cls):
            dest = f"{section_name}.{field.name}"
            default = model_default_text(section_name, field.name) or field.default
            help_text = field.metadata["help"] + f" (default: {default})"
            value_type = _value_type(field, section_cls)
            flags = _spellings(_flag(field), reference.TRAIN_ALIASES.get((section_name, field.name), ()))
            if value_type is bool:
                group.add_argument(*flags, dest=dest, action="store_true", default=argparse.SUPPRESS,
                                   help=help_text)
                negative = negative_flag_of(field)
                group.add_argument(*_spellings(negative), dest=dest, action="store_false",
                                   default=argparse.SUPPRESS, help=f"Opposite of {_flag(field)}.")
            else:
                group.add_argument(*flags, dest=dest, type=reference.value_type(section_name, field.name, value_type),
                                   default=argparse.SUPPRESS, choices=field.metadata.get("choices"), help=help_text,
                                   metavar=None if field.metadata.get("choices") else field.name.upper())


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


def config_to_argv(config: TrainConfig, base: TrainConfig | None = None) -> list[str]:
    """The flags that turn `base` (default: all defaults) into `config`: the exact command line
    that reproduces a run, for experiment tables and notes."""
    base = base or TrainConfig()
    argv: list[str] = []
    values, base_values = config.to_dict(), base.to_dict()
    for section_name, section_cls in SECTIONS.items():
        for field in dataclasses.fields(section_cls):
            value, default = values[section_name][field.name], base_values[section_name][field.name]
            if value == default:
                continue
            if isinstance(value, bool):
                negative = negative_flag_of(field)
                argv.append(_flag(field) if value else negative)
            elif value is not None and str(value).startswith("-"):
                argv.append(f"{_flag(field)}={value}")  # argparse reads "-1000,2000" alone as a flag
            elif value is not None:
                argv.extend([_flag(field), str(value)])
    return argv
