# SPDX-License-Identifier: Apache-2.0
"""Inference through the real Triton: every dtype, shapes, BYTES, batching, decoupled streams, traces, errors,
concurrency and cancellation."""

from __future__ import annotations

import asyncio
import time

import ml_dtypes
import numpy as np
import pytest

from tests.conftest import CONFIG_TYPES, DEEP_DIMS, ECHO_ND, SLOW_QUEUED
from triton_dynamo.errors import InvalidInput, Status, TritonDynamoError
from triton_dynamo.triton import InferenceResponse, Model, Server, Tensor, TraceTimestamps, TritonError, infer, marshal

# Triton type name in echo_all's tensor names -> numpy dtype.
ECHO_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "STRING": np.dtype(object),
}
assert tuple(ECHO_DTYPES) == CONFIG_TYPES


def sample(type_name: str, size: int = 0) -> np.ndarray:
    """A 1-D array of ``type_name`` with its extreme and special values, then ``size`` more ordinary ones."""
    dtype = ECHO_DTYPES[type_name]
    rng = np.random.default_rng(CONFIG_TYPES.index(type_name))
    if type_name == "BOOL":
        values = np.array([True, False, True, True], dtype=dtype)
        extra = rng.integers(0, 2, size).astype(bool)
    elif type_name == "STRING":
        values = np.array([b"", b"plain", b"\xff\xfe\x00\x80 not utf-8", "unicode é ✓".encode(), b"x" * 5000], object)
        extra = np.array([f"item {i}".encode() for i in range(size)], dtype=object)
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = np.array([info.min, info.max, 0, 1, info.max - 1, info.min + 1], dtype=dtype)
        if dtype.kind == "i":
            values = np.concatenate([values, np.array([-1], dtype=dtype)])
        extra = rng.integers(info.min, info.max, size, dtype=dtype, endpoint=True)
    else:
        info = ml_dtypes.finfo(dtype) if type_name == "BF16" else np.finfo(dtype)
        specials = [info.min, info.max, info.tiny, info.smallest_subnormal, -0.0, 0.0, np.inf, -np.inf, np.nan, 1.5]
        values = np.array(specials, dtype=np.float64).astype(dtype)
        extra = rng.standard_normal(size).astype(dtype)
    return np.concatenate([values, extra]).astype(dtype)


def assert_same_tensor(actual: np.ndarray, expected: np.ndarray) -> None:
    """Same dtype, shape and contents; floats compared bit for bit (NaN, -0.0 and subnormals included)."""
    assert isinstance(actual, np.ndarray)
    assert actual.shape == expected.shape
    if expected.dtype == np.dtype(object):
        assert actual.dtype == np.dtype(object)
        wanted = [x.encode() if isinstance(x, str) else bytes(x) for x in expected.reshape(-1)]
        assert all(type(x) is bytes for x in actual.reshape(-1))
        assert actual.reshape(-1).tolist() == wanted
    else:
        assert actual.dtype == expected.dtype
        assert actual.tobytes() == np.ascontiguousarray(expected).tobytes()


async def infer_all(model: Model, inputs=None, **fields) -> list[InferenceResponse]:
    return [r async for r in model.async_infer(inputs, **fields)]


async def infer_one(model: Model, inputs=None, **fields) -> InferenceResponse:
    responses = await infer_all(model, inputs, **fields)
    assert len(responses) == 1
    assert responses[0].final
    return responses[0]


async def wait_until_idle(timeout_s: float = 5.0) -> float:
    """Wait until the binding has no request in flight; returns how long that took."""
    start = time.monotonic()
    while infer.pending_count():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"{infer.pending_count()} requests still pending after {timeout_s} s")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


@pytest.fixture(autouse=True)
async def _no_requests_left_behind() -> None:
    yield
    await wait_until_idle()


@pytest.fixture
def echo_all(triton_server: Server) -> Model:
    return triton_server.model("echo_all")


