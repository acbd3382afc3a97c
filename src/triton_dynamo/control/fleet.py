# SPDX-License-Identifier: Apache-2.0
"""Every live worker, reached through the control endpoint each one serves, found by Dynamo's discovery."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..endpoints import control_endpoint_path
from ..errors import Status, TritonDynamoError

logger = logging.getLogger(__name__)


class Fleet:
    """Asks every worker instance the same control question; answers keyed by the worker's instance id (hex)."""

    def __init__(self, runtime: Any, namespace: str, component: str, *, timeout_s: float = 10.0) -> None:
        self.endpoint = runtime.endpoint(control_endpoint_path(namespace, component))
        self.timeout_s = timeout_s
        self.client: Any = None

    async def start(self) -> None:
        self.client = await self.endpoint.client()

    def workers(self) -> list[int]:
        return sorted(self.client.instance_ids())

    async def ask(
        self, op: str, *, timeout_s: float | None = None, **arguments: Any
    ) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
        """(results, errors) of ``op`` on every worker: a worker's error as its status and message, a worker that
        does not answer in time (``timeout_s``, else the fleet's) as DEADLINE_EXCEEDED, one that cannot be reached
        (it stopped meanwhile) logged and left out.

        Raises UNAVAILABLE when no worker is registered.
        """
        workers = self.workers()
        if not workers:
            raise TritonDynamoError("no worker is registered in discovery: nothing to ask", status=Status.UNAVAILABLE)
        request = {"op": op, **arguments}
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        answers = await asyncio.gather(*(self._one(w, request, timeout_s) for w in workers), return_exceptions=True)
        results, errors = {}, {}
        for worker, answer in zip(workers, answers, strict=True):
            name = f"{worker:x}"
            if isinstance(answer, asyncio.TimeoutError):
                logger.warning("worker %s did not answer %r in %.0f s", name, op, timeout_s)
                errors[name] = {"status": "DEADLINE_EXCEEDED", "message": f"no answer in {timeout_s:.0f} s"}
            elif isinstance(answer, BaseException):
                logger.warning("worker %s did not answer %r: %s", name, op, answer)
            elif "error" in answer:
                errors[name] = answer["error"]
            else:
                results[name] = answer["result"]
        if not results and not errors:
            raise TritonDynamoError(f"no worker could be reached for {op!r}", status=Status.UNAVAILABLE)
        return results, errors

    async def _one(self, worker: int, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            stream = await self.client.direct(request, worker, annotated=False)
            async for answer in stream:
                return answer
            raise TritonDynamoError(f"worker {worker:x} sent no answer", status=Status.INTERNAL)

        return await asyncio.wait_for(call(), timeout_s)
