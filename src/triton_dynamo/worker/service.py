"""The worker process: Triton in-process, every ready model registered with Dynamo, and a drain on SIGTERM.

Lifecycle, in one place:
1. start Triton on the repository (models that fail to load are reported with Triton's reason; the others serve);
2. for each model: a Dynamo endpoint ``namespace.component.<model slug>``, the model registered as a tensor model
   carrying its Triton config (so KServe ModelMetadata and ModelConfig describe the real model), and its handler;
3. on SIGTERM or SIGINT: unregister every endpoint from discovery, wait until requests in flight have finished (at
   most the grace period), stop Triton, shut the runtime down.
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

from ..errors import ConfigurationError, TritonDynamoError
from ..telemetry.metrics import WorkerMetrics, fetch_url, scrape_registry, serve_metrics
from ..telemetry.observer import RequestTelemetry
from ..telemetry.tracing import dynamo_exports_traces, make_tracer
from ..triton import Options, Server
from .config import WorkerConfig
from .control import ControlHandler, control_endpoint_path
from .handler import Admission, ModelHandler, RequestObserver
from .schema import ModelSchema, queue_policy_limits

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
        self.server: Server | None = None
        self.runtime = None
        self.endpoints: list = []
        self.handlers: dict[str, ModelHandler] = {}
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
            serving = [await self._publish(name) for name in models]
            serving.append(await self._serve_control())
            logger.info("all %d model(s) registered", len(models))
            self._write_ready_file(models)
            # What starting built (Dynamo, Triton's binding, the schemas: ~74 000 objects) lives as long as the
            # process: out of the collector's sight, a full collection no longer stalls the event loop for 25-44 ms
            # about every 15 s under load (measured at 16 elements, 2100-3000 req/s).
            gc.collect()
            gc.freeze()
            stop = asyncio.create_task(self._stopping.wait())
            done, _ = await asyncio.wait([stop, *serving], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop and task.exception() is not None:
                    raise task.exception()
            await self._drain()
            self.runtime.shutdown()
            await asyncio.wait(serving, timeout=10)
        finally:
            await self._stop_triton()
            await self._stop_tracing()

    async def _start_triton(self) -> None:
        c = self.config
        options = Options(
            model_repository=c.model_repository,
            library=c.triton_library,
            backend_directory=c.backend_directory,
            startup_models=c.model_names or ("*",),
            log_verbose=c.log_verbose,
        )
        self.server = Server(options)
        await asyncio.to_thread(self.server.start)

    def _servable_models(self) -> list[str]:
        index = self.server.model_index()
        ready = sorted({e["name"] for e in index if e.get("state") == "READY"})
        # Models Triton tried to load and could not carry a reason; those left out by --model-name carry none.
        failed = {e["name"]: e["reason"] for e in index if e.get("state") != "READY" and e.get("reason")}
        for name, reason in sorted(failed.items()):
            logger.error("model %r is not served: %s", name, reason)
        wanted = list(self.config.model_names) or ready
        missing = [n for n in wanted if n not in ready]
        if missing:
            known = ", ".join(e["name"] for e in index) or "none"
            details = "; ".join(f"{n}: {failed.get(n, 'not in the repository')}" for n in missing)
            raise ConfigurationError(f"requested models are not ready ({details}); the repository has: {known}")
        if not wanted:
            raise ConfigurationError(
                f"no model of {str(self.config.model_repository)!r} loaded; see the errors "
                "above for each model's reason"
            )
        logger.info("serving %d model(s): %s", len(wanted), ", ".join(wanted))
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

    async def _publish(self, model_name: str) -> asyncio.Future:
        """Serve the model's endpoint and register the model with Dynamo; returns the endpoint's serving future."""
        from dynamo.llm import ModelInput, ModelType, WorkerType, register_model

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
        handler = ModelHandler(
            model,
            schema,
            admission=self.admission,
            max_request_bytes=self.config.max_request_bytes,
            trace=self.config.trace_requests and self.observer is not None,
            observer=self.observer,
        )
        self.handlers[model_name] = handler
        # A component of its own per worker process: each worker is then a worker set of its own for the frontend,
        # which lets a draining worker withdraw its models while staying reachable (see _drain).
        path = f"{self.config.namespace}.{self.config.component}-{self.instance_id:x}.{endpoint_slug(model_name)}"
        endpoint = self.runtime.endpoint(path)
        self.endpoints.append(endpoint)
        tensor_config = {"name": "", "inputs": [], "outputs": [], "triton_model_config": model.config_protobuf()}
        serving = asyncio.ensure_future(  # serve_endpoint returns a future, not a coroutine
            endpoint.serve_endpoint(
                handler.endpoint_handler,
                graceful_shutdown=True,
                metrics_labels=[("model", model_name)],
                health_check_payload=handler.health_check_payload(),
            )
        )
        # Publish the model only once this instance is discoverable. The other order (Dynamo's own) makes the
        # frontend wait for instances when it sees the model; in etcd + NATS mode with several workers starting at
        # once, those waits took every thread of its runtime and it stopped answering for good.
        client = await endpoint.client()
        await asyncio.wait_for(client.wait_for_instances(), timeout=60)
        await register_model(
            ModelInput.Tensor,
            ModelType.TensorBased,
            endpoint,
            model_name,
            worker_type=WorkerType.Aggregated,
            tensor_model_config=tensor_config,
        )
        logger.info("model %r registered at %s", model_name, path)
        return serving

    async def _serve_control(self) -> asyncio.Future:
        """Serve this worker's instance of the control endpoint (statistics, repository index, server metadata for
        the control service); it stays in discovery until the runtime shuts down, past the drain."""
        path = control_endpoint_path(self.config.namespace, self.config.component)
        endpoint = self.runtime.endpoint(path)
        handler = ControlHandler(self.server)
        serving = asyncio.ensure_future(endpoint.serve_endpoint(handler.generate, graceful_shutdown=True))
        client = await endpoint.client()
        await asyncio.wait_for(client.wait_for_instances(), timeout=60)
        logger.info(
            "control endpoint served at %s", control_endpoint_path(self.config.namespace, self.config.component)
        )
        return serving

    async def _drain(self) -> None:
        """Stop taking requests without losing one: withdraw this worker's models (the frontend stops routing here
        but keeps the instance, so answers still reach it), let requests in flight finish, then leave discovery.

        Leaving discovery first, as Dynamo's own workers do, made the frontend cancel the pending response streams
        of every request in flight on this worker at that moment ("discovery-driven cleanup"): under load, one or
        two lost requests per drain.
        """
        from dynamo.llm import unregister_model

        logger.info("stopping: withdrawing %d model(s) from discovery", len(self.endpoints))
        await self._each_endpoint(unregister_model, "withdrawing a model")
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
        await self._each_endpoint(lambda e: e.unregister_endpoint_instance(), "leaving discovery")

    async def _each_endpoint(self, action, what: str) -> None:
        results = await asyncio.gather(*(action(e) for e in self.endpoints), return_exceptions=True)
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


async def serve(config: WorkerConfig, observer: RequestObserver | None = None) -> None:
    """Run a worker until SIGTERM or SIGINT."""
    await Worker(config, observer).run()


__all__ = ["TritonDynamoError", "Worker", "endpoint_slug", "serve"]