# --- every data type ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", CONFIG_TYPES)
async def test_echo_every_dtype(echo_all: Model, type_name: str) -> None:
    array = sample(type_name, size=100)
    response = await infer_one(echo_all, {f"IN_{type_name}": array})
    assert list(response.outputs) == [f"OUT_{type_name}"]
    assert_same_tensor(response.outputs[f"OUT_{type_name}"], array)
    assert response.model == "echo_all"
    assert response.model_version == 1


@pytest.mark.parametrize("type_name", CONFIG_TYPES)
async def test_echo_empty_tensor(echo_all: Model, type_name: str) -> None:
    array = np.empty(0, dtype=ECHO_DTYPES[type_name])
    response = await infer_one(echo_all, {f"IN_{type_name}": array})
    assert_same_tensor(response.outputs[f"OUT_{type_name}"], array)


async def test_echo_all_dtypes_in_one_request(echo_all: Model) -> None:
    inputs = {f"IN_{t}": sample(t, size=7) for t in CONFIG_TYPES}
    response = await infer_one(echo_all, inputs, request_id="all-14")
    assert response.request_id == "all-14"
    assert set(response.outputs) == {f"OUT_{t}" for t in CONFIG_TYPES}
    for t in CONFIG_TYPES:
        assert_same_tensor(response.outputs[f"OUT_{t}"], inputs[f"IN_{t}"])


async def test_echo_no_inputs(echo_all: Model) -> None:
    response = await infer_one(echo_all, {})
    assert response.outputs == {}


@pytest.mark.parametrize("type_name", CONFIG_TYPES)
@pytest.mark.parametrize("shape", [(2, 3, 4), (1, 1, 5), (3, 0, 2)], ids=str)
async def test_echo_multidimensional(triton_server: Server, type_name: str, shape: tuple) -> None:
    size = int(np.prod(shape))
    array = np.resize(sample(type_name, size), size).reshape(shape) if size else sample(type_name)[:0].reshape(shape)
    response = await infer_one(triton_server.model(ECHO_ND), {f"IN_{type_name}": array})
    assert_same_tensor(response.outputs[f"OUT_{type_name}"], array)


async def test_echo_more_dimensions_than_inline(triton_server: Server) -> None:
    shape = (2, 1, 3, 1, 2, 1, 2, 1, 2)
    assert len(shape) == DEEP_DIMS
    array = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    response = await infer_one(triton_server.model(ECHO_ND), {"IN_DEEP": array})
    assert_same_tensor(response.outputs["OUT_DEEP"], array)


async def test_echo_all_dtypes_multidimensional_at_once(triton_server: Server) -> None:
    inputs = {f"IN_{t}": np.resize(sample(t, 24), 24).reshape(2, 3, 4) for t in CONFIG_TYPES}
    response = await infer_one(triton_server.model(ECHO_ND), inputs)
    for t in CONFIG_TYPES:
        assert_same_tensor(response.outputs[f"OUT_{t}"], inputs[f"IN_{t}"])


async def test_non_contiguous_inputs(triton_server: Server) -> None:
    base = np.arange(60, dtype=np.int64).reshape(3, 4, 5)
    strided = base[:, ::2, ::-1]
    fortran = np.asfortranarray(np.arange(24, dtype=np.float64).reshape(2, 3, 4))
    assert not strided.flags.c_contiguous and not fortran.flags.c_contiguous
    response = await infer_one(triton_server.model(ECHO_ND), {"IN_INT64": strided, "IN_FP64": fortran})
    assert_same_tensor(response.outputs["OUT_INT64"], np.ascontiguousarray(strided))
    assert_same_tensor(response.outputs["OUT_FP64"], np.ascontiguousarray(fortran))


