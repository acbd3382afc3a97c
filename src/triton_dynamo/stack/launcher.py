# SPDX-License-Identifier: Apache-2.0
"""The local stack: which processes ``triton-dynamo up`` runs, and running them until told to stop."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from .. import settings
from ..errors import ConfigurationError, Status, TritonDynamoError
from ..worker.config import WorkerConfig
from .config import StackConfig
from .discovery import forget_in_file_store, instance_id, revoke_etcd_lease
from .prometheus import default_rule_files, find_prometheus, prometheus_command, render_local_config
from .proxy import ROUTERS, find_grpc_router, find_nghttpx, grpc_router_command, nghttpx_command, render_config
from .readiness import wait_for_port, wait_until_ready
from .supervisor import Child, ProcessSpec, Supervisor

logger = logging.getLogger(__name__)

FRONTEND = "frontend"
CONTROL = "control"
PROXY = "proxy"
PROMETHEUS = "prometheus"


def worker_name(index: int) -> str:
    return f"worker-{index}"


def ready_file(state_dir: Path, index: int) -> Path:
    """Where worker ``index`` writes the models it serves once every one is registered."""
    return state_dir / f"{worker_name(index)}.ready"


# Dynamo 1.6.1's frontend sizes its Tokio runtime by the core count; with 2 threads (a 2-core machine) it stopped
# answering, for good, when two workers registered at the same moment in etcd + NATS mode. 4 threads did not.
FRONTEND_RUNTIME_THREADS = "4"
# Dynamo logs two to four INFO lines per request (received, routed, completed) in the frontend and the worker, and
# with OTEL_EXPORT_ENABLED exports each as an OTLP log record: at a few thousand tensor requests a second that is log
# spam, and filtering them saves CPU in the worker and the frontend on every request (docs/measurements.md, "Dynamo's
# per-request log lines"). Everything else stays at info; the spans that carry traces are not filtered (the tracing
# tests run with this). A DYN_LOG of the user's wins. One line per request stays in the frontend's log whatever
# DYN_LOG says ("route request completed", target request_span): Dynamo 1.6.1 appends `request_span=trace` after
# DYN_LOG's directives, which replaces any level given for that target (seen with DYN_LOG=error too).
QUIET_REQUEST_LOGS = ",".join(
    [
        "info",
        "dynamo_runtime::pipeline::network::ingress::push_handler=warn",
        "dynamo_runtime::pipeline::network::egress::push_router=warn",
        "dynamo_llm::http::service::metrics=warn",
    ]
)
# How long a dead worker's etcd lease is retried while etcd is unreachable (a restarted etcd restores it whole)
ETCD_RETRY_S = 300.0
ETCD_RETRY_INTERVAL_S = 1.0


def log_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """How Dynamo's runtimes log into the files `up` writes, where ``environ`` does not say otherwise.

    Without colour: Dynamo writes ANSI escapes even to a file, which grep and log shippers then see, and the frontend's
    one line per request took 487 bytes with them against 309 without.

        >>> log_environment({"DYN_LOG": "debug"})
        {'DYN_SDK_DISABLE_ANSI_LOGGING': '1'}
    """
    env = {}
    if "DYN_LOG" not in environ:
        env["DYN_LOG"] = QUIET_REQUEST_LOGS
    if "DYN_SDK_DISABLE_ANSI_LOGGING" not in environ:
        env["DYN_SDK_DISABLE_ANSI_LOGGING"] = "1"
    return env


def proxy_binary(config: StackConfig) -> tuple[str, str] | None:
    """(router, binary) for ``--proxy``: the first router found for ``auto``; None when the stack runs without one.
    Raises when a router was named and is not here."""
    if config.proxy == "none":
        return None
    finders = {"grpc-router": find_grpc_router, "nghttpx": find_nghttpx}
    for name in ROUTERS if config.proxy == "auto" else (config.proxy,):
        binary = finders[name]()
        if binary is not None:
            return name, binary
    if config.proxy != "auto":
        raise ConfigurationError(f"--proxy {config.proxy} needs {config.proxy}: {ROUTERS[config.proxy]}")
    return None


def frontend_port(config: StackConfig, proxied: bool) -> int:
    """Where the frontend listens: behind the proxy on its own port, else on the stack's KServe port."""
    return config.frontend_port if proxied else config.grpc_port


