# SPDX-License-Identifier: Apache-2.0
"""The other workers of the fleet: to which a worker at its admission limit hands a request once, and which
serves each sequence of a stateful model.

Why a worker needs them: each worker registers its models under a component of its own (:mod:`.served` says why), so
Dynamo 1.6.1's frontend sees every worker as a worker set of its own, and it picks among a model's worker sets at
random for each request, weighted by their instance counts. ``--router-mode`` applies only inside one worker set, so
it changes nothing here. Two workers then get a coin toss per request: runs of ten to fifteen requests to one worker
occur every minute at 140 requests/s. On a busy machine those runs filled one worker's admission limit while its
peer had room: the 70% soak refused 2 to 5 requests in 2 of 7 CI runs. A worker at its limit now hands the request
to a peer (round robin over the live ones). The peer admits it or refuses it as its own. A handed request is never
handed on, so the fleet refuses a request only when two workers are full.

The same peers serve a stateful model's sequences: a request of a sequence goes to the worker that owns the
sequence (:mod:`.sequences`), wherever the frontend sent it.

The peers are the instances of the control endpoint, which every live worker serves until it stops. A peer's
model endpoint is named from its instance id, as :func:`model_endpoint_path` names every worker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

# Dynamo's own Triton worker names a model's endpoint this way ([a-z0-9_-] and a content hash, so that no endpoint
# name is a prefix of another, which discovery's prefix scan would confuse): ours uses the same function, so the
# names match what Dynamo's tooling expects of a Triton model.
from dynamo.triton.util import endpoint_slug

from ..endpoints import control_endpoint_path
from ..errors import Overloaded, Status, TritonDynamoError, status_from_reply
from ..telemetry.metrics import WorkerMetrics
from .handler import HANDED_KEY
from .sequences import owner

logger = logging.getLogger(__name__)

# How long a new client of a peer's model endpoint may take to learn from discovery that the peer serves it.
FIRST_DISCOVERY_S = 1.0


def model_endpoint_path(namespace: str, component: str, instance_id: int, model_name: str) -> str:
    """The Dynamo endpoint a worker serves a model on: its own component, named by its instance id.

    Example:
        >>> model_endpoint_path("triton", "worker", 0x1F, "identity").split(".")[:2]
        ['triton', 'worker-1f']
    """
    return f"{namespace}.{component}-{instance_id:x}.{endpoint_slug(model_name)}"


def peer_error(message: str) -> tuple[Status, str]:
    """A peer's error as Dynamo's client raises it ('Internal: Overloaded: [UNAVAILABLE] worker is at ...'): its
    status and its own words, without the prefixes that Dynamo and our status add on the way.

    Example:
        >>> status, text = peer_error("Internal: InvalidInput: [INVALID_ARGUMENT] input 'X' is missing")
        >>> status.name, text
        ('INVALID_ARGUMENT', "input 'X' is missing")
        >>> peer_error("connection reset")[0].name
        'UNAVAILABLE'
    """
    status = status_from_reply(None, message)
    if status is Status.UNKNOWN:  # no status of ours: the peer was not reached, or went away meanwhile
        return Status.UNAVAILABLE, message
    marker = f"[{status.name}] "
    return status, message.split(marker, 1)[1] if marker in message else message


class Peers:
    """Hands requests to the other live workers of the same namespace and component."""

    def __init__(
        self, runtime: Any, *, namespace: str, component: str, own_id: int, metrics: WorkerMetrics | None = None
    ) -> None:
        self.runtime = runtime
        self.metrics = metrics
        self.namespace = namespace
        self.component = component
        self.own_id = own_id
        self._fleet: Any = None  # Dynamo client of the control endpoint: its instances are the live workers
        self._clients: dict[tuple[int, str], Any] = {}  # (peer, model) -> client of that peer's model endpoint
        self._creating = asyncio.Lock()
        self._turn = itertools.count()

    async def start(self) -> None:
        self._fleet = await self.runtime.endpoint(control_endpoint_path(self.namespace, self.component)).client()

    def live(self) -> list[int]:
        """The other workers in discovery now."""
        if self._fleet is None:
            return []
        return sorted(i for i in self._fleet.instance_ids() if i != self.own_id)

    async def hand(self, model: str, request: Mapping[str, Any], refusal: Overloaded) -> AsyncIterator[dict[str, Any]]:
        """The responses of a peer serving ``request``; raises ``refusal`` when no peer serves ``model``, and a
        peer's own error (its status kept) when it refuses or fails the request."""
        client, peer = await self._pick(model)
        if client is None:
            raise refusal
        logger.debug("model %r request %r handed to worker %x", model, request.get("id"), peer)
        if self.metrics is not None:
            self.metrics.model(model).handed += 1

        def unreachable(text: str) -> TritonDynamoError:
            why = f"handed to worker {peer:x}, which could not take it either: {text}"
            return Overloaded(f"{refusal.message} ({why})")

        async for response in self._send(client, peer, request, unreachable):
            yield response

    async def sequence_owner(self, model: str, sequence: int | str) -> int | None:
        """The peer that serves ``sequence`` of ``model``; None when it is this worker."""
        serving = [peer for _, peer in await self._serving(model)]
        chosen = owner(sequence, [self.own_id, *serving])
        return None if chosen == self.own_id else chosen

    async def forward(
        self, model: str, request: Mapping[str, Any], peer: int, sequence: int | str
    ) -> AsyncIterator[dict[str, Any]]:
        """The responses of ``peer``, the owner of ``sequence``, serving ``request``; its own error when it refuses
        or fails the request, UNAVAILABLE naming it when it cannot be reached."""
        logger.debug("model %r sequence %r request %r sent to worker %x", model, sequence, request.get("id"), peer)
        if self.metrics is not None:
            self.metrics.model(model).sequence_forwarded += 1

        def unreachable(text: str) -> TritonDynamoError:
            return TritonDynamoError(
                f"sequence {sequence!r} of model {model!r} is served by worker {peer:x}, which could not be reached: "
                f"{text}",
                status=Status.UNAVAILABLE,
            )

        client, _ = await self._client(peer, model)
        async for response in self._send(client, peer, request, unreachable):
            yield response

    async def _send(
        self, client: Any, peer: int, request: Mapping[str, Any], unreachable: Callable[[str], TritonDynamoError]
    ) -> AsyncIterator[dict[str, Any]]:
        try:
            stream = await client.direct({**request, HANDED_KEY: True}, peer, annotated=False)
            async for response in stream:
                yield response
        except Exception as exc:  # Dynamo's client raises a plain error with the peer's message
            status, text = peer_error(str(exc))
            if status is Status.UNAVAILABLE:
                raise unreachable(text) from exc
            raise TritonDynamoError(f"{text} (served by worker {peer:x})", status=status) from exc

    async def _pick(self, model: str) -> tuple[Any, int]:
        """The next live peer (round robin) serving ``model``, with its client; (None, 0) when there is none."""
        serving = await self._serving(model)
        if not serving:
            return None, 0
        return serving[next(self._turn) % len(serving)]

    async def _serving(self, model: str) -> list[tuple[Any, int]]:
        """(client, peer) for each live peer serving ``model``."""
        peers = self.live()
        self._forget_gone(peers)
        clients = [(await self._client(peer, model), peer) for peer in peers]
        for (client, fresh), _ in clients:
            if fresh:
                # A new client learns its instances from discovery a moment after it is made: read at once, a peer
                # that serves the model looked as if it did not, and a CI run refused a request that peer had room
                # for. One wait at a time, as at start (service.py): many at once stalled Dynamo's runtime.
                await self._instances_known(client)
        return [(client, peer) for (client, _), peer in clients if client.instance_ids()]

    @staticmethod
    async def _instances_known(client: Any) -> None:
        # past the wait, the peer does not serve the model (yet): its instances are read again at the next request
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.wait_for_instances(), timeout=FIRST_DISCOVERY_S)

    async def _client(self, peer: int, model: str) -> tuple[Any, bool]:
        """The client of ``peer``'s endpoint for ``model``, and whether it was made just now."""
        key = (peer, model)
        if key in self._clients:
            return self._clients[key], False
        # One at a time: each creation starts a discovery watch in Dynamo's runtime, whose two threads stalled
        # when many waits ran at once (service.py).
        async with self._creating:
            if key in self._clients:
                return self._clients[key], False
            path = model_endpoint_path(self.namespace, self.component, peer, model)
            self._clients[key] = await self.runtime.endpoint(path).client()
            return self._clients[key], True

    def _forget_gone(self, peers: list[int]) -> None:
        live = set(peers)
        for key in [k for k in self._clients if k[0] not in live]:
            del self._clients[key]
