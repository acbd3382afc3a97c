# SPDX-License-Identifier: Apache-2.0
"""The models one worker serves to Dynamo: each model's endpoint (served once per process), its registration with
Dynamo (which makes the frontend route it here), and Triton's RepositoryModelLoad and RepositoryModelUnload on this
worker, which the control service asks of every worker.

A model's endpoint, once served, stays until the runtime stops; loading and unloading register and withdraw the
model on it. The frontend routes a model here exactly while it is in :attr:`ServedModels.registered`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..errors import Status, TritonDynamoError
from ..telemetry.metrics import WorkerMetrics
from ..triton import Model, Server
from .config import WorkerConfig
from .handler import ModelHandler
from .model_set import Change, ModelSet, ModelSetStore
from .peers import model_endpoint_path
from .schema import ModelSchema, queue_policy_limits

logger = logging.getLogger(__name__)

# After unregistering, the frontend may still route a request or two that it picked before it saw the change.
SETTLE_S = 1.0


class ServedModels:
    """This worker's models as Dynamo sees them, and their loading and unloading (one change at a time)."""

    def __init__(
        self,
        config: WorkerConfig,
        *,
        runtime: Any,
        server: Server,
        instance_id: int,
        make_handler: Callable[[Model, ModelSchema], ModelHandler],
        metrics: WorkerMetrics,
        watch: Callable[[Any], None],
        on_change: Callable[[], None],
        stopping: asyncio.Event,
        applied: ModelSet,
    ) -> None:
        self.config = config
        self.runtime = runtime
        self.server = server
        self.instance_id = instance_id
        self.make_handler = make_handler
        self.metrics = metrics
        self.watch = watch  # keeps a serving future; one that fails stops the worker
        self.on_change = on_change  # after a load or unload
        self.stopping = stopping
        self.applied = applied  # the fleet's changes this worker has applied
        self.endpoints: dict[str, Any] = {}  # model name -> its Dynamo endpoint
        self.registered: set[str] = set()
        self.handlers: dict[str, ModelHandler] = {}
        self._lock = asyncio.Lock()

    async def publish(self, model_name: str) -> None:
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
            handler = await self._serve(model, schema)
        self.metrics.declare(model_name)
        endpoint = self.endpoints[model_name]
        if model_name in self.registered:
            await self.withdraw(model_name, settle=False)
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

    async def _serve(self, model: Model, schema: ModelSchema) -> ModelHandler:
        handler = self.make_handler(model, schema)
        self.handlers[model.name] = handler
        # A component of its own per worker process: each worker is then a worker set of its own for the frontend,
        # which lets a draining worker withdraw its models while staying reachable (see Worker._drain).
        path = model_endpoint_path(self.config.namespace, self.config.component, self.instance_id, model.name)
        endpoint = self.runtime.endpoint(path)
        self.endpoints[model.name] = endpoint
        self.watch(
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

    async def withdraw(self, model_name: str, *, settle: bool = True) -> None:
        """Stop the frontend routing the model here; requests it picked just before still arrive and are served."""
        from dynamo.llm import unregister_model

        self.registered.discard(model_name)
        await unregister_model(self.endpoints[model_name])
        if settle:
            await asyncio.sleep(SETTLE_S)
        logger.info("model %r withdrawn", model_name)

    async def load_model(self, name: str, config: str | None = None) -> dict[str, Any]:
        """Triton's RepositoryModelLoad on this worker: (re)load, then serve and register the model; its index entry
        is the answer. Triton's refusal raises with Triton's status and message."""
        async with self._lock:
            self._refuse_when_stopping()
            await asyncio.to_thread(self.server.load, name, config=config)
            await self.publish(name)
            self.applied = self.applied.with_change(name, Change("loaded", config))
            await self.withdraw_unready()
            self.on_change()
            return self.index_entry(name)

    async def unload_model(self, name: str, unload_dependents: bool = False) -> dict[str, Any]:
        """Triton's RepositoryModelUnload on this worker: withdraw the model, let requests in flight finish, unload."""
        async with self._lock:
            self._refuse_when_stopping()
            if name in self.registered:
                await self.withdraw(name)
            await asyncio.to_thread(
                self.server.unload,
                name,
                unload_dependents=unload_dependents,
                timeout_s=max(self.config.grace_period_s, 1.0),
            )
            self.applied = self.applied.with_change(name, Change("unloaded"))
            await self.withdraw_unready()
            self.on_change()
            return self.index_entry(name)

    def _refuse_when_stopping(self) -> None:
        if self.stopping.is_set():
            raise TritonDynamoError("this worker is stopping", status=Status.UNAVAILABLE)

    async def withdraw_unready(self) -> None:
        """Withdraw what Triton no longer serves (the models of an ensemble unloaded with it, or a failed reload)."""
        ready = {e["name"] for e in self.server.model_index(ready_only=True)}
        for name in sorted(self.registered - ready):
            await self.withdraw(name, settle=False)

    def index_entry(self, name: str) -> dict[str, Any]:
        entries = [e for e in self.server.model_index() if e["name"] == name]
        return entries[0] if entries else {"name": name, "state": "UNAVAILABLE", "reason": "unloaded"}

    async def catch_up(self, store: ModelSetStore) -> None:
        """Apply what the fleet changed while this worker started, before the control service could reach it."""
        latest = await asyncio.to_thread(store.read)
        for name, change in sorted(latest.changes.items()):
            if self.applied.changes.get(name) == change:
                continue
            logger.info("applying the fleet's change of model %r made while starting: %s", name, change.state)
            try:
                if change.state == "loaded":
                    await self.load_model(name, change.config)
                else:
                    await self.unload_model(name)
            except TritonDynamoError as exc:
                logger.error("model %r: %s", name, exc)
