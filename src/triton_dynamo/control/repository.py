# SPDX-License-Identifier: Apache-2.0
"""RepositoryModelLoad and RepositoryModelUnload for the fleet: recorded in the fleet's model set first (so a worker
that starts meanwhile, or restarts later, does the same), then done by every live worker, then awaited at the frontend
(a Triton client may infer as soon as ``load_model`` returns, as with one Triton).

What the fleet is left in when some worker fails, in one place:
- a load that no worker managed is forgotten (the model set is put back as it was) and answers that worker's status
  and Triton's message, as one Triton would;
- a load that some workers managed stays in the model set: those workers serve the model, the others go on as they
  were, and the answer is INTERNAL naming each failed worker with Triton's reason; loading again retries them all;
- an unload is recorded whatever happens: a worker that could not unload is named in an INTERNAL answer, and a
  restarted worker leaves the model out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from ..errors import InvalidInput, Status, TritonDynamoError
from ..worker.model_set import Change, ModelSetStore
from .fleet import Fleet

logger = logging.getLogger(__name__)

FILE_OVERRIDE_MESSAGE = (
    "file: parameters of RepositoryModelLoad are not supported by triton-dynamo: every worker loads from the model "
    "repository it was started on; put the model's files (or its new version directory) there instead"
)


def load_arguments(parameters: Any) -> tuple[str | None, bool]:
    """(config override, unload_dependents) from a request's ``parameters`` map of ``ModelRepositoryParameter``."""
    config, dependents = None, False
    for key, parameter in parameters.items():
        kind = parameter.WhichOneof("parameter_choice")
        if key.startswith("file:"):
            raise TritonDynamoError(FILE_OVERRIDE_MESSAGE, status=Status.UNIMPLEMENTED)
        if key == "config":
            if kind != "string_param":
                raise InvalidInput("the 'config' parameter must be a string: the model configuration as JSON")
            config = parameter.string_param
        elif key == "unload_dependents":
            dependents = parameter.bool_param if kind == "bool_param" else False
    return config, dependents


class RepositoryControl:
    """Loads and unloads models on every worker, keeping the fleet's model set."""

    def __init__(self, fleet: Fleet, store: ModelSetStore, *, frontend_url: str = "", timeout_s: float = 120.0) -> None:
        self.fleet = fleet
        self.store = store
        self.frontend_url = frontend_url
        self.timeout_s = timeout_s

    async def load(self, name: str, config: str | None) -> None:
        previous = await asyncio.to_thread(self.store.set, name, Change("loaded", config))
        results, errors = await self.fleet.ask("load", timeout_s=self.timeout_s, name=name, config=config)
        if errors and not results:
            await asyncio.to_thread(self.store.set, name, previous)
            raise _one_error(errors)
        if errors:
            raise _partial("loaded", name, results, errors)
        logger.info("model %r loaded on %d worker(s)", name, len(results))
        await self._await_frontend(name, ready=True)

    async def unload(self, name: str, unload_dependents: bool) -> None:
        await asyncio.to_thread(self.store.set, name, Change("unloaded"))
        results, errors = await self.fleet.ask(
            "unload", timeout_s=self.timeout_s, name=name, unload_dependents=unload_dependents
        )
        if errors:
            raise _partial("unloaded", name, results, errors)
        logger.info("model %r unloaded on %d worker(s)", name, len(results))
        await self._await_frontend(name, ready=False)

    async def _await_frontend(self, name: str, *, ready: bool, timeout_s: float = 10.0) -> None:
        """Wait until the frontend routes the model (or no longer does): discovery reaches it a moment later."""
        if not self.frontend_url:
            return
        deadline = time.monotonic() + timeout_s
        async with grpc.aio.insecure_channel(self.frontend_url) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            while time.monotonic() < deadline:
                try:
                    answer = await stub.ModelReady(pb.ModelReadyRequest(name=name), timeout=2)
                    if answer.ready == ready:
                        return
                except grpc.aio.AioRpcError as exc:
                    if not ready and exc.code() == grpc.StatusCode.NOT_FOUND:
                        return
                await asyncio.sleep(0.05)
        logger.warning(
            "the frontend at %s still %s model %r after %.0f s",
            self.frontend_url,
            "does not route" if ready else "routes",
            name,
            timeout_s,
        )


def _one_error(errors: dict[str, dict[str, str]]) -> TritonDynamoError:
    """Every worker refused: Triton's status and message (the same from each, as the same Triton refused)."""
    error = next(iter(errors.values()))
    return TritonDynamoError(error["message"], status=Status[error["status"]])


def _partial(done: str, name: str, results: dict, errors: dict[str, dict[str, str]]) -> TritonDynamoError:
    failed = "; ".join(f"worker {worker}: {error['message']}" for worker, error in sorted(errors.items()))
    return TritonDynamoError(
        f"model {name!r} {done} on {len(results)} of {len(results) + len(errors)} workers; not on {failed}",
        status=Status.INTERNAL,
    )