async def test_tensor_inputs_in_wire_layout(echo_all: Model) -> None:
    bf16_bits = np.array([0x3F80, 0x4000, 0xC040, 0x7F80], dtype=np.uint16)  # 1, 2, -3, inf
    strings = b"\x02\x00\x00\x00ab\x00\x00\x00\x00\x01\x00\x00\x00\xff"
    response = await infer_one(
        echo_all, {"IN_BF16": Tensor("BF16", (4,), bf16_bits), "IN_STRING": Tensor("BYTES", (3,), strings)}
    )
    bf16 = response.outputs["OUT_BF16"]
    assert bf16.dtype == np.dtype(ml_dtypes.bfloat16)
    assert bf16.astype(np.float32).tolist() == [1.0, 2.0, -3.0, np.inf]
    assert response.outputs["OUT_STRING"].tolist() == [b"ab", b"", b"\xff"]


@pytest.mark.parametrize("dtype", ["S6", "U6"])
async def test_fixed_width_string_arrays_are_bytes(triton_server: Server, dtype: str) -> None:
    text = np.array(["abc", "x", "ünï"], dtype=dtype) if dtype == "U6" else np.array([b"abc", b"x", b"n"], dtype)
    response = await infer_one(triton_server.model("string_ops"), {"TEXT": text})
    expected = [t.encode() if isinstance(t, str) else bytes(t) for t in text.tolist()]
    assert response.outputs["LENGTH"].tolist() == [len(e) for e in expected]
    assert response.outputs["UPPER"].tolist() == [e.decode().upper().encode() for e in expected]


async def test_string_ops(triton_server: Server) -> None:
    text = np.array([b"hello", "wörld", b"", b"\xff\xfeab"], dtype=object)
    response = await infer_one(triton_server.model("string_ops"), {"TEXT": text})
    upper, length = response.outputs["UPPER"], response.outputs["LENGTH"]
    assert upper.dtype == np.dtype(object) and upper.shape == (4,)
    assert upper.tolist() == [b"HELLO", "WÖRLD".encode(), b"", b"\xff\xfeAB"]
    assert length.dtype == np.dtype(np.int32)
    assert length.tolist() == [5, 6, 0, 4]


# --- request fields -------------------------------------------------------------------------------------------------


async def test_request_id_is_echoed(triton_server: Server) -> None:
    model = triton_server.model("identity")
    response = await infer_one(model, {"INPUT0": np.arange(3, dtype=np.int32)}, request_id="req-ü-42")
    assert response.request_id == "req-ü-42"
    assert (await infer_one(model, {"INPUT0": np.arange(3, dtype=np.int32)})).request_id == ""


async def test_request_id_on_every_decoupled_response(triton_server: Server) -> None:
    responses = await infer_all(triton_server.model("repeat"), {"VALUES": np.arange(4, dtype=np.int32)}, request_id="r")
    assert [r.request_id for r in responses] == ["r"] * 4


async def test_requested_outputs_are_honoured(triton_server: Server) -> None:
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.ones((2, 4), dtype=np.float32)
    model = triton_server.model("add_sub")
    only_one = await infer_one(model, {"INPUT0": a, "INPUT1": b}, output_names=["OUTPUT1"])
    assert list(only_one.outputs) == ["OUTPUT1"]
    np.testing.assert_array_equal(only_one.outputs["OUTPUT1"], a - b)
    both = await infer_one(model, {"INPUT0": a, "INPUT1": b})
    assert set(both.outputs) == {"OUTPUT0", "OUTPUT1"}


@pytest.mark.parametrize(
    "parameters",
    [
        {"text": "value"},
        {"empty": ""},
        {"count": 7},
        {"negative": -(2**63)},
        {"largest": 2**63 - 1},
        {"ratio": 0.25},
        {"nan": float("nan")},
        {"flag": True},
        {"off": False},
        {"text": "ü", "count": 1, "ratio": -1.5, "flag": True},
    ],
    ids=str,
)
async def test_request_parameters_of_every_type(triton_server: Server, parameters: dict) -> None:
    model = triton_server.model("identity")
    data = np.arange(5, dtype=np.int32)
    response = await infer_one(model, {"INPUT0": data}, parameters=parameters)
    np.testing.assert_array_equal(response.outputs["OUTPUT0"], data)