def build_specs(config: StackConfig, state_dir: Path, environ: Mapping[str, str] = os.environ) -> list[ProcessSpec]:
    """The frontend and the workers, with their command lines and the environment they get on top of ``environ``
    (pure: no process is started)."""
    env = {"DYN_TCP_RPC_HOST": "127.0.0.1"}  # the request plane stays on loopback: every process is on this machine
    env.update(log_environment(environ))
    if config.discovery == "file":
        env["DYN_FILE_KV"] = str(state_dir / "discovery")
    if config.otlp_endpoint:
        # Dynamo's runtime exports its spans when OTEL_EXPORT_ENABLED is set and samples by OTEL_TRACES_SAMPLE_RATIO;
        # the worker's SDK reads the standard sampler variables, and being parent-based it keeps the frontend's
        # decision for every request that came through Dynamo.
        ratio = repr(config.trace_sample_ratio)
        env.update(
            OTEL_EXPORT_ENABLED="1",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=config.otlp_endpoint,
            OTEL_TRACES_SAMPLE_RATIO=ratio,
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG=ratio,
        )
        if "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT" not in environ:
            # The same switch makes Dynamo export every log event it prints as an OTLP log record, to the logs
            # endpoint alone: left unset that is localhost:4317, and with nothing there each process logged an
            # export ERROR every second. Sent with the spans, they reach the collector, correlated by trace id.
            env["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"] = config.otlp_endpoint
    frontend_env = dict(env)
    if config.otlp_endpoint:
        frontend_env["OTEL_SERVICE_NAME"] = "dynamo-frontend"
    if "DYN_RUNTIME_NUM_WORKER_THREADS" not in environ:
        frontend_env["DYN_RUNTIME_NUM_WORKER_THREADS"] = FRONTEND_RUNTIME_THREADS
    logs = state_dir / "logs"
    router = proxy_binary(config)
    frontend = ProcessSpec(
        FRONTEND,
        [
            sys.executable,
            "-m",
            "dynamo.frontend",
            "--kserve-grpc-server",
            "--http-host",
            config.host,
            "--http-port",
            str(frontend_port(config, router is not None)),
            "--grpc-metrics-port",
            str(config.metrics_port),
            "--discovery-backend",
            config.discovery,
            "--request-plane",
            config.request_plane,
            "--router-mode",
            config.router_mode,
        ],
        env=frontend_env,
        log_path=logs / f"{FRONTEND}.log",
    )
    workers = []
    for index, (port, metrics_port) in enumerate(zip(config.worker_ports, config.worker_metrics_ports, strict=True)):
        # the worker's own config, what up does not decide read from the environment as the worker would, written
        # out whole as flags
        worker = WorkerConfig.from_env(
            environ,
            **config.serving(),
            discovery_backend=config.discovery,
            request_plane=config.request_plane,
            system_port=port,
            metrics_port=metrics_port,
            ready_file=ready_file(state_dir, index),
        )
        argv = [sys.executable, "-m", "triton_dynamo", "worker", *settings.to_args(worker)]
        worker_env = {**env, "OTEL_SERVICE_NAME": "triton-dynamo-worker"} if config.otlp_endpoint else env
        workers.append(
            ProcessSpec(worker_name(index), argv, env=worker_env, log_path=logs / f"{worker_name(index)}.log")
        )
    control = ProcessSpec(
        CONTROL,
        [
            sys.executable,
            "-m",
            "triton_dynamo",
            "control",
            "--host",
            config.host,
            "--port",
            str(config.control_port),
            "--discovery-backend",
            config.discovery,
            "--request-plane",
            config.request_plane,
            "--inference-url",
            config.grpc_url,
        ],
        env=env,
        log_path=logs / f"{CONTROL}.log",
    )
    specs = [frontend, control, *workers]
    if router is not None:
        specs.append(proxy_spec(config, state_dir, router))
    if config.observe:
        specs.append(prometheus_spec(config, state_dir))
    return specs


def proxy_spec(config: StackConfig, state_dir: Path, router: tuple[str, str]) -> ProcessSpec:
    """The router on the stack's KServe port, routing each RPC to the frontend or the control service."""
    name, binary = router
    log_path = state_dir / "logs" / "proxy.log"
    if name == "grpc-router":
        argv = grpc_router_command(binary, config.host, config.grpc_port, config.frontend_port, config.control_port)
        return ProcessSpec(PROXY, argv, env={}, log_path=log_path)
    folder = state_dir / "nghttpx"
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "nghttpx.conf"
    config_path.write_text(render_config(config.host, config.grpc_port, config.frontend_port, config.control_port))
    return ProcessSpec(PROXY, nghttpx_command(binary, config_path), env={}, log_path=log_path)


def prometheus_spec(config: StackConfig, state_dir: Path) -> ProcessSpec:
    """Prometheus scraping the frontend and every worker's metrics port, with the Compose stack's rule files."""
    binary = find_prometheus()
    if binary is None:
        raise ConfigurationError("--observe needs Prometheus: install it (Debian: apt-get install prometheus)")
    folder = state_dir / "prometheus"
    folder.mkdir(parents=True, exist_ok=True)
    workers = [f"127.0.0.1:{port}" for port in config.worker_metrics_ports]
    config_path = folder / "prometheus.yml"
    config_path.write_text(
        render_local_config(
            f"127.0.0.1:{config.metrics_port}",
            workers,
            2.0,
            default_rule_files(),
            extra_jobs={"prometheus": [f"127.0.0.1:{config.prometheus_port}"]},
        )
    )
    argv = prometheus_command(config_path, folder / "data", config.prometheus_port, binary=binary, host=config.host)
    return ProcessSpec(PROMETHEUS, argv, env={}, log_path=state_dir / "logs" / "prometheus.log")


