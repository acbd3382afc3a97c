# SPDX-License-Identifier: Apache-2.0
"""Bad input, through the real frontend, with tritonclient and with raw KServe messages.

Every case must end in an error that names the problem; the frontend and the workers stay up, and the next good
request succeeds. Cases are listed in tables; each records what the client saw (for docs/reliability.md).
"""

from __future__ import annotations

import struct
import threading

import grpc
import ml_dtypes
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from triton_dynamo.client.kserve import to_infer_inputs

from ..reliability_figures import record_figure
from .processes import StackProcess


def call(stack: StackProcess, model: str, inputs: dict, **kwargs):
    client = grpcclient.InferenceServerClient(stack.grpc_url)
    try:
        return client.infer(model, to_infer_inputs(inputs), client_timeout=30, **kwargs)
    finally:
        client.close()


def still_serving(stack: StackProcess) -> None:
    result = call(stack, "identity", {"INPUT0": np.array([7, 8], np.int32)})
    assert result.as_numpy("OUTPUT0").tolist() == [7, 8]
    assert stack.proc.poll() is None  # up, and so every process it supervises, still running


f32 = np.float32
# (case, model, inputs, extra kwargs, what the client's message must contain)
TRITONCLIENT_CASES = [
    ("wrong dtype", "identity", {"INPUT0": np.ones(3, f32)}, {}, "is INT32; the request sent FP32"),
    ("wrong dtype (bytes)", "identity", {"INPUT0": np.array([b"x"], dtype=object)}, {}, "sent BYTES"),
    ("wrong dtype (bf16)", "identity_fp32", {"INPUT0": np.ones(2, ml_dtypes.bfloat16)}, {}, "sent BF16"),
    (
        "shape against the config",
        "add_sub",
        {"INPUT0": np.ones((1, 3), f32), "INPUT1": np.ones((1, 3), f32)},
        {},
        "has shape [-1, 4]",
    ),
    ("rank against the config", "identity", {"INPUT0": np.ones((2, 2), np.int32)}, {}, "has shape [-1]"),
    (
        "batch over max_batch_size",
        "add_sub",
        {"INPUT0": np.ones((65, 4), f32), "INPUT1": np.ones((65, 4), f32)},
        {},
        "exceeds the max_batch_size 64",
    ),
    (
        "batch sizes differ",
        "add_sub",
        {"INPUT0": np.ones((2, 4), f32), "INPUT1": np.ones((3, 4), f32)},
        {},
        "must share their batch size",
    ),
    ("missing input", "add_sub", {"INPUT0": np.ones((1, 4), f32)}, {}, "needs input INPUT1"),
    (
        "unknown input",
        "identity",
        {"INPUT0": np.ones(1, np.int32), "EXTRA": np.ones(1, np.int32)},
        {},
        "has no input 'EXTRA'",
    ),
    ("no inputs at all", "identity", {}, {}, "needs input INPUT0"),
    (
        "unknown requested output",
        "identity",
        {"INPUT0": np.ones(1, np.int32)},
        {"outputs": [grpcclient.InferRequestedOutput("NOPE")]},
        "has no output 'NOPE'",
    ),
    ("unknown model", "no_such_model", {"INPUT0": np.ones(1, np.int32)}, {}, "not found"),
    (
        "request id of 10 000 characters",
        "identity",
        {"INPUT0": np.array([1], np.int32)},
        {"request_id": "r" * 10_000},
        None,
    ),
    ("empty tensor", "identity", {"INPUT0": np.zeros(0, np.int32)}, {}, None),
    ("NaN and Inf", "identity_fp32", {"INPUT0": np.array([np.nan, np.inf, -np.inf], f32)}, {}, None),
    (
        "tensor over the 4 MiB message limit",
        "identity_fp32",
        {"INPUT0": np.ones(1_200_000, f32)},
        {},
        "message length too large",
    ),
    ("a float request parameter", "identity", {"INPUT0": np.array([1], np.int32)}, {"parameters": {"p": 1.5}}, None),
]


