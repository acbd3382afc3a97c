# SPDX-License-Identifier: Apache-2.0
"""The worker process: Triton in-process, every ready model registered with Dynamo, and a drain on SIGTERM.

Lifecycle, in one place:
1. start Triton on the repository (models that fail to load are reported with Triton's reason; the others serve);
2. for each model: a Dynamo endpoint ``namespace.component.<model slug>``, the model registered as a tensor model
   carrying its Triton config (so KServe ModelMetadata and ModelConfig describe the real model), and its handler;
3. a control endpoint for the control service, through which models are also loaded and unloaded while serving
   (registered with Dynamo, or withdrawn, as Triton loads or unloads them);
4. on SIGTERM or SIGINT: unregister every endpoint from discovery, wait until requests in flight have finished (at
   most the grace period), stop Triton, shut the runtime down.

Triton runs in explicit model control mode. Which models start is the worker's own list (``--model-name``, or the
whole repository) with the fleet's loads and unloads applied on top (:mod:`.model_set`), so a worker that starts after
a RepositoryModelLoad serves what the others serve.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import time
from pathlib import Path

from ..endpoints import control_endpoint_path
from ..errors import ConfigurationError, TritonDynamoError
from ..telemetry.metrics import WorkerMetrics, fetch_url, scrape_registry, serve_metrics
from ..telemetry.observer import RequestTelemetry
from ..telemetry.tracing import dynamo_exports_traces, make_tracer
from ..triton import Model, Options, Server
from .classification import read_labels
from .config import WorkerConfig
from .control import ControlHandler
from .handler import Admission, ModelHandler, RequestObserver
from .model_set import ModelSet, model_set_store
from .peers import Peers, endpoint_slug
from .schema import ModelSchema
from .served import SETTLE_S, ServedModels
from .trace_settings import TracePolicy, TraceSettings

logger = logging.getLogger(__name__)


class Worker:
    """One worker process's Triton server, endpoints, handlers and telemetry."""

    def __init__(self, config: WorkerConfig, observer: RequestObserver | None = None) -> None:
        self.config = config
        self.metrics = WorkerMetrics()
        if observer is None and config.telemetry:
            observer = RequestTelemetry(self.metrics, dynamo_traces=dynamo_exports_traces())
        self.observer = observer
        self.admission = Admission(limit=config.max_inflight)
        traced = config.trace_requests and observer is not None
        # Triton's TraceSetting: every request carries Triton's timestamps (the per-phase metrics) unless changed.
        self.tracing = TracePolicy(TraceSettings(trace_level=("TIMESTAMPS",) if traced else ("OFF",), trace_rate=1))
        self.server: Server | None = None
        self.runtime = None
        self.models: ServedModels | None = None
        self.model_set = model_set_store(config.discovery_backend, config.namespace, config.component)
        self._applied = ModelSet()  # the fleet's changes applied at start
        self._serving: list[asyncio.Future] = []
        self._failure: BaseException | None = None
        self._stopping = asyncio.Event()
        self.peers: Peers | None = None  # where requests go past --max-inflight, and where sequences are served

    async def run(self) -> None:
        """Serve until a signal asks to stop; raises :class:`TritonDynamoError` when nothing can be served."""
        from dynamo.common.utils.runtime import create_runtime  # heavy: imported when a worker really starts

        loop = asyncio.get_running_loop()
        if self.config.system_port is not None:
            os.environ["DYN_SYSTEM_PORT"] = str(self.config.system_port)  # the runtime reads it at creation
        self.runtime, _ = create_runtime(
            discovery_backend=self.config.discovery_backend, request_plane=self.config.request_plane
        )
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        # Dynamo's id of this process: the suffix of its discovery keys, which a supervisor removes if we die.
        self.instance_id = self.runtime.endpoint(self._reserved_endpoint).connection_id()
        self._write_ready_file()
        try:
            await self._start_triton()
            if isinstance(self.observer, RequestTelemetry):
                # Only now: the OTLP exporter's gRPC threads must not exist while Triton forks its python backend
                # stubs, or grpcio's fork handler aborts the process (is_forking != was_forking).
                self.observer.tracer = make_tracer("triton-dynamo-worker")
            models = self._servable_models()
            self._export_metrics(models)
            self.peers = Peers(
                self.runtime,
                namespace=self.config.namespace,
                component=self.config.component,
                own_id=self.instance_id,
                metrics=self.metrics,
            )
            await self.peers.start()
            self.models = ServedModels(
                self.config,
                runtime=self.runtime,
                server=self.server,
                instance_id=self.instance_id,
                make_handler=self._make_handler,
                metrics=self.metrics,
                watch=self._watch,
                on_change=lambda: self._write_ready_file(sorted(self.models.registered)),
                stopping=self._stopping,
                applied=self._applied,
            )
            # One model at a time: each step waits on discovery, and Dynamo's runtime (2 threads on 2 cores) stopped
            # making progress when seven of those waits ran at once.
            for name in models:
                await self.models.publish(name)
            await self._serve_control()
            await self.models.catch_up(self.model_set)
            logger.info("all %d model(s) registered", len(self.models.registered))
            self._write_ready_file(sorted(self.models.registered))
            # What starting built (Dynamo, Triton's binding, the schemas: ~74 000 objects) lives as long as the
            # process: out of the collector's sight, a full collection no longer stalls the event loop every few
            # seconds under load (docs/measurements.md, "frozen start-up objects").
            gc.collect()
            gc.freeze()
            await self._stopping.wait()
            if self._failure is not None:
                raise self._failure
            await self._drain()
            self.runtime.shutdown()
            await asyncio.wait(self._serving, timeout=10)
        finally:
            await self._stop_triton()
            await self._stop_tracing()

    async def _start_triton(self) -> None:
        c = self.config
        self._applied = await self._read_model_set()
        startup = list(c.model_names)
        if self._applied.changes and not startup:
            startup = repository_models(c.model_repository)
        plain, overrides = self._applied.apply(startup)
        if self._applied.changes:
            logger.info(
                "the fleet's model set changes this worker's startup models: %s",
                ", ".join(f"{n} {ch.state}" for n, ch in sorted(self._applied.changes.items())),
            )
        options = Options(
            model_repository=c.model_repository,
            library=c.triton_library,
            backend_directory=c.backend_directory,
            startup_models=plain or (() if self._applied.changes else ("*",)),
            log_verbose=c.log_verbose,
        )
        self.server = Server(options)
        await asyncio.to_thread(self.server.start)
        for name, config in overrides.items():
            try:
                await asyncio.to_thread(self.server.load, name, config=config)
            except TritonDynamoError as exc:
                logger.error("model %r (loaded with a config override by the fleet) did not load: %s", name, exc)

    async def _read_model_set(self, patience_s: float = 60.0) -> ModelSet:
        """The fleet's model set; while its store (etcd) does not answer, asked again each second for a while, then
        this worker's own list alone (logged: a load or unload made meanwhile is missed until the next restart)."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                return await asyncio.to_thread(self.model_set.read)
            except TritonDynamoError as exc:
                if time.monotonic() > deadline:
                    logger.error("starting with this worker's own models only: %s", exc.message)
                    return ModelSet()
                logger.warning("the fleet's model set cannot be read yet (%s); asking again", exc.message)
                await asyncio.sleep(1.0)

    def _servable_models(self) -> list[str]:
        index = self.server.model_index()
        ready = sorted({e["name"] for e in index if e.get("state") == "READY"})
        # Models Triton tried to load and could not carry a reason; those left out by --model-name carry none.
        failed = {e["name"]: e["reason"] for e in index if e.get("state") != "READY" and e.get("reason")}
        for name, reason in sorted(failed.items()):
            logger.error("model %r is not served: %s", name, reason)
        plain, overrides = self._applied.apply(list(self.config.model_names))
        if not self.config.model_names:
            wanted = ready
        else:
            # Models of the fleet's set that fail here are logged above; only this worker's own list is required.
            wanted = [n for n in plain + list(overrides) if n in ready or n in self.config.model_names]
        missing = [n for n in wanted if n not in ready]
        if missing:
            known = ", ".join(e["name"] for e in index) or "none"
            details = "; ".join(f"{n}: {failed.get(n, 'not in the repository')}" for n in missing)
            raise ConfigurationError(f"requested models are not ready ({details}); the repository has: {known}")
        if not wanted and not self._applied.changes:
            raise ConfigurationError(
                f"no model of {str(self.config.model_repository)!r} loaded; see the errors "
                "above for each model's reason"
            )
        logger.info("serving %d model(s): %s", len(wanted), ", ".join(wanted) or "none")
        return wanted

    @property
    def _reserved_endpoint(self) -> str:
        # Never served nor registered: it holds the process's metrics callback. Model endpoints end in a hash, so no
        # model can take this name.
        return f"{self.config.namespace}.{self.config.component}._metrics"

    def _write_ready_file(self, models: list[str] | None = None) -> None:
        """For a supervisor: our instance id from the start, and the served models once all are registered."""
        if self.config.ready_file is None:
            return
        state = {"pid": os.getpid(), "instance_id": self.instance_id}
        if models is not None:
            state["models"] = models
        tmp = self.config.ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.config.ready_file)

    def _export_metrics(self, models: list[str]) -> None:
        for name in models:
            self.metrics.declare(name)
        server = self.server

        def triton_text() -> str:
            return server.metrics() if server.live() else ""

        # Dynamo's system port: its own families, then ours and Triton's (text; no exemplars there).
        reserved = self.runtime.endpoint(self._reserved_endpoint)
        reserved.metrics.register_prometheus_expfmt_callback(lambda: self.metrics.render_text() + triton_text())
        if self.config.metrics_port is not None:
            system = self.config.system_port
            # Where Dynamo's system port listens: its own address when bound to one, else loopback.
            host = os.environ.get("DYN_SYSTEM_HOST", "0.0.0.0")
            host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
            dynamo = fetch_url(f"http://{host}:{system}/metrics") if system else None
            serve_metrics(
                self.config.metrics_port,
                scrape_registry(self.metrics, triton_text, dynamo),
                host=os.environ.get("DYN_SYSTEM_HOST", "0.0.0.0"),
            )

    def _make_handler(self, model: Model, schema: ModelSchema) -> ModelHandler:
        try:
            labels = read_labels(self.config.model_repository / schema.name, model.config())
        except OSError as exc:  # Triton read the file to load the model; a copy that changed since is no reason to stop
            logger.warning("model %r: classification labels not read: %s", schema.name, exc)
            labels = {}
        return ModelHandler(
            model,
            schema,
            admission=self.admission,
            max_request_bytes=self.config.max_request_bytes,
            trace=self.config.trace_requests and self.observer is not None,
            observer=self.observer,
            tracing=self.tracing,
            handover=self.peers,
            labels=labels,
        )

    def _watch(self, serving) -> None:
        """Keep a serving future. One that ends stops the worker: with its error, or, when Dynamo's runtime shut down
        (it does when it loses its etcd lease), normally, so that the supervisor starts a worker that registers
        again."""
        future = asyncio.ensure_future(serving)
        self._serving.append(future)

        def done(f: asyncio.Future) -> None:
            if self._stopping.is_set():
                return
            if not f.cancelled() and f.exception() is not None:
                self._failure = f.exception()
            else:
                logger.warning("an endpoint stopped serving (Dynamo's runtime shut down): stopping")
            self._stopping.set()

        future.add_done_callback(done)

    async def _serve_control(self) -> None:
        """Serve this worker's instance of the control endpoint (statistics, repository index, server metadata, loads
        and unloads for the control service); it stays in discovery until the runtime shuts down, past the drain."""
        path = control_endpoint_path(self.config.namespace, self.config.component)
        endpoint = self.runtime.endpoint(path)
        handler = ControlHandler(self.server, models=self.models, tracing=self.tracing)
        self._watch(endpoint.serve_endpoint(handler.generate, graceful_shutdown=True))
        client = await endpoint.client()
        await asyncio.wait_for(client.wait_for_instances(), timeout=60)
        logger.info("control endpoint served at %s", path)

    async def _drain(self) -> None:
        """Stop taking requests without losing one: withdraw this worker's models (the frontend stops routing here
        but keeps the instance, so answers still reach it), let requests in flight finish, then leave discovery.

        Leaving discovery first, as Dynamo's own workers do, made the frontend cancel the pending response streams
        of every request in flight on this worker at that moment ("discovery-driven cleanup"): under load, one or
        two lost requests per drain.
        """
        from dynamo.llm import unregister_model

        models = self.models
        withdrawing = [models.endpoints[name] for name in sorted(models.registered)]
        models.registered.clear()
        logger.info("stopping: withdrawing %d model(s) from discovery", len(withdrawing))
        await self._each(withdrawing, unregister_model, "withdrawing a model")
        deadline = time.monotonic() + self.config.grace_period_s
        await asyncio.sleep(min(SETTLE_S, self.config.grace_period_s))
        while self.admission.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.admission.inflight:
            logger.warning(
                "grace period of %.1f s over with %d request(s) still in flight",
                self.config.grace_period_s,
                self.admission.inflight,
            )
        else:
            logger.info("all requests in flight finished")
        await self._each(
            list(models.endpoints.values()), lambda e: e.unregister_endpoint_instance(), "leaving discovery"
        )

    @staticmethod
    async def _each(endpoints: list, action, what: str) -> None:
        results = await asyncio.gather(*(action(e) for e in endpoints), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                logger.warning("%s failed: %s", what, result)

    async def _stop_triton(self) -> None:
        if self.server is not None:
            await asyncio.to_thread(self.server.stop, timeout_s=5)

    async def _stop_tracing(self) -> None:
        tracer = self.observer.tracer if isinstance(self.observer, RequestTelemetry) else None
        if tracer is not None:  # the spans of the last requests, queued for the next batch
            await asyncio.to_thread(tracer.shutdown)


def repository_models(repository: Path) -> list[str]:
    """Every model folder of a repository, as Triton's ``*`` would load them."""
    return sorted(p.name for p in Path(repository).iterdir() if p.is_dir() and not p.name.startswith("."))


async def serve(config: WorkerConfig, observer: RequestObserver | None = None) -> None:
    """Run a worker until SIGTERM or SIGINT."""
    await Worker(config, observer).run()


__all__ = ["TritonDynamoError", "Worker", "endpoint_slug", "serve"]