def ready_line(config: StackConfig, models: list[str], state_dir: Path, proxied: bool) -> str:
    example = "identity" if "identity" in models else models[0]
    observe = f"; Prometheus at http://{config.host}:{config.prometheus_port}" if config.observe else ""
    if proxied:
        control = f"every Triton RPC there (inference alone also at {config.host}:{config.frontend_port})"
    else:
        control = f"the other Triton RPCs (statistics, repository control, ...) at {config.control_url} "
        control += "(no one-port router here: "
        control += "bash scripts/build-router.sh for one port)" if config.proxy == "auto" else "--proxy none)"
    return (
        f"triton-dynamo ready: KServe v2 gRPC at {config.grpc_url} with {config.workers} worker(s) serving "
        f"{', '.join(models)}; {control}; "
        f"metrics at http://{config.host}:{config.metrics_port}/metrics{observe}; logs in "
        f"{state_dir / 'logs'}; try: triton-dynamo infer {example} --url {config.grpc_url}"
    )


class Stack:
    """The running local stack; :meth:`run` serves until SIGINT or SIGTERM (or :meth:`request_stop`)."""

    def __init__(self, config: StackConfig, *, announce: Callable[[str], None] = print) -> None:
        self.config = config
        self.announce = announce
        self.state_dir = config.state_dir or Path(tempfile.mkdtemp(prefix="triton-dynamo-"))
        self.supervisor = Supervisor(
            build_specs(config, self.state_dir), on_event=self._event, on_exit=self._forget, max_consecutive_failures=5
        )
        self.models: list[str] = []
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._retries: set[asyncio.Task] = set()

    def _event(self, message: str) -> None:
        self.announce(f"triton-dynamo: {message}")

    async def _forget(self, child: Child, code: int) -> None:
        """A worker died: remove its discovery records now, so the frontend stops routing to it."""
        if not child.spec.name.startswith("worker-"):
            return
        instance = instance_id(ready_file(self.state_dir, int(child.spec.name.split("-", 1)[1])))
        if instance is None:
            return
        if self.config.discovery == "file":
            removed = await asyncio.to_thread(forget_in_file_store, self.state_dir / "discovery", instance)
            self._event(f"{child.spec.name}: removed {removed} discovery record(s) of instance {instance:x}")
        else:
            endpoints = os.environ.get("ETCD_ENDPOINTS", "http://localhost:2379")
            revoked = await asyncio.to_thread(revoke_etcd_lease, endpoints, instance)
            if revoked:
                self._event(f"{child.spec.name}: revoked etcd lease {instance:x}")
            elif revoked is None:
                # etcd is away (often the very reason the worker exited): revoke once it is back, without holding
                # up the worker's restart
                task = asyncio.create_task(self._revoke_when_back(child.spec.name, endpoints, instance))
                self._retries.add(task)
                task.add_done_callback(self._retries.discard)

    async def _revoke_when_back(self, name: str, endpoints: str, instance: int) -> None:
        deadline = time.monotonic() + ETCD_RETRY_S
        while time.monotonic() < deadline:
            await asyncio.sleep(ETCD_RETRY_INTERVAL_S)
            revoked = await asyncio.to_thread(revoke_etcd_lease, endpoints, instance)
            if revoked is not None:
                if revoked:
                    self._event(f"{name}: revoked etcd lease {instance:x} once etcd was back")
                return
        logger.warning("etcd unreachable for %.0f s: lease %x of dead %s left to expire", ETCD_RETRY_S, instance, name)

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        for index in range(self.config.workers):
            ready_file(self.state_dir, index).unlink(missing_ok=True)
        await self.supervisor.start()
        try:
            ready_files = [ready_file(self.state_dir, i) for i in range(self.config.workers)]
            ready = asyncio.create_task(
                wait_until_ready(
                    self.config.grpc_url, ready_files, self.config.startup_timeout_s, self.supervisor.failed
                )
            )
            stop = asyncio.create_task(self._stop.wait())
            await asyncio.wait([ready, stop], return_when=asyncio.FIRST_COMPLETED)
            if not ready.done():
                ready.cancel()
                return
            self.models = ready.result()
            await wait_for_port(self.config.host, self.config.control_port, self.config.startup_timeout_s)
            proxied = PROXY in self.supervisor.children
            self.announce(ready_line(self.config, self.models, self.state_dir, proxied))
            self.ready.set()
            failed = asyncio.create_task(self.supervisor.failed.wait())
            await asyncio.wait([stop, failed], return_when=asyncio.FIRST_COMPLETED)
            if failed.done() and not stop.done():
                raise TritonDynamoError("a process of the stack keeps failing; stopping", status=Status.UNAVAILABLE)
        finally:
            for task in list(self._retries):
                task.cancel()
            self.announce("triton-dynamo: stopping")
            workers = [worker_name(i) for i in range(self.config.workers)]
            # Workers drain first, while the frontend still answers; Prometheus (if any) goes last with the rest.
            await self.supervisor.stop(timeout_s=self.config.grace_period_s + 10, waves=[workers, [FRONTEND]])
            shutil.rmtree(self.state_dir / "discovery", ignore_errors=True)
            self.announce("triton-dynamo: stopped")
