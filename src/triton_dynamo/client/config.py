# SPDX-License-Identifier: Apache-2.0
"""Where ``triton-dynamo models`` and ``triton-dynamo infer`` find the stack: one typed object, flags and variables
from the same settings machinery as every other command.

Example:
    >>> ClientConfig.from_env({"TRITON_DYNAMO_URL": "10.0.0.5:8001"}).metrics_address
    'http://10.0.0.5:8002'
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from .. import settings
from ..settings import setting

DEFAULT_URL = "127.0.0.1:8001"


@dataclass(frozen=True, kw_only=True)
class StackAddress:
    """Where a running stack answers KServe gRPC: every command that talks to one (``models``, ``infer``,
    ``loadtest``) extends this."""

    ENV_PREFIX: ClassVar[str] = "TRITON_DYNAMO_"

    url: str = setting(DEFAULT_URL, help="the stack's KServe gRPC address (every Triton RPC where its proxy runs)")


@dataclass(frozen=True, kw_only=True)
class ClientConfig(StackAddress):
    """The addresses of a running stack."""

    metrics_url: str | None = setting(
        None,
        help="the frontend's metrics address, which lists the models where the control RPCs do not answer; default: "
        "the --url host on port 8002",
    )

    @property
    def metrics_address(self) -> str:
        return self.metrics_url or f"http://{self.url.rsplit(':', 1)[0]}:8002"

    @classmethod
    def parser(cls, prog: str, description: str) -> argparse.ArgumentParser:
        """A parser with these options; a command adds its own."""
        return settings.build_parser(cls, prog, description)

    @classmethod
    def from_parsed(cls, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> ClientConfig:
        """From a parse of :meth:`parser` (with other options beside), then the environment, then defaults."""
        return settings.from_env(cls, env, **{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> ClientConfig:
        return settings.from_env(cls, env, **overrides)