@pytest.mark.parametrize(("value", "fragment"), [([1], "unsupported type list"), (np.int32(3), "unsupported type")])
async def test_request_parameter_of_unsupported_type(triton_server: Server, value, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        await infer_all(
            triton_server.model("identity"), {"INPUT0": np.arange(2, dtype=np.int32)}, parameters={"p": value}
        )
    assert info.value.status is Status.INVALID_ARGUMENT
    assert "'p'" in info.value.message and fragment in info.value.message
    assert infer.pending_count() == 0


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**64 + 5])
async def test_request_parameter_out_of_int64_range(triton_server: Server, value: int) -> None:
    with pytest.raises(InvalidInput) as info:
        await infer_all(
            triton_server.model("identity"), {"INPUT0": np.arange(2, dtype=np.int32)}, parameters={"n": value}
        )
    assert info.value.status is Status.INVALID_ARGUMENT
    assert str(value) in info.value.message
    assert infer.pending_count() == 0


async def test_optional_fields_accepted(triton_server: Server) -> None:
    data = np.arange(3, dtype=np.float32)
    response = await infer_one(
        triton_server.model("identity_fp32"), {"INPUT0": data}, priority=1, timeout_us=10_000_000, request_id="f"
    )
    np.testing.assert_array_equal(response.outputs["OUTPUT0"], data)


# --- numeric correctness --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 5, 64])
async def test_add_sub_with_batch_dimension(triton_server: Server, batch: int) -> None:
    rng = np.random.default_rng(batch)
    a = rng.standard_normal((batch, 4)).astype(np.float32)
    b = rng.standard_normal((batch, 4)).astype(np.float32)
    response = await infer_one(triton_server.model("add_sub"), {"INPUT0": a, "INPUT1": b})
    out0, out1 = response.outputs["OUTPUT0"], response.outputs["OUTPUT1"]
    assert out0.shape == out1.shape == (batch, 4)
    assert out0.dtype == out1.dtype == np.dtype(np.float32)
    np.testing.assert_array_equal(out0, a + b)
    np.testing.assert_array_equal(out1, a - b)


async def test_add_sub_concurrent_requests_are_batched_correctly(triton_server: Server) -> None:
    model = triton_server.model("add_sub")
    pairs = [(np.full((1 + i % 3, 4), i, np.float32), np.full((1 + i % 3, 4), 2 * i, np.float32)) for i in range(40)]
    responses = await asyncio.gather(*(infer_one(model, {"INPUT0": a, "INPUT1": b}) for a, b in pairs))
    for (a, b), response in zip(pairs, responses, strict=True):
        np.testing.assert_array_equal(response.outputs["OUTPUT0"], a + b)
        np.testing.assert_array_equal(response.outputs["OUTPUT1"], a - b)


async def test_classifier_matches_numpy_reference(triton_server: Server, classifier_reference) -> None:
    rng = np.random.default_rng(7)
    features = rng.standard_normal((9, 64)).astype(np.float32)
    expected = classifier_reference.forward(classifier_reference.weights(), features)
    response = await infer_one(triton_server.model("classifier"), {"FEATURES": features})
    probabilities, classes = response.outputs["PROBABILITIES"], response.outputs["CLASS"]
    assert probabilities.shape == (9, 10) and probabilities.dtype == np.dtype(np.float32)
    assert classes.shape == (9, 1) and classes.dtype == np.dtype(np.int64)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(classes[:, 0], expected.argmax(axis=1))


async def test_classifier_concurrent_single_rows(triton_server: Server, classifier_reference) -> None:
    layers = classifier_reference.weights()
    rows = np.random.default_rng(11).standard_normal((32, 1, 64)).astype(np.float32)
    model = triton_server.model("classifier")
    responses = await asyncio.gather(*(infer_one(model, {"FEATURES": row}) for row in rows))
    for row, response in zip(rows, responses, strict=True):
        np.testing.assert_allclose(response.outputs["PROBABILITIES"], classifier_reference.forward(layers, row), 1e-4)


