# SPDX-License-Identifier: Apache-2.0
"""gRPC's standard health service (``grpc.health.v1.Health``), answered for the stack as Triton answers it on its
gRPC port: ``Check`` says SERVING while the stack is ready to serve inference and NOT_SERVING otherwise. Kubernetes'
gRPC probes, ``grpc_health_probe`` and load balancers' gRPC health checks ask it; the stack has no HTTP port for
Triton's ``/v2/health/ready``.

As Triton 2.51 does, ``Check`` does not look at the service named in the request, and ``Watch`` is not served
(UNIMPLEMENTED).

Example:
    >>> import asyncio
    >>> async def ready() -> bool:
    ...     return False
    >>> answer = asyncio.run(ReadinessHealth(ready).Check(health_pb2.HealthCheckRequest(), None))
    >>> health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    'NOT_SERVING'
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

logger = logging.getLogger(__name__)

READINESS_TIMEOUT_S = 2.0


class ReadinessHealth(health_pb2_grpc.HealthServicer):
    """``Check`` answered from ``ready``, a readiness question asked anew for each call (probes are seconds apart)."""

    def __init__(self, ready: Callable[[], Awaitable[bool]]) -> None:
        self.ready = ready

    async def Check(self, request: health_pb2.HealthCheckRequest, context: Any) -> health_pb2.HealthCheckResponse:
        serving = await self.ready()
        return health_pb2.HealthCheckResponse(
            status=health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )


class FrontendReadiness:
    """Whether the frontend answers ServerReady with ready: what a client of the same port sees. The frontend is
    ready once some worker has registered a model; unreachable, it cannot serve, so it is not ready."""

    def __init__(self, frontend_url: str) -> None:
        self.frontend_url = frontend_url
        self._channel: grpc.aio.Channel | None = None
        self._unreachable = False  # logged once per outage, not once per probe

    async def __call__(self) -> bool:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.frontend_url)
        stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
        try:
            answer = await stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=READINESS_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            if not self._unreachable:
                logger.warning("health: NOT_SERVING, the frontend at %s: %s", self.frontend_url, exc.code().name)
            self._unreachable = True
            return False
        if self._unreachable:
            logger.info("health: the frontend at %s answers again", self.frontend_url)
        self._unreachable = False
        return answer.ready

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
