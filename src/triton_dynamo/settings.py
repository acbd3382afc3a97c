# SPDX-License-Identifier: Apache-2.0
"""Typed configuration objects whose fields carry their own command-line flag and environment variable.

A configuration class is a frozen, keyword-only dataclass whose fields are made with :func:`setting`; it gets its
parser and its environment reading from :func:`build_parser` and :func:`from_env`, so flags, variables, help and
defaults never drift apart. Precedence: flag, then variable, then default. Validation lives in the class's
``__post_init__``, so an invalid object cannot be built.

A field's flag and variable come from its name unless it says otherwise: ``grpc_port`` is ``--grpc-port`` and, in a
class whose ``ENV_PREFIX`` is ``DEMO_``, ``DEMO_GRPC_PORT`` (the prefix of the class that declares the field, so an
inherited field keeps its variable).

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True, kw_only=True)
    ... class Demo:
    ...     ENV_PREFIX: typing.ClassVar[str] = "DEMO_"
    ...     grpc_port: int = setting(8000, help="port to listen on")
    ...     user: str = setting("nobody", env="USER_NAME", help="who runs it")
    >>> names(Demo)["grpc_port"]
    Names(flag='--grpc-port', env='DEMO_GRPC_PORT', aliases=(), env_aliases=())
    >>> from_env(Demo, {"DEMO_GRPC_PORT": "9000", "USER_NAME": "ada"})
    Demo(grpc_port=9000, user='ada')
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import os
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

from .errors import ConfigurationError

T = TypeVar("T")


def setting(
    default: Any,
    *,
    help: str,
    flag: str | None = None,
    env: str | None = None,
    aliases: Sequence[str] = (),
    env_aliases: Sequence[str] = (),
    choices: Sequence[str] | None = None,
    repeat: bool = False,
) -> Any:
    """A dataclass field with its help, choices, and its flag and environment variable where they are not the ones
    its name gives (:func:`names`), with aliases.

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


class Names(NamedTuple):
    """How a field is given: its flag and environment variable, and the older names still accepted."""

    flag: str
    env: str
    aliases: tuple[str, ...]
    env_aliases: tuple[str, ...]


@functools.cache
def names(cls: type) -> dict[str, Names]:
    """Each field's :class:`Names`: those it declares, else ``--field-name`` and, for the variable, the
    ``ENV_PREFIX`` of the class that declares the field (its own or one it inherits) followed by ``FIELD_NAME``."""
    resolved = {}
    for f in dataclasses.fields(cls):
        env = f.metadata["env"]
        if env is None:
            owner = next(c for c in cls.__mro__ if f.name in inspect.get_annotations(c))
            prefix = getattr(owner, "ENV_PREFIX", None)
            if prefix is None:
                raise TypeError(f"{owner.__name__}.{f.name} names no variable and {owner.__name__} has no ENV_PREFIX")
            env = prefix + f.name.upper()
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        resolved[f.name] = Names(flag, env, f.metadata["aliases"], f.metadata["env_aliases"])
    return resolved


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
    kinds, given_as = field_types(cls), names(cls)
    for f in dataclasses.fields(cls):
        meta, known = f.metadata, given_as[f.name]
        flags = [known.flag, *known.aliases]
        shown = ", ".join(meta["choices"]) if meta["choices"] else None
        default = f.default if f.default is not None else "none"
        help_text = f"{meta['help']} (env {known.env}; default {default})"
        if kinds[f.name] is bool:
            parser.add_argument(
                *flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif meta["repeat"]:
            parser.add_argument(*flags, dest=f.name, action="append", help=help_text)
        else:
            parser.add_argument(
                *flags, dest=f.name, choices=meta["choices"], metavar=shown and f"{{{shown}}}", help=help_text
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
            known = names(cls)[f.name]
            raw = next((env[name] for name in (known.env, *known.env_aliases) if env.get(name)), None)
            if raw is None:
                continue
        values[f.name] = convert(cls, f, raw)
    return cls(**values)


def from_args(
    cls: type[T], argv: Sequence[str] | None, prog: str, description: str, env: Mapping[str, str] | None = None
) -> T:
    """An instance of ``cls`` from command-line arguments, then environment variables, then defaults."""
    args = build_parser(cls, prog, description).parse_args(argv)
    return from_env(cls, env, **vars(args))


def convert(cls: type, f: dataclasses.Field, raw: Any) -> Any:
    """A flag's or variable's value as the field's type (:func:`field_types`); a clear error naming the flag and
    variable otherwise."""
    kind = field_types(cls)[f.name]
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
        known = names(cls)[f.name]
        raise ConfigurationError(f"{known.flag} / {known.env}: {raw!r} is not {expected}") from None


def to_args(config: Any) -> list[str]:
    """The command line that builds ``config`` again with :func:`from_args`: every field that is set, by its flag,
    so that nothing is left to the environment of the process that parses it.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True, kw_only=True)
        ... class Demo:
        ...     ENV_PREFIX: typing.ClassVar[str] = "DEMO_"
        ...     port: int = setting(8000, help="port")
        ...     names: tuple[str, ...] = setting((), flag="--name", help="names", repeat=True)
        ...     verbose: bool = setting(False, help="more output")
        >>> to_args(Demo(port=9000, names=("a", "b")))
        ['--port', '9000', '--name', 'a', '--name', 'b', '--no-verbose']
    """
    argv: list[str] = []
    kinds, given_as = field_types(type(config)), names(type(config))
    for f in dataclasses.fields(config):
        value, flag = getattr(config, f.name), given_as[f.name].flag
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