# --- decoupled ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 5, 30])
async def test_decoupled_stream(triton_server: Server, count: int) -> None:
    values = np.arange(100, 100 + count, dtype=np.int32)
    responses = await infer_all(triton_server.model("repeat"), {"VALUES": values})
    assert len(responses) == count
    assert [int(r.outputs["INDEX"][0]) for r in responses] == list(range(count))
    assert [int(r.outputs["VALUE"][0]) for r in responses] == values.tolist()
    for r in responses:
        assert r.outputs["VALUE"].dtype == np.dtype(np.int32) and r.outputs["VALUE"].shape == (1,)
    # repeat sends its final flag on its own, with no response: the caller sees every data response with
    # final=False, and the iteration ends once the flag arrives.
    assert [r.final for r in responses] == [False] * count


async def test_decoupled_stream_with_no_responses(triton_server: Server) -> None:
    responses = await infer_all(triton_server.model("repeat"), {"VALUES": np.zeros(0, dtype=np.int32)})
    assert responses == []


async def test_non_decoupled_models_send_one_final_response(triton_server: Server) -> None:
    responses = await infer_all(triton_server.model("identity"), {"INPUT0": np.arange(2, dtype=np.int32)})
    assert [r.final for r in responses] == [True]


async def test_decoupled_responses_arrive_as_they_are_sent(triton_server: Server) -> None:
    inputs = {"VALUES": np.arange(4, dtype=np.int32), "DELAY_MS": np.array([60], dtype=np.int32)}
    arrivals = []
    start = time.monotonic()
    async for _ in triton_server.model("repeat").async_infer(inputs):
        arrivals.append(time.monotonic() - start)
    assert len(arrivals) == 4
    assert arrivals[0] < arrivals[-1] - 0.1  # streamed, not delivered all at the end


# --- traces ---------------------------------------------------------------------------------------------------------

TRACE_ORDER = (
    "request_start_ns",
    "queue_start_ns",
    "compute_start_ns",
    "compute_input_end_ns",
    "compute_output_start_ns",
    "compute_end_ns",
    "request_end_ns",
)


def assert_trace_complete(timestamps: TraceTimestamps, before_ns: int, after_ns: int) -> None:
    assert isinstance(timestamps, TraceTimestamps)
    values = [getattr(timestamps, field) for field in TRACE_ORDER]
    assert all(isinstance(v, int) and v > 0 for v in values), timestamps
    assert values == sorted(values), timestamps
    assert before_ns <= values[0] and values[-1] <= after_ns  # the monotonic clock
    assert timestamps.queue_ns >= 0
    assert timestamps.compute_ns >= 0
    assert timestamps.compute_input_ns >= 0 and timestamps.compute_infer_ns >= 0 and timestamps.compute_output_ns >= 0
    assert timestamps.total_ns >= timestamps.queue_ns + timestamps.compute_ns


async def test_trace_timestamps(triton_server: Server) -> None:
    model = triton_server.model("identity_fp32")
    request = model.create_request(inputs={"INPUT0": np.arange(5, dtype=np.float32)}, trace=True)
    before = time.monotonic_ns()
    responses = [r async for r in model.async_infer(request)]
    after = time.monotonic_ns()
    assert len(responses) == 1
    assert_trace_complete(request.timestamps, before, after)


async def test_trace_timestamps_of_a_decoupled_request(triton_server: Server) -> None:
    model = triton_server.model("repeat")
    request = model.create_request(inputs={"VALUES": np.arange(3, dtype=np.int32)}, trace=True)
    before = time.monotonic_ns()
    responses = [r async for r in model.async_infer(request)]
    after = time.monotonic_ns()
    assert len(responses) == 3
    assert_trace_complete(request.timestamps, before, after)


