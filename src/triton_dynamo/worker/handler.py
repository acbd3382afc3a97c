# SPDX-License-Identifier: Apache-2.0
"""One model's request path: decode, check, infer, encode. Protocol details stay in :mod:`.codec`; Triton stays
behind :class:`~triton_dynamo.triton.Model`.

Errors reach Dynamo as exceptions whose text the client reads (the frontend reports every worker error as gRPC
INTERNAL): ``str()`` of a :class:`~triton_dynamo.errors.TritonDynamoError` puts our status first, then what was wrong.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import InvalidInput, Overloaded, RequestTooLarge, Status, TritonDynamoError
from ..triton import InferenceRequest, InferenceResponse, Model, TritonError
from .classification import classification_counts, top_k
from .codec import decode_parameters, decode_tensor, encode_parameters, encode_tensor
from .request_fields import split_request_fields
from .schema import ModelSchema
from .sequences import sequence_id
from .trace_settings import TracePolicy

logger = logging.getLogger(__name__)

HEALTH_CHECK_KEY = "_HEALTH_CHECK"  # Dynamo's canary marker (dynamo.health_check.HEALTH_CHECK_KEY)
# Triton's streaming convention, which tritonclient's stream API uses: a client that sends the first parameter gets the
# second on every response, so it knows when a decoupled model is done; an empty response carries it if need be.
EMPTY_FINAL_PARAMETER = "triton_enable_empty_final_response"
FINAL_PARAMETER = "triton_final_response"
# Marks a request that another worker handed to this one (.peers: at its admission limit, or for a sequence this
# one serves): served or refused here, never handed on.
HANDED_KEY = "_triton_dynamo_handed"


class RequestObserver(Protocol):
    """Told about every request: the worker's telemetry (:mod:`triton_dynamo.telemetry`) implements this.

    ``started`` comes first, ``decoded`` once the request passed its checks (it may set ``request.on_trace`` to
    receive Triton's timestamps), ``finished`` after the last response or the error.
    """

    def started(self, model: str, request_id: str, context: Any) -> Any: ...

    def decoded(self, token: Any, request: InferenceRequest, input_bytes: int, batch_size: int) -> None: ...

    def finished(
        self, token: Any, status: Status | None, output_bytes: int, responses: int, model_version: int | None = None
    ) -> None: ...


@dataclass
class Admission:
    """Requests in flight in this worker, shared by all its models; refuses past ``limit`` (0: no limit)."""

    limit: int = 0
    inflight: int = 0

    def full(self) -> bool:
        return bool(self.limit) and self.inflight >= self.limit

    def refusal(self, model: str) -> Overloaded:
        return Overloaded(
            f"worker is at its limit of {self.limit} requests in flight; model {model!r} request refused, retry later"
        )

    def enter(self, model: str) -> Callable[[], None]:
        """Admit one request; returns its way out, which may be called any number of times and leaves once."""
        if self.full():
            raise self.refusal(model)
        self.inflight += 1
        left = False

        def leave() -> None:
            nonlocal left
            if not left:
                left = True
                self.inflight -= 1

        return leave


class Handover(Protocol):
    """The other workers (:class:`~.peers.Peers`): where a worker at its admission limit hands a request, and which
    serves each sequence of a stateful model."""

    def hand(self, model: str, request: Mapping[str, Any], refusal: Overloaded) -> AsyncIterator[dict[str, Any]]: ...

    async def sequence_owner(self, model: str, sequence: int | str) -> int | None: ...

    def forward(
        self, model: str, request: Mapping[str, Any], peer: int, sequence: int | str
    ) -> AsyncIterator[dict[str, Any]]: ...


class ModelHandler:
    """Serves one Triton model on one Dynamo endpoint."""

    def __init__(
        self,
        model: Model,
        schema: ModelSchema,
        *,
        admission: Admission,
        max_request_bytes: int,
        trace: bool = False,
        observer: RequestObserver | None = None,
        tracing: TracePolicy | None = None,
        handover: Handover | None = None,
        labels: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.model = model
        self.schema = schema
        self.labels = labels or {}  # output -> its classification labels (its config's label_filename)
        self.admission = admission
        self.max_request_bytes = max_request_bytes
        self.trace = trace  # whether anything records Triton's trace; ``tracing`` then picks the requests
        self.observer = observer
        self.tracing = tracing
        self.handover = handover  # None: refuse at the limit

    def health_check_payload(self) -> dict[str, Any]:
        """What Dynamo sends to check this endpoint: answered from readiness, never by inference (the model may keep
        state, and probes would count as traffic)."""
        return {"model": self.schema.name, HEALTH_CHECK_KEY: True}

    @property
    def endpoint_handler(self) -> Callable[..., AsyncIterator[dict[str, Any]]]:
        """What Dynamo's endpoint serves: :meth:`generate_push` for models that answer once, :meth:`generate` for
        decoupled models."""
        return self.generate if self.schema.decoupled else self.generate_push

    async def generate_push(
        self, request: Mapping[str, Any], context: Any = None, response_sender: Any = None
    ) -> AsyncIterator[dict[str, Any]]:
        """:meth:`generate` on Dynamo's push path, which declaring ``response_sender`` selects: the runtime advances
        this generator once per request and the response goes out through ``response_sender.send``, converted on
        this thread under the GIL we hold. On the pull path the runtime takes the GIL on one of its own threads for
        the response and once more to learn that the stream ended: push serves more requests a second with less CPU
        in the runtime's threads (docs/measurements.md, "push egress").

        Only for models that send one response: ``send`` blocks the event loop while Dynamo's queue of 128 responses
        is full, which a decoupled model streaming to a slow client could do; those stay on the pull path.
        """
        if response_sender is None:  # called as a pull handler (by a test, or a runtime without push egress)
            async for response in self.generate(request, context):
                yield response
            return
        responses = self.generate(request, context)
        try:
            async for response in responses:
                response_sender.send(response)
        except BaseException:
            # Dynamo reports the error as it reports any handler's. Close the generator (a no-op once it raised
            # itself; after a failed send it cancels the request); when it ends normally it has closed itself.
            await responses.aclose()
            raise
        response_sender.close()

    async def generate(self, request: Mapping[str, Any], context: Any = None) -> AsyncIterator[dict[str, Any]]:
        """Dynamo's handler: one request dict in, its responses out (several only for decoupled models)."""
        if request.get(HEALTH_CHECK_KEY) is True:
            yield self._probe()
            return
        if self.handover is not None and not request.get(HANDED_KEY):
            sequence = sequence_id(request.get("parameters")) if self.schema.stateful else None
            if sequence is not None:  # served where its state is, never handed elsewhere for want of room
                peer = await self.handover.sequence_owner(self.schema.name, sequence)
                if peer is not None:
                    async for response in self.handover.forward(self.schema.name, request, peer, sequence):
                        yield response
                    return
            elif self.admission.full():
                refusal = self.admission.refusal(self.schema.name)
                async for response in self.handover.hand(self.schema.name, request, refusal):
                    yield response
                return
        leave = self.admission.enter(self.schema.name)
        observer = self.observer
        client_id = request.get("id") or ""
        token = None
        status, output_bytes, responses, version = None, 0, 0, None
        handed = False  # to Triton, which then calls on_release exactly once
        try:
            if observer is not None:
                token = observer.started(self.schema.name, client_id, context)
            infer_request, input_bytes = self._decode(request, client_id)
            classify = classification_counts(request.get("outputs") or ())
            if token is not None:
                batched = self.schema.max_batch_size > 0 and infer_request.inputs
                batch = next(iter(infer_request.inputs.values())).shape[0] if batched else 1
                self.observer.decoded(token, infer_request, input_bytes, batch)
            mark_final = infer_request.parameters.pop(EMPTY_FINAL_PARAMETER, False) is True
            final_sent = False
            # In flight until answered in full, or until Triton lets go of it if that comes first: a request its
            # client abandoned runs on in Triton, inputs pinned.
            infer_request.on_release = leave
            handed = True
            async for response in self.model.async_infer(infer_request):
                encoded, size = self._encode(response, classify)
                if mark_final:
                    encoded.setdefault("parameters", {})[FINAL_PARAMETER] = {"bool": response.final}
                    final_sent = response.final
                output_bytes += size
                responses += 1
                version = response.model_version
                if response.final:
                    # Answered: out of the count before the answer leaves. Triton's release of the request may come
                    # a moment later, and this generator resumes after the yield only once Dynamo has sent the
                    # answer: on a busy machine the client's next request found this one still counted.
                    leave()
                yield encoded
            leave()
            if mark_final and not final_sent:
                # The model sent its final flag without a response (decoupled models do): say so, as Triton does.
                yield {
                    "id": infer_request.request_id,
                    "model": self.schema.name,
                    "tensors": [],
                    "parameters": {FINAL_PARAMETER: {"bool": True}},
                }
        except TritonDynamoError as exc:
            status = exc.status
            if status is not Status.INVALID_ARGUMENT:
                logger.warning("model %r request %r failed: %s", self.schema.name, request.get("id"), exc.message)
            if isinstance(exc, TritonError):
                # Dynamo sends an exception with a ``code`` attribute as {"message", "code"} and drops str(), and
                # with it our status: the client read 'Internal: {"message":"... Exceeds maximum queue size","code":4}'.
                # Triton names a request without an id "<id_unknown>": name it by the id Dynamo's frontend gave it
                # and logs. Here, on the error path, rather than giving every request that id.
                message = exc.message
                if not client_id:
                    message = message.replace("[request id: <id_unknown>]", f"[request id: {_context_id(context)}]")
                raise TritonDynamoError(message, status=status) from exc
            raise
        except Exception as exc:
            status = Status.INTERNAL
            logger.exception("model %r request %r: unexpected error", self.schema.name, request.get("id"))
            raise TritonDynamoError(
                f"internal error in the worker serving {self.schema.name!r}: {type(exc).__name__}: {exc}"
            ) from exc
        except BaseException:
            status = Status.CANCELLED  # the client went away (GeneratorExit) or the task was cancelled
            raise
        finally:
            if not handed:
                leave()
            if token is not None:
                self.observer.finished(token, status, output_bytes, responses, version)

    def _decode(self, request: Mapping[str, Any], client_id: str) -> tuple[InferenceRequest, int]:
        tensors = request.get("tensors")
        if not isinstance(tensors, list):
            raise InvalidInput(f"request to model {self.schema.name!r} has no tensors")
        inputs, shapes, total = {}, {}, 0
        for tensor in tensors:
            name, data_type, array = decode_tensor(tensor)
            if name in inputs:
                raise InvalidInput(f"input {name!r} appears twice in the request")
            total += array.nbytes if data_type != "BYTES" else sum(len(x) for x in array.reshape(-1))
            if total > self.max_request_bytes:
                raise RequestTooLarge(
                    f"request to model {self.schema.name!r} is over the worker's limit of "
                    f"{self.max_request_bytes} bytes of tensor data"
                )
            inputs[name] = array
            shapes[name] = (data_type, array.shape)
        self.schema.check_inputs(shapes)
        output_names = [o["name"] for o in request.get("outputs") or ()]
        self.schema.check_outputs(output_names)
        parameters, fields = split_request_fields(request.get("parameters"))
        infer_request = InferenceRequest(
            inputs=inputs,
            request_id=client_id,
            parameters=decode_parameters(parameters),
            output_names=output_names,
            trace=self.trace and (self.tracing is None or self.tracing.sample(self.schema.name)),
            **fields,
        )
        return infer_request, total

    def _encode(self, response: InferenceResponse, classify: Mapping[str, int]) -> tuple[dict[str, Any], int]:
        tensors, size = [], 0
        for name, array in response.outputs.items():
            size += array.nbytes
            if name in classify:  # Triton's classification extension: the top k as strings, in place of the tensor
                spec = self.schema.outputs.get(name)
                array = top_k(
                    array,
                    classify[name],
                    batched=self.schema.max_batch_size > 0,
                    labels=self.labels.get(name, ()),
                    data_type=spec.data_type if spec is not None else "",
                )
            tensors.append(encode_tensor(name, array))
        encoded: dict[str, Any] = {"id": response.request_id, "model": self.schema.name, "tensors": tensors}
        if response.parameters:
            encoded["parameters"] = encode_parameters(response.parameters)
        return encoded, size

    def _probe(self) -> dict[str, Any]:
        if not self.model.ready():
            raise TritonDynamoError(f"model {self.schema.name!r} is not ready", status=Status.UNAVAILABLE)
        return {"id": "", "model": self.schema.name, "tensors": []}


def _context_id(context: Any) -> str:
    """The id Dynamo's frontend gave the request (its logs and spans carry it); Triton's "<id_unknown>" without
    a context."""
    try:
        return str(context.id()) if context is not None else "<id_unknown>"
    except AttributeError:
        return "<id_unknown>"
