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
import hashlib
import json
import logging
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, Status, TritonDynamoError
from ..telemetry.metrics import WorkerMetrics, fetch_url, scrape_registry, serve_metrics
from ..telemetry.observer import RequestTelemetry
from ..telemetry.tracing import dynamo_exports_traces, make_tracer
from ..triton import Options, Server
from .config import WorkerConfig
from .control import ControlHandler, control_endpoint_path
from .handler import Admission, ModelHandler, RequestObserver
from .model_set import Change, ModelSet, model_set_store
from .schema import ModelSchema, queue_policy_limits
from .trace_settings import TracePolicy, TraceSettings

logger = logging.getLogger(__name__)

# After unregistering, the frontend may still route a request or two that it picked before it saw the change.
_SETTLE_S = 1.0


def endpoint_slug(model_name: str) -> str:
    """A Dynamo-safe endpoint name for a Triton model name (``[a-z0-9_-]``), with a short hash so that no endpoint
    name is a prefix of another (discovery looks endpoints up by key prefix).

    Example:
        >>> endpoint_slug("Add.Sub")
        'add_sub_8504e189'
    """
    safe = re.sub(r"[^a-z0-9_-]", "_", model_name.lower())
    return f"{safe}_{hashlib.sha256(model_name.encode()).hexdigest()[:8]}"


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
        self.endpoints: dict[str, Any] = {}  # model name -> its Dynamo endpoint, served until the runtime stops
        self.registered: set[str] = set()  # the models the frontend routes here
        self.handlers: dict[str, ModelHandler] = {}
        self.model_set = model_set_store(config.discovery_backend, config.namespace, config.component)
        self._applied = ModelSet()  # the fleet's changes this worker has applied
        self._serving: list[asyncio.Future] = []
        self._failure: BaseException | None = None
        self._model_lock = asyncio.Lock()  # one load or unload at a time
        self._stopping = asyncio.Event()

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
            # One model at a time: each step waits on discovery, and Dynamo's runtime (2 threads on 2 cores) stopped
            # making progress when seven of those waits ran at once.
            for name in models:
                await self._publish(name)
            await self._serve_control()
            await self._catch_up()
            logger.info("all %d model(s) registered", len(self.registered))
            self._write_ready_file(sorted(self.registered))
            # What starting built (Dynamo, Triton's binding, the schemas: ~74 000 objects) lives as long as the
            # process: out of the collector's sight, a full collection no longer stalls the event loop for 25-44 ms
            # about every 15 s under load (measured at 16 elements, 2100-3000 req/s).
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
        self._applied = await asyncio.to_thread(self.model_set.read)
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

    async def _publish(self, model_name: str) -> None:
        """Serve the model's endpoint (once per process) and register the model with Dynamo."""
        model = self.server.model(model_name)
        config = model.config()
        schema = ModelSchema.from_config(config)
        if limits := queue_policy_limits(config):
            logger.warning(
                "model %r limits Triton's queue (%s): in Triton 24.03 and later a full queue can leave every instance "
                "of it idle for up to 500 ms; bound the backlog with --max-inflight instead (see the README)",
                model_name,
                ", ".join(limits),
            )
        handler = self.handlers.get(model_name)
        if handler is not None:
            if handler.schema.decoupled != schema.decoupled:
                # The endpoint serves one way (push, or pull for decoupled models) from its first load on.
                raise TritonDynamoError(
                    f"model {model_name!r} was reloaded as {'' if schema.decoupled else 'not '}decoupled; this "
                    "worker serves it as it first loaded until it restarts",
                    status=Status.FAILED_PRECONDITION,
                )
            handler.schema = schema
        else:
            handler = await self._serve_model(model, schema)
        self.metrics.declare(model_name)
        endpoint = self.endpoints[model_name]
        if model_name in self.registered:
            await self._withdraw(model_name, settle=False)
        tensor_config = {"name": "", "inputs": [], "outputs": [], "triton_model_config": model.config_protobuf()}
        from dynamo.llm import ModelInput, ModelType, WorkerType, register_model

        await register_model(
            ModelInput.Tensor,
            ModelType.TensorBased,
            endpoint,
            model_name,
            worker_type=WorkerType.Aggregated,
            tensor_model_config=tensor_config,
        )
        self.registered.add(model_name)
        logger.info("model %r registered", model_name)

    async def _serve_model(self, model, schema: ModelSchema) -> ModelHandler:
        handler = ModelHandler(
            model,
            schema,
            admission=self.admission,
            max_request_bytes=self.config.max_request_bytes,
            trace=self.config.trace_requests and self.observer is not None,
            observer=self.observer,
            tracing=self.tracing,
        )
        self.handlers[model.name] = handler
        # A component of its own per worker process: each worker is then a worker set of its own for the frontend,
        # which lets a draining worker withdraw its models while staying reachable (see _drain).
        path = f"{self.config.namespace}.{self.config.component}-{self.instance_id:x}.{endpoint_slug(model.name)}"
        endpoint = self.runtime.endpoint(path)
        self.endpoints[model.name] = endpoint
        self._watch(
            endpoint.serve_endpoint(  # a future, not a coroutine
                handler.endpoint_handler,
                graceful_shutdown=True,
                metrics_labels=[("model", model.name)],
                health_check_payload=handler.health_check_payload(),
            )
        )
        # Publish the model only once this instance is discoverable. The other order (Dynamo's own) makes the
        # frontend wait for instances when it sees the model; in etcd + NATS mode with several workers starting at
        # once, those waits took every thread of its runtime and it stopped answering for good.
        client = await endpoint.client()
        await asyncio.wait_for(client.wait_for_instances(), timeout=60)
        logger.info("model %r served at %s", model.name, path)
        return handler

    async def _withdraw(self, model_name: str, *, settle: bool = True) -> None:
        """Stop the frontend routing the model here; requests it picked just before still arrive and are served."""
        from dynamo.llm import unregister_model

        self.registered.discard(model_name)
        await unregister_model(self.endpoints[model_name])
        if settle:
            await asyncio.sleep(_SETTLE_S)
        logger.info("model %r withdrawn", model_name)

    def _watch(self, serving) -> None:
        """Keep a serving future; one that fails stops the worker with its error."""
        future = asyncio.ensure_future(serving)
        self._serving.append(future)

        def done(f: asyncio.Future) -> None:
            if not f.cancelled() and f.exception() is not None and self._failure is None:
                self._failure = f.exception()
                self._stopping.set()

        future.add_done_callback(done)

    # the fleet's model control (through the control endpoint) ---------------------------------------------------------

    async def load_model(self, name: str, config: str | None = None) -> dict[str, Any]:
        """Triton's RepositoryModelLoad on this worker: (re)load, then serve and register the model; its index entry
        is the answer. Triton's refusal raises with Triton's status and message."""
        async with self._model_lock:
            self._refuse_when_stopping()
            await asyncio.to_thread(self.server.load, name, config=config)
            await self._publish(name)
            self._applied = self._applied.with_change(name, Change("loaded", config))
            await self._withdraw_unready()
            self._write_ready_file(sorted(self.registered))
            return self._index_entry(name)

    async def unload_model(self, name: str, unload_dependents: bool = False) -> dict[str, Any]:
        """Triton's RepositoryModelUnload on this worker: withdraw the model, let requests in flight finish, unload."""
        async with self._model_lock:
            self._refuse_when_stopping()
            if name in self.registered:
                await self._withdraw(name)
            await asyncio.to_thread(
                self.server.unload,
                name,
                unload_dependents=unload_dependents,
                timeout_s=max(self.config.grace_period_s, 1.0),
            )
            self._applied = self._applied.with_change(name, Change("unloaded"))
            await self._withdraw_unready()
            self._write_ready_file(sorted(self.registered))
            return self._index_entry(name)

    def _refuse_when_stopping(self) -> None:
        if self._stopping.is_set():
            raise TritonDynamoError("this worker is stopping", status=Status.UNAVAILABLE)

    async def _withdraw_unready(self) -> None:
        """Withdraw what Triton no longer serves (the models of an ensemble unloaded with it, or a failed reload)."""
        ready = {e["name"] for e in self.server.model_index(ready_only=True)}
        for name in sorted(self.registered - ready):
            await self._withdraw(name, settle=False)

    def _index_entry(self, name: str) -> dict[str, Any]:
        entries = [e for e in self.server.model_index() if e["name"] == name]
        return entries[0] if entries else {"name": name, "state": "UNAVAILABLE", "reason": "unloaded"}

    async def _catch_up(self) -> None:
        """Apply what the fleet changed while this worker started, before the control service could reach it."""
        latest = await asyncio.to_thread(self.model_set.read)
        for name, change in sorted(latest.changes.items()):
            if self._applied.changes.get(name) == change:
                continue
            logger.info("applying the fleet's change of model %r made while starting: %s", name, change.state)
            try:
                if change.state == "loaded":
                    await self.load_model(name, change.config)
                else:
                    await self.unload_model(name)
            except TritonDynamoError as exc:
                logger.error("model %r: %s", name, exc)

    async def _serve_control(self) -> None:
        """Serve this worker's instance of the control endpoint (statistics, repository index, server metadata, loads
        and unloads for the control service); it stays in discovery until the runtime shuts down, past the drain."""
        path = control_endpoint_path(self.config.namespace, self.config.component)
        endpoint = self.runtime.endpoint(path)
        handler = ControlHandler(self.server, models=self, tracing=self.tracing)
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

        withdrawing = [self.endpoints[name] for name in sorted(self.registered)]
        self.registered.clear()
        logger.info("stopping: withdrawing %d model(s) from discovery", len(withdrawing))
        await self._each(withdrawing, unregister_model, "withdrawing a model")
        deadline = time.monotonic() + self.config.grace_period_s
        await asyncio.sleep(min(_SETTLE_S, self.config.grace_period_s))
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
        await self._each(list(self.endpoints.values()), lambda e: e.unregister_endpoint_instance(), "leaving discovery")

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