async def test_every_traced_request_reports_its_trace_once(triton_server: Server) -> None:
    # Triton releases a trace on its own threads or inside the binding's delete calls on the loop (then with no
    # event): either way each request's callback runs once, with every timestamp, and nothing stays pending.
    model = triton_server.model("identity_fp32")
    seen: dict[int, list[TraceTimestamps]] = {}

    async def one(index: int) -> None:
        request = model.create_request(inputs={"INPUT0": np.full(4, index, np.float32)}, trace=True)
        request.on_trace = lambda timestamps: seen.setdefault(index, []).append(timestamps)
        assert len([r async for r in model.async_infer(request)]) == 1

    before = time.monotonic_ns()
    await asyncio.gather(*(one(i) for i in range(200)))
    await wait_until_idle()
    after = time.monotonic_ns()
    assert sorted(seen) == list(range(200))
    for reports in seen.values():
        assert len(reports) == 1
        assert_trace_complete(reports[0], before, after)


async def test_no_trace_unless_asked(triton_server: Server) -> None:
    model = triton_server.model("identity_fp32")
    request = model.create_request(inputs={"INPUT0": np.arange(5, dtype=np.float32)})
    assert len([r async for r in model.async_infer(request)]) == 1
    assert request.timestamps is None


async def test_trace_keyword_form(triton_server: Server) -> None:
    response = await infer_one(
        triton_server.model("identity_fp32"), {"INPUT0": np.ones(2, np.float32)}, trace=True, request_id="t"
    )
    assert response.request_id == "t"


# --- errors ---------------------------------------------------------------------------------------------------------


async def assert_fails(model: Model, inputs: dict, code: int, *fragments: str, **fields) -> TritonError:
    with pytest.raises(TritonError) as info:
        await infer_all(model, inputs, **fields)
    err = info.value
    assert err.code == code, (err.code_name, err.message)
    for fragment in fragments:
        assert fragment in err.message, err.message
    # the binding is left clean, and the next good request works
    await wait_until_idle()
    response = await infer_one(model.server.model("identity"), {"INPUT0": np.arange(3, dtype=np.int32)})
    np.testing.assert_array_equal(response.outputs["OUTPUT0"], np.arange(3, dtype=np.int32))
    return err


async def test_unknown_model(triton_server: Server) -> None:
    err = await assert_fails(
        triton_server.model("no_such_model"), {"INPUT0": np.arange(3, dtype=np.int32)}, TritonError.NOT_FOUND
    )
    assert "'no_such_model'" in err.message
    assert err.status is Status.NOT_FOUND


async def test_unknown_model_version(triton_server: Server) -> None:
    await assert_fails(
        triton_server.model("identity", 9), {"INPUT0": np.arange(3, dtype=np.int32)}, TritonError.NOT_FOUND, "identity"
    )


async def test_wrong_dtype(triton_server: Server) -> None:
    err = await assert_fails(
        triton_server.model("identity"),
        {"INPUT0": np.arange(3, dtype=np.int64)},
        TritonError.INVALID_ARG,
        "'INPUT0'",
        "INT64",
        "INT32",
        "'identity'",
        request_id="dtype-1",
    )
    assert "dtype-1" in err.message
    assert err.status is Status.INVALID_ARGUMENT


async def test_wrong_shape(triton_server: Server) -> None:
    shape_1x3 = np.ones((1, 3), np.float32)
    err = await assert_fails(
        triton_server.model("add_sub"), {"INPUT0": shape_1x3, "INPUT1": shape_1x3}, TritonError.INVALID_ARG, "'add_sub'"
    )
    assert "'INPUT0'" in err.message or "'INPUT1'" in err.message
    assert "[1,3]" in err.message


async def test_missing_batch_dimension(triton_server: Server) -> None:
    four = np.ones(4, np.float32)
    await assert_fails(
        triton_server.model("add_sub"), {"INPUT0": four, "INPUT1": four}, TritonError.INVALID_ARG, "'add_sub'"
    )


async def test_batch_larger_than_max_batch_size(triton_server: Server) -> None:
    big = np.ones((65, 4), np.float32)
    await assert_fails(triton_server.model("add_sub"), {"INPUT0": big, "INPUT1": big}, TritonError.INVALID_ARG, "64")


async def test_missing_input(triton_server: Server) -> None:
    await assert_fails(
        triton_server.model("add_sub"),
        {"INPUT0": np.ones((1, 4), np.float32)},
        TritonError.INVALID_ARG,
        "'add_sub'",
        "INPUT1",
    )


