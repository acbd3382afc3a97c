# SPDX-License-Identifier: Apache-2.0
"""Hand-over at the admission limit and sequences served by their owner: the handler's decision on the real
in-process Triton with a recorder in place of the peers, and the peers' choice and error wording with small stand-ins
for Dynamo's clients. The real path, from one worker to another through Dynamo, runs in tests/e2e/test_handover.py
(hand-over) and tests/e2e/test_triton_parity.py (sequences)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from triton_dynamo.errors import Overloaded, Status, TritonDynamoError
from triton_dynamo.triton import Server
from triton_dynamo.worker.handler import HANDED_KEY, Admission
from triton_dynamo.worker.peers import Peers, model_endpoint_path, peer_error

from .test_handler import handler_for, identity_request, released


class HandoverRecorder:
    def __init__(self, sequence_owner: int | None = None) -> None:
        self.handed: list[tuple[str, dict, str]] = []
        self.forwarded: list[tuple[str, dict, int, Any]] = []
        self.owner = sequence_owner  # the peer that owns every sequence; None: this worker

    async def hand(self, model: str, request: Mapping[str, Any], refusal: Overloaded) -> AsyncIterator[dict]:
        self.handed.append((model, dict(request), refusal.message))
        yield {"id": request.get("id"), "model": model, "tensors": [], "from": "peer"}

    async def sequence_owner(self, model: str, sequence: int | str) -> int | None:
        return self.owner

    async def forward(self, model: str, request: Mapping[str, Any], peer: int, sequence: Any) -> AsyncIterator[dict]:
        self.forwarded.append((model, dict(request), peer, sequence))
        yield {"id": request.get("id"), "model": model, "tensors": [], "from": f"owner {peer:x}"}


def stateful_handler(triton_server: Server, recorder: HandoverRecorder) -> Any:
    """identity_fp32's handler, told its model keeps sequences (the decision is the handler's; the real sequence
    model and the real peers run in tests/e2e/test_triton_parity.py)."""
    handler = handler_for(triton_server, "identity_fp32")
    handler.schema = dataclasses.replace(handler.schema, stateful=True)
    handler.handover = recorder
    return handler


def in_sequence(request: dict, sequence: Any) -> dict:
    return {**request, "parameters": {"sequence_id": sequence}}


async def test_a_sequence_owned_elsewhere_goes_to_its_owner_even_with_room_here(triton_server: Server) -> None:
    handler = stateful_handler(triton_server, recorder := HandoverRecorder(sequence_owner=0xB))
    handler.admission = Admission(limit=4)
    [answer] = [r async for r in handler.generate(in_sequence(identity_request([1.0]), {"int64": 5}))]
    assert answer["from"] == "owner b"
    [(model, _, peer, sequence)] = recorder.forwarded
    assert (model, peer, sequence) == ("identity_fp32", 0xB, 5)
    assert handler.admission.inflight == 0


async def test_a_sequence_owned_here_is_served_here_and_refused_when_full_never_handed(triton_server: Server) -> None:
    handler = stateful_handler(triton_server, recorder := HandoverRecorder(sequence_owner=None))
    handler.admission = Admission(limit=1)
    [answer] = [r async for r in handler.generate(in_sequence(identity_request([1.0]), {"int64": 5}))]
    assert "from" not in answer and answer["tensors"]
    assert await released(handler)
    handler.admission = Admission(limit=1, inflight=1)
    with pytest.raises(Overloaded):  # handed to a peer, the sequence would lose its state there
        [r async for r in handler.generate(in_sequence(identity_request([1.0]), {"int64": 5}))]
    assert recorder.handed == [] and recorder.forwarded == []


async def test_requests_outside_sequences_and_handed_ones_are_not_forwarded(triton_server: Server) -> None:
    handler = stateful_handler(triton_server, recorder := HandoverRecorder(sequence_owner=0xB))
    handler.admission = Admission(limit=4)
    for request in (
        identity_request([1.0]),
        in_sequence(identity_request([1.0]), {"int64": 0}),
        {**in_sequence(identity_request([1.0]), {"int64": 5}), HANDED_KEY: True},
    ):
        [answer] = [r async for r in handler.generate(request)]
        assert "from" not in answer
    assert recorder.forwarded == []
    handler.schema = dataclasses.replace(handler.schema, stateful=False)  # a model without a sequence batcher
    [answer] = [r async for r in handler.generate(in_sequence(identity_request([1.0]), {"int64": 5}))]
    assert "from" not in answer and recorder.forwarded == []


async def test_a_full_worker_hands_the_request_over_and_admits_nothing(triton_server: Server) -> None:
    handler = handler_for(triton_server, "identity_fp32")
    handler.admission = Admission(limit=1, inflight=1)
    handler.handover = recorder = HandoverRecorder()
    [answer] = [r async for r in handler.generate(identity_request([1.0]))]
    assert answer["from"] == "peer"
    [(model, request, refusal)] = recorder.handed
    assert model == "identity_fp32" and request["id"] == "r1"
    assert "at its limit of 1 requests in flight" in refusal
    assert handler.admission.inflight == 1  # the one already in flight; the handed request never entered


async def test_a_handed_request_is_refused_when_full_never_handed_on(triton_server: Server) -> None:
    handler = handler_for(triton_server, "identity_fp32")
    handler.admission = Admission(limit=1, inflight=1)
    handler.handover = recorder = HandoverRecorder()
    with pytest.raises(Overloaded, match=r"\[UNAVAILABLE\] worker is at its limit of 1"):
        [r async for r in handler.generate({**identity_request([1.0]), HANDED_KEY: True})]
    assert recorder.handed == []


async def test_a_worker_with_room_serves_handed_and_own_requests_itself(triton_server: Server) -> None:
    handler = handler_for(triton_server, "identity_fp32")
    handler.admission = Admission(limit=2)
    handler.handover = recorder = HandoverRecorder()
    for request in (identity_request([2.0]), {**identity_request([3.0]), HANDED_KEY: True}):
        [answer] = [r async for r in handler.generate(request)]
        assert "from" not in answer
    assert recorder.handed == []
    assert await released(handler)


@pytest.mark.parametrize(
    ("message", "status", "text"),
    [
        (
            "Internal: Overloaded: [UNAVAILABLE] worker is at its limit of 14 requests in flight",
            Status.UNAVAILABLE,
            "worker is at its limit of 14 requests in flight",
        ),
        (
            "Internal: InvalidInput: [INVALID_ARGUMENT] input 'X' is missing",
            Status.INVALID_ARGUMENT,
            "input 'X' is missing",
        ),
        ("Internal: TritonError: [INTERNAL] model raised", Status.INTERNAL, "model raised"),
        ("no responders: instance 1f gone", Status.UNAVAILABLE, "no responders: instance 1f gone"),
    ],
)
def test_peer_errors_keep_their_status_and_own_words(message: str, status: Status, text: str) -> None:
    assert peer_error(message) == (status, text)


def test_each_worker_serves_a_model_under_a_component_named_by_its_instance_id() -> None:
    path = model_endpoint_path("triton", "worker", 0xAB12, "identity")
    namespace, component, endpoint = path.split(".")
    assert (namespace, component) == ("triton", "worker-ab12")
    assert endpoint.startswith("identity") and endpoint != model_endpoint_path("triton", "worker", 1, "identity_fp32")


class FakeClient:
    """What Peers uses of a Dynamo client: its instances, and ``direct``, which answers as the peer would."""

    def __init__(self, instances: list[int], answer: Exception | list[dict] | None = None) -> None:
        self.instances = instances
        self.answer = answer or [{"tensors": []}]
        self.sent: list[tuple[dict, int]] = []

    def instance_ids(self) -> list[int]:
        return list(self.instances)

    async def wait_for_instances(self) -> list[int]:
        while not self.instances:
            await asyncio.sleep(0.01)
        return list(self.instances)

    async def direct(self, request: dict, instance_id: int, annotated: bool = True) -> AsyncIterator[dict]:
        self.sent.append((request, instance_id))
        answer = self.answer

        async def stream() -> AsyncIterator[dict]:
            if isinstance(answer, Exception):
                raise answer
            for item in answer:
                yield item

        return stream()


class FakeRuntime:
    def __init__(self, clients: dict[str, FakeClient]) -> None:
        self.clients = clients
        self.created: list[str] = []

    def endpoint(self, path: str) -> Any:
        runtime = self

        class Endpoint:
            async def client(self) -> FakeClient:
                runtime.created.append(path)
                return runtime.clients.get(path) or FakeClient([])

        return Endpoint()


@pytest.fixture(autouse=True)
def quick_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("triton_dynamo.worker.peers.FIRST_DISCOVERY_S", 0.05)


def fleet(own: int, peers: dict[int, FakeClient]) -> tuple[Peers, FakeRuntime]:
    clients = {"triton.worker.control": FakeClient([own, *peers])}
    clients |= {model_endpoint_path("triton", "worker", p, "slow"): c for p, c in peers.items()}
    runtime = FakeRuntime(clients)
    return Peers(runtime, namespace="triton", component="worker", own_id=own), runtime


async def test_requests_go_round_robin_to_the_peers_that_serve_the_model() -> None:
    serving_b, serving_c = FakeClient([0xB]), FakeClient([0xC])
    peers, _ = fleet(0xA, {0xB: serving_b, 0xC: serving_c, 0xD: FakeClient([])})  # D does not serve 'slow'
    await peers.start()
    refusal = Overloaded("worker is at its limit of 1 requests in flight")
    for _ in range(4):
        [answer] = [r async for r in peers.hand("slow", {"id": "r"}, refusal)]
        assert answer == {"tensors": []}
    assert [i for _, i in serving_b.sent] == [0xB, 0xB] and [i for _, i in serving_c.sent] == [0xC, 0xC]
    assert all(request[HANDED_KEY] is True for request, _ in serving_b.sent + serving_c.sent)


async def test_without_a_peer_the_refusal_stands_and_a_full_peer_is_named() -> None:
    alone, _ = fleet(0xA, {})
    await alone.start()
    refusal = Overloaded("worker is at its limit of 1 requests in flight; model 'slow' request refused, retry later")
    with pytest.raises(Overloaded) as raised:
        [r async for r in alone.hand("slow", {}, refusal)]
    assert raised.value is refusal

    full = FakeClient([0xB], RuntimeError("Internal: Overloaded: [UNAVAILABLE] worker is at its limit of 1 requests"))
    peers, _ = fleet(0xA, {0xB: full})
    await peers.start()
    with pytest.raises(
        Overloaded, match=r"retry later \(handed to worker b, which could not take it either: worker is at its limit"
    ):
        [r async for r in peers.hand("slow", {}, refusal)]

    failing = FakeClient([0xB], RuntimeError("Internal: TritonError: [INTERNAL] model raised"))
    peers, _ = fleet(0xA, {0xB: failing})
    await peers.start()
    with pytest.raises(TritonDynamoError, match=r"model raised \(served by worker b\)") as raised_error:
        [r async for r in peers.hand("slow", {}, refusal)]
    assert raised_error.value.status is Status.INTERNAL


async def test_clients_of_workers_that_left_are_forgotten() -> None:
    peers, runtime = fleet(0xA, {0xB: FakeClient([0xB])})
    await peers.start()
    refusal = Overloaded("full")
    [r async for r in peers.hand("slow", {}, refusal)]
    assert (0xB, "slow") in peers._clients
    runtime.clients["triton.worker.control"].instances = [0xA]  # B left discovery
    with pytest.raises(Overloaded):
        [r async for r in peers.hand("slow", {}, refusal)]
    assert peers._clients == {}


async def test_every_worker_names_the_same_owner_among_those_serving_the_model() -> None:
    serving = {0xB: FakeClient([0xB]), 0xC: FakeClient([0xC]), 0xD: FakeClient([])}  # D does not serve 'slow'
    owners = {}
    for own in (0xA, 0xB, 0xC):
        peers, _ = fleet(own, {p: c for p, c in serving.items() if p != own} | {0xA: FakeClient([0xA])})
        await peers.start()
        owners[own] = {s: await peers.sequence_owner("slow", s) or own for s in range(1, 60)}
    assert owners[0xA] == owners[0xB] == owners[0xC]
    assert set(owners[0xA].values()) == {0xA, 0xB, 0xC}


async def test_a_forwarded_request_is_marked_and_an_unreachable_owner_is_named() -> None:
    owner_b = FakeClient([0xB])
    peers, _ = fleet(0xA, {0xB: owner_b})
    await peers.start()
    [answer] = [r async for r in peers.forward("slow", {"id": "r"}, 0xB, 7)]
    assert answer == {"tensors": []}
    [(request, instance)] = owner_b.sent
    assert instance == 0xB and request[HANDED_KEY] is True

    gone = FakeClient([0xB], RuntimeError("no responders: instance b gone"))
    peers, _ = fleet(0xA, {0xB: gone})
    await peers.start()
    with pytest.raises(TritonDynamoError, match=r"sequence 7 of model 'slow' is served by worker b, which could not"):
        [r async for r in peers.forward("slow", {}, 0xB, 7)]

    refusing = FakeClient([0xB], RuntimeError("Internal: TritonError: [INVALID_ARGUMENT] must specify the START flag"))
    peers, _ = fleet(0xA, {0xB: refusing})
    await peers.start()
    with pytest.raises(TritonDynamoError, match=r"START flag \(served by worker b\)") as raised:
        [r async for r in peers.forward("slow", {}, 0xB, 7)]
    assert raised.value.status is Status.INVALID_ARGUMENT


async def test_a_new_client_is_given_a_moment_to_learn_that_its_peer_serves_the_model() -> None:
    # Dynamo's client learns its instances a moment after it is made; read at once, the peer looked absent
    late = FakeClient([])
    peers, _ = fleet(0xA, {0xB: late})
    await peers.start()

    async def registers_later() -> None:
        await asyncio.sleep(0.02)
        late.instances = [0xB]

    registering = asyncio.create_task(registers_later())
    [answer] = [r async for r in peers.hand("slow", {"id": "r"}, Overloaded("full"))]
    await registering
    assert answer == {"tensors": []} and [i for _, i in late.sent] == [0xB]
