# SPDX-License-Identifier: Apache-2.0
"""The handler's two response paths on the real in-process Triton: push (Dynamo's ``response_sender``) for models
that answer once, pull for decoupled ones. A recorder stands in for Dynamo's ResponseSender here; the real one
carries every request of tests/e2e through the frontend."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import SLOW_QUEUED
from triton_dynamo.errors import Status, TritonDynamoError
from triton_dynamo.triton import Server
from triton_dynamo.worker.handler import Admission, ModelHandler
from triton_dynamo.worker.schema import ModelSchema


class Recorder:
    """What the handler does with a response sender: the responses it sends, and whether it closed the stream."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.closed = False

    def send(self, response: dict) -> None:
        assert not self.closed, "send after close"
        self.sent.append(response)

    def close(self) -> None:
        self.closed = True


def handler_for(server: Server, name: str) -> ModelHandler:
    model = server.model(name)
    schema = ModelSchema.from_config(model.config())
    return ModelHandler(model, schema, admission=Admission(), max_request_bytes=1 << 20)


async def released(handler: ModelHandler, timeout_s: float = 5.0) -> bool:
    """Whether every request left admission within ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while handler.admission.inflight and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    return handler.admission.inflight == 0


DELAY = {"metadata": {"name": "DELAY_MS", "data_type": "Int32", "shape": [1]}, "data": {"data_type": "Int32"}}


def identity_request(values: list[float], input_name: str = "INPUT0") -> dict:
    tensor = {
        "metadata": {"name": input_name, "data_type": "Float32", "shape": [len(values)]},
        "data": {"data_type": "Float32", "values": values},
    }
    return {"id": "r1", "model": "identity_fp32", "tensors": [tensor]}


async def test_models_that_answer_once_take_the_push_path_and_decoupled_ones_pull(triton_server: Server) -> None:
    once = handler_for(triton_server, "identity_fp32")
    decoupled = handler_for(triton_server, "repeat")
    assert once.endpoint_handler == once.generate_push
    assert decoupled.endpoint_handler == decoupled.generate


async def test_push_sends_the_one_response_then_closes(triton_server: Server) -> None:
    handler, sender = handler_for(triton_server, "identity_fp32"), Recorder()
    yielded = [r async for r in handler.generate_push(identity_request([1.0, 2.5, -3.0]), None, sender)]
    assert yielded == []  # Dynamo drives a push handler once and fails the request if it yields
    assert sender.closed
    [response] = sender.sent
    assert response["id"] == "r1"
    [tensor] = response["tensors"]
    assert tensor["metadata"] == {"name": "OUTPUT0", "data_type": "Float32", "shape": [3]}
    assert list(tensor["data"]["values"]) == [1.0, 2.5, -3.0]
    assert await released(handler)


async def test_push_raises_a_bad_request_without_sending_or_closing(triton_server: Server) -> None:
    handler, sender = handler_for(triton_server, "identity_fp32"), Recorder()
    with pytest.raises(TritonDynamoError, match="INPUT9"):
        async for _ in handler.generate_push(identity_request([1.0], input_name="INPUT9"), None, sender):
            pass
    # Dynamo turns the exception into the client's error; a close() first would end the stream as a success.
    assert sender.sent == [] and not sender.closed
    assert handler.admission.inflight == 0


async def test_push_handler_called_without_a_sender_yields_as_the_pull_one_does(triton_server: Server) -> None:
    handler = handler_for(triton_server, "identity_fp32")
    pushed = [r async for r in handler.generate_push(identity_request([4.0]))]
    pulled = [r async for r in handler.generate(identity_request([4.0]))]
    assert len(pushed) == len(pulled) == 1
    assert list(pushed[0]["tensors"][0]["data"]["values"]) == list(pulled[0]["tensors"][0]["data"]["values"]) == [4.0]


class FrontendContext:
    """The one thing the handler reads of Dynamo's request context for Triton: the id the frontend gave the
    request (the real context is exercised through the frontend in tests/e2e)."""

    def id(self) -> str:
        return "frontend-7"


async def test_triton_refusals_keep_their_status_and_name_the_request(triton_server: Server) -> None:
    """More requests than 'slow_queued' holds: Triton refuses the rest, and what reaches Dynamo is our error type
    (no ``code`` attribute for Dynamo to turn into bare JSON), with our status and the frontend's request id in
    place of Triton's "<id_unknown>"."""
    handler = handler_for(triton_server, SLOW_QUEUED)

    async def one() -> BaseException | None:
        request = {"model": SLOW_QUEUED, "tensors": identity_request([1.0])["tensors"]}
        try:
            [_ async for _ in handler.generate(request, FrontendContext())]
        except Exception as exc:
            return exc
        return None

    refusals = [r for r in await asyncio.gather(*(one() for _ in range(40))) if r is not None]
    assert refusals, "Triton refused nothing"
    for refusal in refusals:
        assert type(refusal) is TritonDynamoError and not hasattr(refusal, "code"), repr(refusal)
        assert refusal.status is Status.UNAVAILABLE
        assert str(refusal).startswith("[UNAVAILABLE] [request id: frontend-7] Exceeds maximum queue size"), refusal