async def test_unknown_input_name(triton_server: Server) -> None:
    await assert_fails(
        triton_server.model("identity"),
        {"INPUT0": np.arange(3, dtype=np.int32), "BOGUS": np.arange(3, dtype=np.int32)},
        TritonError.INVALID_ARG,
        "BOGUS",
        "'identity'",
    )


async def test_unknown_output_name(triton_server: Server) -> None:
    ones = np.ones((1, 4), np.float32)
    await assert_fails(
        triton_server.model("add_sub"),
        {"INPUT0": ones, "INPUT1": ones},
        TritonError.INVALID_ARG,
        "'NOPE'",
        "'add_sub'",
        output_names=["NOPE"],
    )


async def test_input_that_is_not_an_array(triton_server: Server) -> None:
    # a fault in the caller's request, found before Triton sees it: InvalidInput, as for a dtype Triton lacks
    with pytest.raises(InvalidInput) as info:
        await infer_all(triton_server.model("identity"), {"INPUT0": [1, 2, 3]})
    assert "'INPUT0'" in info.value.message and "list" in info.value.message
    assert infer.pending_count() == 0


async def test_input_of_a_dtype_triton_lacks(triton_server: Server) -> None:
    model = triton_server.model("identity")
    for array, fragment in [(np.arange(3, dtype=">i4"), "big-endian"), (np.ones(3, np.complex64), "complex64")]:
        with pytest.raises(TritonDynamoError) as info:
            await infer_all(model, {"INPUT0": array})
        assert info.value.status is Status.INVALID_ARGUMENT
        assert fragment in info.value.message
    assert infer.pending_count() == 0


async def test_errors_do_not_disturb_concurrent_good_requests(triton_server: Server) -> None:
    model = triton_server.model("identity")

    async def good(i: int) -> np.ndarray:
        return (await infer_one(model, {"INPUT0": np.full(3, i, np.int32)})).outputs["OUTPUT0"]

    async def bad(i: int) -> TritonError:
        with pytest.raises(TritonError) as info:
            await infer_all(model, {"INPUT0": np.full(3, i, np.int64)})
        return info.value

    results = await asyncio.gather(*(good(i) if i % 2 else bad(i) for i in range(60)))
    for i, result in enumerate(results):
        if i % 2:
            np.testing.assert_array_equal(result, np.full(3, i, np.int32))
        else:
            assert isinstance(result, TritonError) and result.code == TritonError.INVALID_ARG


# --- concurrency ----------------------------------------------------------------------------------------------------


async def test_1000_concurrent_requests_each_get_their_own_answer(triton_server: Server) -> None:
    model = triton_server.model("identity_fp32")
    inputs = [np.arange(i, i + 1 + i % 17, dtype=np.float32) for i in range(1000)]
    responses = await asyncio.gather(
        *(infer_one(model, {"INPUT0": data}, request_id=str(i)) for i, data in enumerate(inputs))
    )
    for i, (data, response) in enumerate(zip(inputs, responses, strict=True)):
        assert response.request_id == str(i)
        assert_same_tensor(response.outputs["OUTPUT0"], data)
    assert await wait_until_idle() < 5


async def test_concurrent_streams_stay_separate(triton_server: Server) -> None:
    model = triton_server.model("repeat")
    streams = [np.arange(k * 100, k * 100 + 5 + k % 4, dtype=np.int32) for k in range(20)]
    results = await asyncio.gather(*(infer_all(model, {"VALUES": values}) for values in streams))
    for values, responses in zip(streams, results, strict=True):
        assert [int(r.outputs["VALUE"][0]) for r in responses] == values.tolist()
        assert [int(r.outputs["INDEX"][0]) for r in responses] == list(range(len(values)))


