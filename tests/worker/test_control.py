# SPDX-License-Identifier: Apache-2.0
"""The worker's control endpoint on the real in-process Triton: each answer is Triton's own, and a refusal is data
that carries Triton's status (the control service turns it into the gRPC status a Triton client expects)."""

from __future__ import annotations

import pytest

from triton_dynamo.triton import Server
from triton_dynamo.worker.control import ControlHandler


async def answer(server: Server, request: dict) -> dict:
    [one] = [a async for a in ControlHandler(server).generate(request)]
    return one


async def test_server_metadata_is_tritons(triton_server: Server) -> None:
    assert await answer(triton_server, {"op": "server_metadata"}) == {"result": triton_server.metadata()}


async def test_statistics_of_one_model_and_of_all(triton_server: Server) -> None:
    one = (await answer(triton_server, {"op": "statistics", "name": "identity", "version": "1"}))["result"]
    assert [(m["name"], m["version"]) for m in one["model_stats"]] == [("identity", "1")]
    every = (await answer(triton_server, {"op": "statistics", "name": "", "version": ""}))["result"]
    assert {m["name"] for m in every["model_stats"]} == {e["name"] for e in triton_server.model_index()}


async def test_repository_index_is_tritons(triton_server: Server) -> None:
    answered = await answer(triton_server, {"op": "repository_index", "ready": True})
    assert answered == {"result": triton_server.model_index(ready_only=True)}


@pytest.mark.parametrize(
    ("request_", "status", "words"),
    [
        ({"op": "statistics", "name": "no_such_model"}, "INVALID_ARGUMENT", "requested model 'no_such_model'"),
        ({"op": "statistics", "name": "identity", "version": "x"}, "INVALID_ARGUMENT", "version 'x' is not a number"),
        ({"op": "reboot"}, "INVALID_ARGUMENT", "unknown control operation 'reboot'"),
    ],
)
async def test_refusals_are_data_with_tritons_status(
    triton_server: Server, request_: dict, status: str, words: str
) -> None:
    answered = await answer(triton_server, request_)
    assert answered["error"]["status"] == status, answered
    assert words in answered["error"]["message"], answered


async def test_a_defect_in_an_operation_is_an_internal_error_as_data(triton_server: Server) -> None:
    class Broken:
        registered: set[str] = set()

        async def load_model(self, name: str, config: str | None = None) -> dict:
            raise KeyError("boom")

    [answered] = [a async for a in ControlHandler(triton_server, models=Broken()).generate({"op": "load", "name": "x"})]
    assert answered == {"error": {"status": "INTERNAL", "message": "KeyError: 'boom'"}}
