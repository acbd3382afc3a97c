# SPDX-License-Identifier: Apache-2.0
"""KServe v2 gRPC on the wire, with as little work per request as possible: requests are built once as protobuf
messages and sent as they are; answers are decoded to numpy only when they are checked.

The stubs are tritonclient's generated ones (``GRPCInferenceService``); tritonclient's own client is not used on the
hot path because it rebuilds each request from ``InferInput`` objects and copies every answer.

Example:
    >>> request = build_request("identity", {"INPUT0": np.arange(3, dtype=np.int32)})
    >>> request.inputs[0].datatype, list(request.inputs[0].shape), len(request.raw_input_contents[0])
    ('INT32', [3], 12)
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping

import grpc
import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import service_pb2, service_pb2_grpc

from ..dtypes import deserialize_bytes, numpy_dtype, serialize_bytes, triton_dtype
from ..errors import Status, TritonDynamoError, status_from_reply

FINAL_RESPONSE = "triton_final_response"
ENABLE_EMPTY_FINAL = "triton_enable_empty_final_response"
# Larger than the frontend's 4 MiB so that its own limit, not ours, is what a big answer runs into.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class RequestFailed(TritonDynamoError):
    """A request the server refused or could not answer; the message is what a failure is grouped by, and the status
    is read from it (:func:`~triton_dynamo.errors.status_from_reply`)."""

    status = Status.UNAVAILABLE

    def __init__(self, message: str, *, status: Status | None = None) -> None:
        if status is None:  # a status of ours quoted in the message, else the class's
            found = status_from_reply(None, message)
            status = found if found is not Status.UNKNOWN else None
        super().__init__(message, status=status)

    def __str__(self) -> str:
        # Locust groups failures by str(); the message already starts with the gRPC status, so no prefix of ours.
        return self.message


def build_request(
    model: str, inputs: Mapping[str, np.ndarray], *, stream: bool = False
) -> service_pb2.ModelInferRequest:
    """A ModelInferRequest with every input as raw bytes; a streamed one asks for Triton's empty final response so
    that the end of the stream is known."""
    request = service_pb2.ModelInferRequest(model_name=model)
    for name, array in inputs.items():
        data_type = triton_dtype(array.dtype)
        # The data travels in raw_input_contents, in the order of the inputs.
        request.inputs.add(name=name, datatype=data_type, shape=list(array.shape))
        raw = serialize_bytes(array) if data_type == "BYTES" else np.ascontiguousarray(array).tobytes()
        request.raw_input_contents.append(raw)
    if stream:
        request.parameters[ENABLE_EMPTY_FINAL].bool_param = True
    return request


def decode_response(response: service_pb2.ModelInferResponse) -> dict[str, np.ndarray]:
    """The outputs of one response as numpy arrays (BYTES as object arrays of bytes)."""
    outputs = {}
    for tensor, raw in zip(response.outputs, response.raw_output_contents, strict=False):
        shape = tuple(tensor.shape)
        count = int(np.prod(shape, dtype=np.int64))
        if tensor.datatype == "BYTES":
            outputs[tensor.name] = deserialize_bytes(raw, count).reshape(shape)
        else:
            outputs[tensor.name] = np.frombuffer(raw, dtype=numpy_dtype(tensor.datatype)).reshape(shape)
    return outputs


def response_bytes(response: service_pb2.ModelInferResponse) -> int:
    return sum(len(raw) for raw in response.raw_output_contents)


def is_final(response: service_pb2.ModelInferResponse) -> bool:
    parameter = response.parameters.get(FINAL_RESPONSE)
    return parameter is not None and parameter.bool_param


def _code_and_details(exc: grpc.RpcError) -> tuple[str, str]:
    code = exc.code() if hasattr(exc, "code") else None
    return (code.name if code else "UNKNOWN"), (exc.details() if hasattr(exc, "details") else str(exc))


def failure_status(exc: grpc.RpcError) -> Status:
    """What a gRPC error means, in the project's statuses."""
    return status_from_reply(*_code_and_details(exc))


