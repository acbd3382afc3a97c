# SPDX-License-Identifier: Apache-2.0
"""Every sample model through the real frontend, workers and Triton, in file and etcd + NATS modes."""

from __future__ import annotations

import re
import urllib.request

import ml_dtypes
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import InferenceServerException

from triton_dynamo.client.kserve import KServeClient, to_infer_inputs

from .processes import MODEL_REPO, SAMPLE_MODELS, StackProcess


@pytest.fixture(scope="module")
def clients(stack: StackProcess):
    with KServeClient(stack.grpc_url) as client:
        yield client


def infer(url: str, model: str, inputs: dict, **kwargs):
    client = grpcclient.InferenceServerClient(url)
    try:
        return client.infer(model, to_infer_inputs(inputs), **kwargs)
    finally:
        client.close()


def test_ready_line_names_every_sample_model(stack: StackProcess) -> None:
    assert stack.models == SAMPLE_MODELS
    assert any(f"try: triton-dynamo infer identity --url {stack.grpc_url}" in line for line in stack.lines)


@pytest.mark.parametrize("model", SAMPLE_MODELS)
def test_metadata_and_config_describe_the_real_model(stack: StackProcess, model: str) -> None:
    expected = text_format.Parse((MODEL_REPO / model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    client = grpcclient.InferenceServerClient(stack.grpc_url)
    try:
        assert client.is_model_ready(model)
        config = client.get_model_config(model).config
        metadata = client.get_model_metadata(model)
    finally:
        client.close()
    assert config.name == model
    assert config.max_batch_size == expected.max_batch_size
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        (i.name, i.data_type, list(i.dims)) for i in expected.input
    ]
    assert [o.name for o in config.output] == [o.name for o in expected.output]
    batch = [-1] if expected.max_batch_size > 0 else []
    assert [(i.name, list(i.shape)) for i in metadata.inputs] == [
        (i.name, batch + list(i.dims)) for i in expected.input
    ]


def test_identity_echoes_its_input_and_request_id(stack: StackProcess) -> None:
    data = np.arange(-5, 5, dtype=np.int32)
    result = infer(stack.grpc_url, "identity", {"INPUT0": data}, request_id="req-42")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data)
    assert result.get_response().id == "req-42"


def test_identity_fp32_large_tensor(stack: StackProcess) -> None:
    data = np.random.default_rng(1).standard_normal(150528).astype(np.float32)
    result = infer(stack.grpc_url, "identity_fp32", {"INPUT0": data})
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data)


def test_add_sub_batched_and_requested_outputs(stack: StackProcess) -> None:
    a = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    b = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    result = infer(stack.grpc_url, "add_sub", {"INPUT0": a, "INPUT1": b})
    np.testing.assert_allclose(result.as_numpy("OUTPUT0"), a + b, rtol=1e-6)
    np.testing.assert_allclose(result.as_numpy("OUTPUT1"), a - b, rtol=1e-6)
    only = infer(stack.grpc_url, "add_sub", {"INPUT0": a, "INPUT1": b},
                 outputs=[grpcclient.InferRequestedOutput("OUTPUT1")])  # fmt: skip
    assert [o.name for o in only.get_response().outputs] == ["OUTPUT1"]
    np.testing.assert_allclose(only.as_numpy("OUTPUT1"), a - b, rtol=1e-6)


def test_string_ops_bytes(stack: StackProcess) -> None:
    text = np.array([b"hello", "w\u00f6rld".encode(), b"", b"\xff\xfe"], dtype=object)
    result = infer(stack.grpc_url, "string_ops", {"TEXT": text})
    assert result.as_numpy("UPPER").tolist() == [b"HELLO", "W\u00d6RLD".encode(), b"", b"\xff\xfe".upper()]
    assert result.as_numpy("LENGTH").tolist() == [5, 6, 0, 2]