async def test_an_abandoned_request_stays_in_flight_until_triton_releases_it(triton_server: Server) -> None:
    handler = handler_for(triton_server, "slow")
    request = {**identity_request([1.0]), "model": "slow", "id": "abandoned"}
    request["tensors"].append({**DELAY, "data": {**DELAY["data"], "values": [400]}})
    responses = handler.generate(request)
    first = asyncio.ensure_future(responses.__anext__())
    await asyncio.sleep(0.1)  # in Triton now, in the model's 400 ms
    first.cancel()  # the client went away
    with pytest.raises(asyncio.CancelledError):
        await first
    await responses.aclose()
    abandoned_at = asyncio.get_running_loop().time()
    assert handler.admission.inflight == 1  # Triton still runs it, with its inputs
    while handler.admission.inflight and asyncio.get_running_loop().time() - abandoned_at < 5:
        await asyncio.sleep(0.01)
    assert handler.admission.inflight == 0
    assert asyncio.get_running_loop().time() - abandoned_at > 0.1  # let go only when the model was done with it


async def test_an_answered_request_leaves_admission_with_its_last_response(triton_server: Server) -> None:
    # Triton may release a request a moment after its final response; a client that sends its next request then must
    # not find the worker still full. Leaving only at Triton's release, some of these 80 requests were still counted
    # when answered in each of 4 runs (3 in the one run that counted them all).
    for name, extra in (("identity_fp32", []), ("slow", [{**DELAY, "data": {**DELAY["data"], "values": [1]}}])):
        handler = handler_for(triton_server, name)
        for index in range(40):
            request = {**identity_request([float(index)]), "model": name}
            request["tensors"] += extra
            answers = []
            async for answer in handler.generate(request):
                # out of the count as the answer is handed out, not when Dynamo resumes the generator after sending
                # it (on a busy machine, the client's next request arrived first: tests/e2e/test_handover.py)
                assert handler.admission.inflight == 0, (name, index)
                answers.append(answer)
            [answer] = answers
            assert answer["tensors"][0]["data"]["values"].tolist() == [float(index)]


async def test_a_request_refused_before_triton_leaves_admission_at_once(triton_server: Server) -> None:
    handler = handler_for(triton_server, "identity_fp32")
    with pytest.raises(TritonDynamoError):
        [r async for r in handler.generate(identity_request([1.0], input_name="WRONG"))]
    assert handler.admission.inflight == 0
    [answer] = [r async for r in handler.generate(identity_request([2.0]))]
    assert answer["tensors"][0]["data"]["values"].tolist() == [2.0]
    assert await released(handler)


async def test_requests_triton_refuses_still_get_their_span_and_count(triton_server: Server) -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    from tests.telemetry.test_sampling import Exported
    from triton_dynamo.telemetry.metrics import WorkerMetrics
    from triton_dynamo.telemetry.observer import RequestTelemetry

    exported = Exported(ALWAYS_ON)
    telemetry = RequestTelemetry(WorkerMetrics(), exported.tracer)
    model = triton_server.model(SLOW_QUEUED)
    schema = ModelSchema.from_config(model.config())
    handler = ModelHandler(
        model, schema, admission=Admission(), max_request_bytes=1 << 20, trace=True, observer=telemetry
    )

    async def one() -> bool:
        request = {"model": SLOW_QUEUED, "tensors": identity_request([1.0])["tensors"]}
        try:
            [_ async for _ in handler.generate(request)]
        except TritonDynamoError:
            return False
        return True

    served = await asyncio.gather(*(one() for _ in range(40)))
    refused = served.count(False)
    assert refused, "Triton refused nothing"

    def request_spans() -> list:
        return [s for s in exported.spans() if s.name == f"infer {SLOW_QUEUED}"]

    deadline = asyncio.get_running_loop().time() + 10
    while len(request_spans()) < 40 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)  # the served requests' spans wait for Triton's trace release
    outcomes = [{a.key: a.value.string_value for a in s.attributes}["triton_dynamo.outcome"] for s in request_spans()]
    assert sorted(outcomes) == sorted(["UNAVAILABLE"] * refused + ["success"] * (40 - refused))
    assert telemetry.metrics.model(SLOW_QUEUED).outcomes == {"unavailable": refused, "success": 40 - refused}
    exported.batcher.shutdown()