def failure_reason(exc: grpc.RpcError) -> str:
    """A short, stable text for a gRPC error: its code and the server's message."""
    code, details = _code_and_details(exc)
    return f"{code}: {details}"


class Connections:
    """``count`` HTTP/2 connections to one server, handed out in turn. Each channel gets its own subchannel pool,
    or gRPC would share one connection between channels with the same target."""

    def __init__(self, url: str, count: int = 1) -> None:
        self.url = url.removeprefix("grpc://")
        options = [
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        self.channels = [grpc.insecure_channel(self.url, options=options) for _ in range(count)]
        self.stubs = [service_pb2_grpc.GRPCInferenceServiceStub(c) for c in self.channels]
        self._turn = itertools.cycle(self.stubs)

    def next_stub(self) -> service_pb2_grpc.GRPCInferenceServiceStub:
        return next(self._turn)

    def close(self) -> None:
        for channel in self.channels:
            channel.close()

    def metadata(self, model: str, timeout_s: float) -> dict:
        """The model's KServe metadata as a dict (``inputs``: name, datatype, shape as integers)."""
        try:
            reply = self.stubs[0].ModelMetadata(service_pb2.ModelMetadataRequest(name=model), timeout=timeout_s)
        except grpc.RpcError as exc:
            raise RequestFailed(
                f"metadata of {model!r} from {self.url}: {failure_reason(exc)}", status=failure_status(exc)
            ) from None
        metadata = json_format.MessageToDict(reply, preserving_proto_field_name=True)
        for spec in (*metadata.get("inputs", []), *metadata.get("outputs", [])):
            spec["shape"] = [int(d) for d in spec.get("shape", [])]
        return metadata

    def config(self, model: str, timeout_s: float) -> dict:
        """The model's Triton config as a dict, as tritonclient's ``get_model_config(as_json=True)`` gives it."""
        try:
            reply = self.stubs[0].ModelConfig(service_pb2.ModelConfigRequest(name=model), timeout=timeout_s)
        except grpc.RpcError as exc:
            raise RequestFailed(
                f"config of {model!r} from {self.url}: {failure_reason(exc)}", status=failure_status(exc)
            ) from None
        return json_format.MessageToDict(reply.config, preserving_proto_field_name=True)


def infer(
    stub: service_pb2_grpc.GRPCInferenceServiceStub, request: service_pb2.ModelInferRequest, timeout_s: float
) -> tuple[list[service_pb2.ModelInferResponse], float]:
    """One unary ModelInfer: the response, and the perf_counter time it arrived; raises :class:`RequestFailed`."""
    try:
        response = stub.ModelInfer(request, timeout=timeout_s)
    except grpc.RpcError as exc:
        raise RequestFailed(failure_reason(exc), status=failure_status(exc)) from None
    return [response], time.perf_counter()


def stream(
    stub: service_pb2_grpc.GRPCInferenceServiceStub, request: service_pb2.ModelInferRequest, timeout_s: float
) -> tuple[list[service_pb2.ModelInferResponse], float]:
    """One request over ModelStreamInfer: every response up to the one flagged final (empty ones left out), and the
    perf_counter time the final one arrived; raises :class:`RequestFailed` on an error response or when the stream
    ends without a final response.

    The stream is then read to its end rather than cancelled: the request side is closed after the one request, so
    the server closes the stream once it is done, and a cancelled stream counts as an error in the frontend's
    metrics even after its final response.
    """
    call = stub.ModelStreamInfer(iter((request,)), timeout=timeout_s)
    responses = []
    final_at: float | None = None
    try:
        for message in call:
            if final_at is not None:
                continue
            if message.error_message:
                raise RequestFailed(f"stream error: {message.error_message}")
            response = message.infer_response
            if response.outputs:
                responses.append(response)
            if is_final(response):
                final_at = time.perf_counter()
    except grpc.RpcError as exc:
        if final_at is None:
            raise RequestFailed(failure_reason(exc), status=failure_status(exc)) from None
    if final_at is None:
        raise RequestFailed("stream ended without a final response")
    return responses, final_at