# Small outputs are copied out of Triton's buffer, larger ones wrap it (marshal.COPY_MAX_BYTES): both kinds.
@pytest.mark.parametrize("size", [1000, marshal.COPY_MAX_BYTES // 4, marshal.COPY_MAX_BYTES // 4 + 1, 150528])
async def test_outputs_outlive_their_response(triton_server: Server, size: int) -> None:
    model = triton_server.model("identity_fp32")
    kept = [(await infer_one(model, {"INPUT0": np.full(size, i, np.float32)})).outputs["OUTPUT0"] for i in range(20)]
    for i, array in enumerate(kept):
        assert array.shape == (size,)
        assert np.all(array == i)
        array[0] = -1.0  # the caller owns it: writable either way
        assert array[0] == -1.0


# --- cancellation ---------------------------------------------------------------------------------------------------

SLOW_STREAM = {"VALUES": np.arange(50, dtype=np.int32), "DELAY_MS": np.array([20], dtype=np.int32)}


async def test_breaking_out_of_a_stream_cancels_it(triton_server: Server) -> None:
    model = triton_server.model("repeat")
    seen = []
    async for response in model.async_infer(dict(SLOW_STREAM)):
        seen.append(int(response.outputs["INDEX"][0]))
        if len(seen) == 2:
            break
    assert seen == [0, 1]
    # the whole stream would take about another second; a cancelled one ends at the model's next check
    assert await wait_until_idle(timeout_s=5) < 0.8
    response = await infer_one(triton_server.model("identity"), {"INPUT0": np.arange(3, dtype=np.int32)})
    np.testing.assert_array_equal(response.outputs["OUTPUT0"], np.arange(3, dtype=np.int32))
    assert len(await infer_all(model, {"VALUES": np.arange(3, dtype=np.int32)})) == 3


async def test_cancelling_the_task_cancels_the_stream(triton_server: Server) -> None:
    model = triton_server.model("repeat")
    seen: list[int] = []
    two_seen = asyncio.Event()

    async def consume() -> None:
        async for response in model.async_infer(dict(SLOW_STREAM)):
            seen.append(int(response.outputs["INDEX"][0]))
            if len(seen) == 2:
                two_seen.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(two_seen.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 2 <= len(seen) < 50
    assert seen == list(range(len(seen)))
    assert await wait_until_idle(timeout_s=5) < 0.8
    assert len(await infer_all(model, {"VALUES": np.arange(3, dtype=np.int32)})) == 3


async def test_timeout_around_a_stream_cancels_it(triton_server: Server) -> None:
    model = triton_server.model("repeat")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(infer_all(model, dict(SLOW_STREAM)), 0.1)
    assert await wait_until_idle(timeout_s=5) < 0.8


async def test_cancelling_many_streams_at_once(triton_server: Server) -> None:
    model = triton_server.model("repeat")
    tasks = [asyncio.create_task(infer_all(model, dict(SLOW_STREAM))) for _ in range(10)]
    await asyncio.sleep(0.1)
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    await wait_until_idle(timeout_s=5)
    assert len(await infer_all(model, {"VALUES": np.arange(2, dtype=np.int32)})) == 2


async def test_traced_requests_refused_by_a_full_queue_fail_cleanly(triton_server: Server) -> None:
    """More requests than 'slow_queued' queues and executes: Triton refuses the rest in ServerInferAsync itself,
    after attaching their traces; the binding must neither free those traces twice nor leave anything pending."""
    model = triton_server.model(SLOW_QUEUED)
    config = model.config()
    # At least a full queue is served; how many instances take before the rest arrive depends on thread timing.
    queued = int(config["dynamic_batching"]["default_queue_policy"]["max_queue_size"])

    async def one() -> str:
        try:
            async for _ in model.async_infer({"INPUT0": np.ones(4, np.float32)}, trace=True):
                pass
            return "served"
        except TritonError as exc:
            assert exc.code == TritonError.UNAVAILABLE and "Exceeds maximum queue size" in exc.message
            return "refused"

    outcomes = await asyncio.gather(*(one() for _ in range(100)))
    assert outcomes.count("served") >= queued and outcomes.count("refused") > 0
    deadline = time.monotonic() + 5
    while infer.pending_count() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert infer.pending_count() == 0
