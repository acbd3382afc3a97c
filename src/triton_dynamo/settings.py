# SPDX-License-Identifier: Apache-2.0
"""Typed configuration objects whose fields carry their own command-line flag and environment variable.

A configuration class is a frozen, keyword-only dataclass whose fields are made with :func:`setting`; it gets its
parser and its environment reading from :func:`build_parser` and :func:`from_env`, so flags, variables, help and
defaults never drift apart. Precedence: flag, then variable, then default. Validation lives in the class's
``__post_init__``, so an invalid object cannot be built.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True, kw_only=True)
    ... class Demo:
    ...     port: int = setting(8000, flag="--port", env="DEMO_PORT", help="port to listen on")
    >>> from_env(Demo, {"DEMO_PORT": "9000"}).port
    9000
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from .errors import ConfigurationError

T = TypeVar("T")


def setting(
    default: Any,
    *,
    flag: str,
    env: str,
    help: str,
    aliases: Sequence[str] = (),
    env_aliases: Sequence[str] = (),
    choices: Sequence[str] | None = None,
    repeat: bool = False,
) -> Any:
    """A dataclass field with its flag (and aliases), environment variable (and aliases), help and choices.

    ``repeat`` makes a tuple field whose flag may be given several times and whose variable is comma-separated.
    """
    meta = {
        "flag": flag,
        "env": env,
        "help": help,
        "aliases": tuple(aliases),
        "env_aliases": tuple(env_aliases),
        "choices": tuple(choices) if choices else None,
        "repeat": repeat,
    }
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple or a frozen value as a setting's default")
    return dataclasses.field(default=default, metadata=meta)


@functools.cache
def field_types(cls: type) -> dict[str, type]:
    """Each field's type from its annotation, ``X | None`` unwrapped to ``X`` (annotations may be strings)."""
    hints = typing.get_type_hints(cls)
    resolved = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        resolved[f.name] = typing.get_origin(kind) or kind
    return resolved


def build_parser(cls: type, prog: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with one option per field of ``cls``; options left out parse as None."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    kinds = field_types(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        names = [meta["flag"], *meta["aliases"]]
        shown = ", ".join(meta["choices"]) if meta["choices"] else None
        default = f.default if f.default is not None else "none"
        help_text = f"{meta['help']} (env {meta['env']}; default {default})"
        if kinds[f.name] is bool:
            parser.add_argument(
                *names, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif meta["repeat"]:
            parser.add_argument(*names, dest=f.name, action="append", help=help_text)
        else:
            parser.add_argument(
                *names, dest=f.name, choices=meta["choices"], metavar=shown and f"{{{shown}}}", help=help_text
            )
    return parser


def from_env(cls: type[T], env: Mapping[str, str] | None = None, **overrides: Any) -> T:
    """An instance of ``cls`` from environment variables (``os.environ`` by default); ``overrides`` win."""
    env = os.environ if env is None else env
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in overrides and overrides[f.name] is not None:
            raw = overrides[f.name]
        else:
            names = (f.metadata["env"], *f.metadata["env_aliases"])
            raw = next((env[name] for name in names if env.get(name)), None)
            if raw is None:
                continue
        values[f.name] = convert(f, raw, field_types(cls)[f.name])
    return cls(**values)


def from_args(
    cls: type[T], argv: Sequence[str] | None, prog: str, description: str, env: Mapping[str, str] | None = None
) -> T:
    """An instance of ``cls`` from command-line arguments, then environment variables, then defaults."""
    args = build_parser(cls, prog, description).parse_args(argv)
    return from_env(cls, env, **vars(args))


def convert(f: dataclasses.Field, raw: Any, kind: type) -> Any:
    """A flag's or variable's value as ``kind`` (the field's type, :func:`field_types`); a clear error naming the
    flag and variable otherwise."""
    try:
        if kind is tuple:
            items = raw.split(",") if isinstance(raw, str) else raw
            return tuple(item.strip() for item in items if item.strip())
        if kind is bool:
            return raw if isinstance(raw, bool) else parse_bool(raw)
        value = kind(raw)
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ValueError(value)
        return value
    except (TypeError, ValueError):
        choices = f.metadata.get("choices")
        expected = f"one of {', '.join(choices)}" if choices else f"a valid {kind.__name__}"
        raise ConfigurationError(f"{f.metadata['flag']} / {f.metadata['env']}: {raw!r} is not {expected}") from None


def to_args(config: Any) -> list[str]:
    """The command line that builds ``config`` again with :func:`from_args`: every field that is set, by its flag,
    so that nothing is left to the environment of the process that parses it.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True, kw_only=True)
        ... class Demo:
        ...     port: int = setting(8000, flag="--port", env="DEMO_PORT", help="port")
        ...     names: tuple[str, ...] = setting((), flag="--name", env="DEMO_NAMES", help="names", repeat=True)
        ...     verbose: bool = setting(False, flag="--verbose", env="DEMO_VERBOSE", help="more output")
        >>> to_args(Demo(port=9000, names=("a", "b")))
        ['--port', '9000', '--name', 'a', '--name', 'b', '--no-verbose']
    """
    argv: list[str] = []
    kinds = field_types(type(config))
    for f in dataclasses.fields(config):
        value, flag = getattr(config, f.name), f.metadata["flag"]
        if value is None:
            continue
        if kinds[f.name] is bool:
            argv.append(flag if value else "--no-" + flag.removeprefix("--"))
        elif kinds[f.name] is tuple:
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    return argv


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)
