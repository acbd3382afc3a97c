# SPDX-License-Identifier: Apache-2.0
"""Configuration of ``triton-dynamo up``: the frontend and N workers on this machine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import settings
from ..errors import ConfigurationError
from ..settings import setting
from ..worker.config import MAX_SYSTEM_PORT, ServingSettings


@dataclass(frozen=True, kw_only=True)
class StackConfig(ServingSettings):
    """Everything ``triton-dynamo up`` needs; validated when built. What each worker serves and admits is the
    worker's own :class:`~triton_dynamo.worker.config.ServingSettings`, passed on as it is."""

    workers: int = setting(2, help="number of worker processes")
    host: str = setting("127.0.0.1", help="address the KServe gRPC port and the metrics ports listen on")
    grpc_port: int = setting(8001, help="KServe v2 gRPC port")
    metrics_port: int = setting(
        8002,
        # not TRITON_DYNAMO_METRICS_PORT: that is a worker's own metrics port (its --metrics-port)
        env="TRITON_DYNAMO_FRONTEND_METRICS_PORT",
        help="the frontend's /metrics port",
    )
    proxy: str = setting(
        "auto",
        help="a router in front of the frontend and the control service, routing each RPC by its method, so that "
        "every Triton RPC is on --grpc-port: auto (grpc-router when built, else nghttpx when installed), grpc-router, "
        "nghttpx, or none (the control RPCs stay on --control-port)",
        choices=("auto", "grpc-router", "nghttpx", "none"),
    )
    frontend_port: int = setting(
        8011,
        help="with the proxy, the frontend's own KServe port: no control RPCs, one hop less for inference",
    )
    control_port: int = setting(
        8003,
        help="gRPC port of Triton's RPCs beyond inference (statistics, repository control, model metadata, trace and "
        "log settings), served by the control service for every worker",
    )
    worker_system_port: int = setting(
        8100,
        help="first worker's Dynamo system port (/health, /live, /metrics); worker i listens on this + i",
    )
    worker_metrics_port: int = setting(
        8200,
        help="first worker's complete metrics in OpenMetrics, with trace exemplars; worker i listens on this + i",
    )
    discovery: str = setting(
        "file",
        help="file (a folder on this machine, nothing else needed) or etcd (ETCD_ENDPOINTS)",
        choices=("file", "etcd"),
    )
    request_plane: str = setting("tcp", help="tcp (loopback) or nats (NATS_SERVER)", choices=("tcp", "nats"))
    router_mode: str = setting(
        "round-robin",
        help="Dynamo's routing inside a worker set; each worker is a worker set of its own, so across workers the "
        "frontend picks at random whatever this says (README, 'Routing')",
        choices=("round-robin", "least-loaded"),
    )
    state_dir: Path | None = setting(
        None,
        help="folder for logs and the file discovery store; default: a new folder under the temp directory",
    )
    startup_timeout_s: float = setting(120.0, help="give up when the stack is not ready after this long")
    otlp_endpoint: str | None = setting(
        None,
        env_aliases=("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        help="OTLP/gRPC endpoint (http://host:4317) for traces: turns on Dynamo's own spans in the frontend and "
        "workers and the workers' request spans; default: no tracing",
    )
    trace_sample_ratio: float = setting(
        0.1,
        help="with --otlp-endpoint, the share of requests traced (0 to 1): the frontend decides and the workers "
        "follow its decision, so a trace is whole or absent; at 0.1 tracing cost a worker 30-70 µs of CPU per request "
        "and the frontend ~35, most of it Dynamo's own tracing, which runs for every request",
    )
    observe: bool = setting(
        False,
        help="also run Prometheus (when installed) scraping the stack, with the repository's rules",
    )
    prometheus_port: int = setting(9090, help="Prometheus's port with --observe")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.workers < 1:
            raise ConfigurationError(f"--workers must be at least 1, not {self.workers}")
        ports = [self.grpc_port, self.metrics_port, self.control_port, *self.worker_ports, *self.worker_metrics_ports]
        if self.proxy != "none":
            ports.append(self.frontend_port)
        if self.observe:
            ports.append(self.prometheus_port)
        if any(not 0 < p < 65536 for p in ports):
            raise ConfigurationError(f"ports must be between 1 and 65535: {ports}")
        if self.worker_ports[-1] > MAX_SYSTEM_PORT:
            raise ConfigurationError(
                f"worker system ports {self.worker_ports[0]}-{self.worker_ports[-1]} go past "
                f"{MAX_SYSTEM_PORT}: Dynamo reads DYN_SYSTEM_PORT as a signed 16-bit number"
            )
        if len(set(ports)) != len(ports):
            raise ConfigurationError(f"the gRPC, frontend, metrics, control and worker ports overlap: {ports}")
        if self.startup_timeout_s <= 0 or self.grace_period_s < 0:
            raise ConfigurationError("--startup-timeout-s must be positive and --grace-period-s not negative")
        if not 0.0 <= self.trace_sample_ratio <= 1.0:
            raise ConfigurationError(f"--trace-sample-ratio must be between 0 and 1, not {self.trace_sample_ratio}")

    @property
    def worker_ports(self) -> list[int]:
        """The workers' Dynamo system ports."""
        return [self.worker_system_port + i for i in range(self.workers)]

    @property
    def worker_metrics_ports(self) -> list[int]:
        return [self.worker_metrics_port + i for i in range(self.workers)]

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def control_url(self) -> str:
        return f"{self.host}:{self.control_port}"

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> StackConfig:
        return settings.from_args(cls, argv, "triton-dynamo up", _DESCRIPTION, env)


_DESCRIPTION = (
    "Run the Dynamo frontend (KServe v2 gRPC) and N Triton workers on this machine, restart workers that crash, "
    "and stop everything on Ctrl-C or SIGTERM."
)