def test_classifier_matches_reference(stack: StackProcess, classifier_reference) -> None:
    features = np.random.default_rng(4).standard_normal((5, 64)).astype(np.float32)
    result = infer(stack.grpc_url, "classifier", {"FEATURES": features})
    expected = classifier_reference.forward(classifier_reference.weights(), features)
    np.testing.assert_allclose(result.as_numpy("PROBABILITIES"), expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(result.as_numpy("CLASS").reshape(-1), expected.argmax(axis=1))


def test_repeat_streams_every_response(clients: KServeClient) -> None:
    values = np.array([7, 8, 9, 10], dtype=np.int32)
    responses = clients.stream("repeat", {"VALUES": values}, request_id="stream-1")
    assert [int(r["VALUE"][0]) for r in responses] == values.tolist()
    assert [int(r["INDEX"][0]) for r in responses] == [0, 1, 2, 3]
    assert clients.stream("repeat", {"VALUES": np.array([], dtype=np.int32)}) == []


def test_a_model_error_reaches_the_client_with_its_status(stack: StackProcess) -> None:
    """Triton's own errors keep our status prefix, as the worker's do: a negative DELAY_MS makes 'slow' fail in the
    model's Python code, which Triton reports as an error response (the pull path raises the same error type:
    tests/worker/test_handler.py)."""
    negative = np.array([-1], np.int32)
    with pytest.raises(InferenceServerException) as unary:
        infer(stack.grpc_url, "slow", {"INPUT0": np.ones(2, np.float32), "DELAY_MS": negative}, request_id="neg-1")
    message = unary.value.message()
    assert "[INTERNAL]" in message and "sleep length must be non-negative" in message, message
    assert '"code"' not in message, message
    assert infer(stack.grpc_url, "slow", {"INPUT0": np.ones(2, np.float32)}).as_numpy("OUTPUT0").tolist() == [1, 1]


def test_unary_model_over_a_stream(clients: KServeClient) -> None:
    responses = clients.stream("identity", {"INPUT0": np.array([1, 2], dtype=np.int32)})
    assert len(responses) == 1
    np.testing.assert_array_equal(responses[0]["OUTPUT0"], [1, 2])


ECHO_VALUES = {
    "BOOL": np.array([True, False, True]),
    "UINT8": np.array([0, 1, 255], dtype=np.uint8),
    "UINT16": np.array([0, 65535], dtype=np.uint16),
    "UINT32": np.array([0, 2**32 - 1], dtype=np.uint32),
    "UINT64": np.array([0, 2**64 - 1], dtype=np.uint64),
    "INT8": np.array([-128, 0, 127], dtype=np.int8),
    "INT16": np.array([-32768, 32767], dtype=np.int16),
    "INT32": np.array([-(2**31), 2**31 - 1], dtype=np.int32),
    "INT64": np.array([-(2**63), 2**63 - 1], dtype=np.int64),
    "FP16": np.array([0.5, -2.0, 65504.0, np.inf], dtype=np.float16),
    "FP32": np.array([1.5, -0.0, 3.4e38, np.nan], dtype=np.float32),
    "FP64": np.array([1e-300, -1e300, np.inf, np.nan], dtype=np.float64),
    "BF16": np.array([1.5, -2.0, 3.0e38], dtype=ml_dtypes.bfloat16),
    "STRING": np.array([b"a", b"", b"\x00\xff", "\u00e9".encode()], dtype=object),
}


@pytest.mark.parametrize("type_name", list(ECHO_VALUES))
def test_every_dtype_round_trips(stack: StackProcess, type_name: str) -> None:
    data = ECHO_VALUES[type_name]
    result = infer(stack.grpc_url, "echo_all", {f"IN_{type_name}": data})
    out = result.as_numpy(f"OUT_{type_name}")
    if type_name == "STRING":
        assert out.tolist() == data.tolist()
    else:
        assert out.dtype == data.dtype
        np.testing.assert_array_equal(out, data)


def test_all_dtypes_in_one_request(stack: StackProcess) -> None:
    inputs = {f"IN_{t}": v for t, v in ECHO_VALUES.items()}
    result = infer(stack.grpc_url, "echo_all", inputs)
    for type_name, data in ECHO_VALUES.items():
        out = result.as_numpy(f"OUT_{type_name}")
        if type_name == "STRING":
            assert out.tolist() == data.tolist()
        else:
            np.testing.assert_array_equal(out, data)


BAD_REQUESTS = [
    ("identity", {"INPUT0": np.ones(3, np.float32)}, "is INT32; the request sent FP32"),
    ("identity", {"NOPE": np.ones(3, np.int32)}, "has no input 'NOPE'"),
    ("add_sub", {"INPUT0": np.ones((1, 3), np.float32), "INPUT1": np.ones((1, 3), np.float32)}, "has shape [-1, 4]"),
    ("add_sub", {"INPUT0": np.ones((1, 4), np.float32)}, "needs input INPUT1"),
    ("add_sub", {"INPUT0": np.ones((65, 4), np.float32), "INPUT1": np.ones((65, 4), np.float32)}, "max_batch_size 64"),
    ("add_sub", {"INPUT0": np.ones(4, np.float32), "INPUT1": np.ones(4, np.float32)}, "has shape [-1, 4]"),
]


@pytest.mark.parametrize(("model", "inputs", "message"), BAD_REQUESTS)
def test_bad_requests_get_a_message_naming_the_problem(stack: StackProcess, model, inputs, message) -> None:
    with pytest.raises(InferenceServerException) as caught:
        infer(stack.grpc_url, model, inputs)
    assert "[INVALID_ARGUMENT]" in caught.value.message()
    assert message in caught.value.message()
    good = infer(stack.grpc_url, "identity", {"INPUT0": np.array([1], np.int32)})
    assert good.as_numpy("OUTPUT0").tolist() == [1]


def test_unknown_requested_output_is_named(stack: StackProcess) -> None:
    with pytest.raises(InferenceServerException, match="has no output 'NOPE'"):
        infer(stack.grpc_url, "identity", {"INPUT0": np.array([1], np.int32)},
              outputs=[grpcclient.InferRequestedOutput("NOPE")])  # fmt: skip


def test_unknown_model_is_not_found(stack: StackProcess) -> None:
    with pytest.raises(InferenceServerException) as caught:
        infer(stack.grpc_url, "no_such_model", {"INPUT0": np.array([1], np.int32)})
    assert caught.value.status() == "StatusCode.NOT_FOUND"


def _served_count(port: int, model: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    pattern = rf'^dynamo_component_requests_total\{{[^}}]*model="{model}"[^}}]*\}} (\S+)$'
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.M))


def test_requests_spread_over_all_workers(stack: StackProcess) -> None:
    before = [_served_count(port, "identity") for port in stack.worker_ports]
    for i in range(20):
        infer(stack.grpc_url, "identity", {"INPUT0": np.array([i], np.int32)})
    after = [_served_count(port, "identity") for port in stack.worker_ports]
    served = [a - b for a, b in zip(after, before, strict=True)]
    assert sum(served) == 20
    assert all(count > 0 for count in served), served
