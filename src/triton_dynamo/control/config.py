# SPDX-License-Identifier: Apache-2.0
"""The control service's configuration: one typed object, each field with its flag and environment variable.

Example:
    >>> config = ControlConfig.from_args(["--port", "8003", "--discovery-backend", "file"], env={})
    >>> config.address, config.discovery_backend
    ('127.0.0.1:8003', 'file')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from .. import settings
from ..errors import ConfigurationError
from ..settings import setting
from ..worker.config import DISCOVERY_BACKENDS, REQUEST_PLANES


@dataclass(frozen=True, kw_only=True)
class ControlConfig:
    """Where the control service listens and how it finds the workers; validated when built."""

    ENV_PREFIX: ClassVar[str] = "TRITON_DYNAMO_CONTROL_"

    host: str = setting("127.0.0.1", help="address to listen on")
    port: int = setting(8003, help="gRPC port of the control RPCs")
    namespace: str = setting("triton", env="DYN_NAMESPACE", help="Dynamo namespace of the workers")
    component: str = setting("worker", env="TRITON_DYNAMO_COMPONENT", help="Dynamo component of the workers")
    discovery_backend: str = setting(
        "etcd",
        env="DYN_DISCOVERY_BACKEND",
        help="where the workers register: etcd (ETCD_ENDPOINTS), file (DYN_FILE_KV, one host), mem",
        choices=DISCOVERY_BACKENDS,
    )
    request_plane: str = setting(
        "tcp",
        env="DYN_REQUEST_PLANE",
        help="how requests reach the workers: tcp, or nats (NATS_SERVER)",
        choices=REQUEST_PLANES,
    )
    worker_timeout_s: float = setting(
        10.0,
        help="how long a worker may take to answer one control request before it is left out of the answer",
    )
    load_timeout_s: float = setting(
        120.0,
        help="how long a worker may take to load or unload a model before the answer names it as failed",
    )
    inference_url: str = setting(
        "",
        env="TRITON_DYNAMO_INFERENCE_URL",
        help="the frontend's KServe address: named in the answer to an inference RPC sent here, and asked after a "
        "load or unload until it routes the model (or no longer does)",
    )

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigurationError(f"control port {self.port} is not a port number")
        if self.worker_timeout_s <= 0 or self.load_timeout_s <= 0:
            raise ConfigurationError(
                f"worker timeouts must be positive (got {self.worker_timeout_s} s and {self.load_timeout_s} s)"
            )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> ControlConfig:
        """Build from command-line arguments, then environment variables, then defaults."""
        return settings.from_args(cls, argv, "triton-dynamo control", _DESCRIPTION, env)


_DESCRIPTION = (
    "Answer Triton's gRPC RPCs beyond inference (statistics, repository control, model metadata, trace and log "
    "settings) by asking every worker."
)