@pytest.mark.parametrize(
    ("case", "model", "inputs", "kwargs", "message"), TRITONCLIENT_CASES, ids=[c[0] for c in TRITONCLIENT_CASES]
)
def test_tritonclient_case(file_stack: StackProcess, case, model, inputs, kwargs, message) -> None:
    if message is None:  # a valid if unusual request: it must simply work
        result = call(file_stack, model, inputs, **kwargs)
        out = result.as_numpy(next(iter(o.name for o in result.get_response().outputs)))
        np.testing.assert_array_equal(out, next(iter(inputs.values())))
        seen = "served correctly"
    else:
        with pytest.raises(InferenceServerException) as caught:
            call(file_stack, model, inputs, **kwargs)
        seen = f"{caught.value.status()}: {caught.value.message()}"
        assert message in caught.value.message(), seen
    record_figure("bad_input", case, {"client sees": seen[:160]})
    still_serving(file_stack)


def raw_request(
    model: str, inputs: list[tuple[str, str, list[int]]], raw: list[bytes] | None = None, contents: dict | None = None
) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=model)
    for name, datatype, shape in inputs:
        tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
        if contents and name in contents:
            getattr(tensor.contents, contents[name][0]).extend(contents[name][1])
    if raw is not None:
        request.raw_input_contents.extend(raw)
    return request


def i32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}i", *values)


RAW_CASES = [
    ("raw contents shorter than the shape", raw_request("identity", [("INPUT0", "INT32", [4])], [i32(1, 2, 3)])),
    ("raw contents longer than the shape", raw_request("identity", [("INPUT0", "INT32", [2])], [i32(1, 2, 3)])),
    (
        "raw contents not a whole number of elements",
        raw_request("identity", [("INPUT0", "INT32", [1])], [b"\x01\x02\x03"]),
    ),
    (
        "raw contents for fewer inputs than declared",
        raw_request("add_sub", [("INPUT0", "FP32", [1, 4]), ("INPUT1", "FP32", [1, 4])], [b"\0" * 16]),
    ),
    (
        "BYTES with a broken length prefix",
        raw_request("string_ops", [("TEXT", "BYTES", [1])], [struct.pack("<I", 100) + b"abc"]),
    ),
    (
        "BYTES with bytes after the last element",
        raw_request("string_ops", [("TEXT", "BYTES", [1])], [struct.pack("<I", 1) + b"ab"]),
    ),
    (
        "typed contents that do not fill the shape",
        raw_request("identity", [("INPUT0", "INT32", [3])], contents={"INPUT0": ("int_contents", [1, 2])}),
    ),
    (
        "typed contents of the wrong kind",
        raw_request("identity", [("INPUT0", "INT32", [2])], contents={"INPUT0": ("fp32_contents", [1.0, 2.0])}),
    ),
    ("an input with no data at all", raw_request("identity", [("INPUT0", "INT32", [2])])),
    ("a datatype that does not exist", raw_request("identity", [("INPUT0", "INT33", [1])], [i32(1)])),
    ("a negative dimension", raw_request("identity", [("INPUT0", "INT32", [-1])], [i32(1)])),
    ("an empty model name", raw_request("", [("INPUT0", "INT32", [1])], [i32(1)])),
]


@pytest.mark.parametrize(("case", "request_message"), RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_raw_message_case(file_stack: StackProcess, case: str, request_message) -> None:
    with grpc.insecure_channel(file_stack.grpc_url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request_message, timeout=30)
    code, details = caught.value.code(), caught.value.details() or ""
    seen = f"{code.name}: {details}"
    record_figure("bad_input", case, {"client sees": seen[:160]})
    # An error the client can act on; CANCELLED with no text is what a crash of the frontend's handler looks like.
    assert code is not grpc.StatusCode.OK
    still_serving(file_stack)


def test_burst_of_cancelled_streams(file_stack: StackProcess) -> None:
    """Fifty streams of a slow decoupled model, each cancelled by its client after the first response."""
    cancelled = 0
    for _ in range(50):
        client = grpcclient.InferenceServerClient(file_stack.grpc_url)
        first = threading.Event()
        client.start_stream(callback=lambda result, error, first=first: first.set())
        client.async_stream_infer(
            "repeat", to_infer_inputs({"VALUES": np.arange(20, dtype=np.int32), "DELAY_MS": np.array([20], np.int32)})
        )
        assert first.wait(10), "no first response"
        client.stop_stream(cancel_requests=True)
        client.close()
        cancelled += 1
    record_figure("bad_input", "burst of cancelled streams", {"client sees": f"{cancelled} streams cancelled"})
    still_serving(file_stack)
