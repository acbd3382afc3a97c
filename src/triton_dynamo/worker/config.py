# SPDX-License-Identifier: Apache-2.0
"""The worker's configuration: one typed object, each field with its flag and environment variable.

Precedence: a command-line flag, then its environment variable, then the default. Flags and variables follow the
original launch script (``--model-name``, ``--model-repository``, ``--backend-directory``, ``--log-verbose``,
``--store-kv``) and Dynamo's own variables (``DYN_NAMESPACE``, ``DYN_DISCOVERY_BACKEND``, ``DYN_REQUEST_PLANE``,
``DYN_SYSTEM_PORT``).

Example:
    >>> config = WorkerConfig.from_args(["--model-repository", "model_repo", "--model-name", "identity"], env={})
    >>> config.model_names, config.discovery_backend
    (('identity',), 'etcd')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

from .. import settings
from ..errors import ConfigurationError
from ..settings import setting

DISCOVERY_BACKENDS = ("etcd", "file", "mem", "kubernetes")
# Dynamo 1.6.1 parses DYN_SYSTEM_PORT as an i16 and refuses to start with a larger value.
MAX_SYSTEM_PORT = 32767
REQUEST_PLANES = ("tcp", "nats", "http")


@dataclass(frozen=True, kw_only=True)
class ServingSettings:
    """What a worker serves and how much it admits: the settings that ``triton-dynamo up`` passes on to each of its
    workers, declared once for both (:class:`WorkerConfig` and ``StackConfig`` extend it)."""

    ENV_PREFIX: ClassVar[str] = "TRITON_DYNAMO_"

    model_repository: Path = setting(Path("model_repo"), help="Triton model repository to serve")
    model_names: tuple[str, ...] = setting(
        (),
        flag="--model-name",
        help="serve only this model (repeatable; the variable is comma-separated); default: every model that loads",
        repeat=True,
    )
    max_request_bytes: int = setting(
        64 * 1024 * 1024,
        help="largest request (all input tensors) a worker accepts, in bytes; the frontend itself refuses gRPC "
        "messages over 4 MiB",
    )
    max_inflight: int = setting(
        0,
        help="requests in flight admitted per worker; past it a request goes to one other worker, and is refused "
        "with UNAVAILABLE when that one is full too; 0: no limit",
    )
    grace_period_s: float = setting(
        30.0,
        help="on SIGTERM (or a stop of the stack), how long a worker lets requests in flight finish",
    )

    def __post_init__(self) -> None:
        if not self.model_repository.is_dir():
            raise ConfigurationError(f"model repository {str(self.model_repository)!r} is not a directory")
        if self.max_request_bytes <= 0 or self.max_inflight < 0 or self.grace_period_s < 0:
            raise ConfigurationError(
                "max_request_bytes must be positive; max_inflight and grace_period_s must not be negative"
            )

    def serving(self) -> dict:
        """These settings alone, as keyword arguments for another :class:`ServingSettings` (a worker's)."""
        return {f.name: getattr(self, f.name) for f in fields(ServingSettings)}


@dataclass(frozen=True, kw_only=True)
class WorkerConfig(ServingSettings):
    """Everything a worker process needs; validated when built."""

    backend_directory: Path | None = setting(None, help="Triton backends folder; default: the one of the Triton found")
    triton_library: Path | None = setting(
        None,
        help="libtritonserver.so to load; default: /opt/tritonserver, then the nvidia-pytriton wheel",
    )
    log_verbose: int = setting(0, help="Triton's verbose log level")
    namespace: str = setting("triton", env="DYN_NAMESPACE", help="Dynamo namespace of the endpoints")
    component: str = setting("worker", help="Dynamo component name")
    discovery_backend: str = setting(
        "etcd",
        env="DYN_DISCOVERY_BACKEND",
        help="where workers register: etcd (ETCD_ENDPOINTS), file (DYN_FILE_KV, one host), mem",
        aliases=("--store-kv",),
        env_aliases=("DYN_STORE_KV",),
        choices=DISCOVERY_BACKENDS,
    )
    request_plane: str = setting(
        "tcp",
        env="DYN_REQUEST_PLANE",
        help="how requests reach the worker: tcp, or nats (NATS_SERVER)",
        choices=REQUEST_PLANES,
    )
    system_port: int | None = setting(
        None,
        env="DYN_SYSTEM_PORT",
        help="port of the worker's /metrics, /health and /live; default: off",
    )
    metrics_port: int | None = setting(
        None,
        help="port of the worker's complete metrics (ours, Triton's, Dynamo's) in OpenMetrics with trace exemplars; "
        "default: off (the same metrics, without exemplars, are on the system port)",
    )
    ready_file: Path | None = setting(
        None,
        help="a JSON file for supervisors: the worker's Dynamo instance id from the start, and the served models once "
        "every one is registered",
    )
    trace_requests: bool = setting(
        True,
        help="collect Triton's per-request queue and compute times (metrics and spans)",
    )
    telemetry: bool = setting(
        True,
        help="record the worker's own per-request metrics and spans; off only to measure what they cost",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.discovery_backend not in DISCOVERY_BACKENDS:
            raise ConfigurationError(
                f"discovery backend {self.discovery_backend!r} is not one of {', '.join(DISCOVERY_BACKENDS)}"
            )
        if self.request_plane not in REQUEST_PLANES:
            raise ConfigurationError(f"request plane {self.request_plane!r} is not one of {', '.join(REQUEST_PLANES)}")
        if self.log_verbose < 0:
            raise ConfigurationError(f"log_verbose must not be negative, not {self.log_verbose}")
        if self.metrics_port is not None and not 0 < self.metrics_port < 65536:
            raise ConfigurationError(f"metrics port {self.metrics_port} is not a port number")
        if self.system_port is not None and not 0 <= self.system_port <= MAX_SYSTEM_PORT:
            raise ConfigurationError(
                f"system port {self.system_port} must be between 0 and {MAX_SYSTEM_PORT}: "
                "Dynamo reads DYN_SYSTEM_PORT as a signed 16-bit number"
            )

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> WorkerConfig:
        """Build from command-line arguments, then environment variables, then defaults."""
        return settings.from_args(cls, argv, "triton-dynamo worker", _DESCRIPTION, env)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> WorkerConfig:
        """Build from environment variables (``os.environ`` by default); keyword arguments take precedence."""
        return settings.from_env(cls, env, **overrides)


_DESCRIPTION = "Serve a Triton model repository as a Dynamo worker (Triton runs in this process)."
