# SPDX-License-Identifier: Apache-2.0
"""gRPC's health check answered from the frontend's readiness: a stand-in frontend that answers only ServerReady,
and one that is not there. tests/e2e/test_triton_parity.py checks the same service through a real stack against
Triton."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2
from tritonclient.grpc import service_pb2, service_pb2_grpc

from triton_dynamo.control.health import FrontendReadiness, ReadinessHealth


class ReadyFrontend(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self) -> None:
        self.ready = False

    async def ServerReady(self, request, context) -> service_pb2.ServerReadyResponse:
        return service_pb2.ServerReadyResponse(ready=self.ready)


@pytest_asyncio.fixture(loop_scope="function")
async def frontend() -> AsyncIterator[tuple[ReadyFrontend, str]]:
    servicer = ReadyFrontend()
    server = grpc.aio.server()
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(grace=None)


async def check(readiness: FrontendReadiness) -> str:
    answer = await ReadinessHealth(readiness).Check(health_pb2.HealthCheckRequest(service="any"), None)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


@pytest.mark.asyncio(loop_scope="function")
async def test_serving_follows_the_frontends_readiness(frontend: tuple[ReadyFrontend, str]) -> None:
    servicer, url = frontend
    readiness = FrontendReadiness(url)
    try:
        assert await check(readiness) == "NOT_SERVING"
        servicer.ready = True
        assert await check(readiness) == "SERVING"
        servicer.ready = False
        assert await check(readiness) == "NOT_SERVING"
    finally:
        await readiness.close()


@pytest.mark.asyncio(loop_scope="function")
async def test_a_frontend_that_does_not_answer_is_not_serving() -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"127.0.0.1:{sock.getsockname()[1]}"
    readiness = FrontendReadiness(url)
    try:
        assert await check(readiness) == "NOT_SERVING"
    finally:
        await readiness.close()
