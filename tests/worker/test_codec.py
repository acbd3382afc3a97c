# SPDX-License-Identifier: Apache-2.0
"""Dynamo tensor dicts <-> numpy: the mapping table, round trips, and property tests of request decoding."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triton_dynamo.errors import InvalidInput
from triton_dynamo.worker.codec import (
    DYNAMO_TO_TRITON,
    TRITON_TO_DYNAMO,
    decode_parameters,
    decode_tensor,
    encode_parameters,
    encode_tensor,
)

TABLE = [
    ("Bool", "BOOL", [True, False], np.bool_),
    ("Uint8", "UINT8", [0, 255], np.uint8),
    ("Uint16", "UINT16", [0, 65535], np.uint16),
    ("Uint32", "UINT32", [0, 2**32 - 1], np.uint32),
    ("Uint64", "UINT64", [0, 2**64 - 1], np.uint64),
    ("Int8", "INT8", [-128, 127], np.int8),
    ("Int16", "INT16", [-32768, 32767], np.int16),
    ("Int32", "INT32", [-(2**31), 2**31 - 1], np.int32),
    ("Int64", "INT64", [-(2**63), 2**63 - 1], np.int64),
    ("Float16", "FP16", [0x3E00, 0xC000], np.float16),  # raw bits: 1.5, -2.0
    ("BFloat16", "BF16", [0x3FC0, 0xC000], ml_dtypes.bfloat16),  # raw bits: 1.5, -2.0
    ("Float32", "FP32", [1.5, -0.25], np.float32),
    ("Float64", "FP64", [1e300, -1e-300], np.float64),
    ("Bytes", "BYTES", [[104, 105], [], [255, 0]], object),
]


def tensor(name: str, dynamo_type: str, shape: list, values: list) -> dict:
    return {
        "metadata": {"name": name, "data_type": dynamo_type, "shape": shape},
        "data": {"data_type": dynamo_type, "values": values},
    }


def test_the_mapping_and_its_inverse_cover_every_triton_type() -> None:
    assert set(DYNAMO_TO_TRITON) == {row[0] for row in TABLE}
    assert {v: k for k, v in TRITON_TO_DYNAMO.items()} == DYNAMO_TO_TRITON


@pytest.mark.parametrize(("dynamo_type", "triton_type", "values", "dtype"), TABLE, ids=[r[1] for r in TABLE])
def test_decode_then_encode_gives_the_values_back(dynamo_type, triton_type, values, dtype) -> None:
    name, data_type, array = decode_tensor(tensor("X", dynamo_type, [len(values)], values))
    assert (name, data_type, array.dtype, array.shape) == ("X", triton_type, np.dtype(dtype), (len(values),))
    encoded = encode_tensor("Y", array)
    assert encoded["metadata"] == {"name": "Y", "data_type": dynamo_type, "shape": [len(values)]}
    out = encoded["data"]["values"]
    if triton_type == "BYTES":
        assert out == [bytes(v) for v in values]  # Dynamo takes bytes objects for Bytes elements
    else:
        assert list(out) == values


def test_float16_values_are_bit_patterns_not_numbers() -> None:
    _, _, array = decode_tensor(tensor("X", "Float16", [1], [0x3E00]))
    assert array.tolist() == [1.5]


def test_multidimensional_shapes() -> None:
    _, _, array = decode_tensor(tensor("X", "Int32", [2, 3], list(range(6))))
    assert array.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert encode_tensor("Y", array)["metadata"]["shape"] == [2, 3]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (tensor("X", "Int32", [3], [1, 2]), "shape [3] (3 elements) but 2 values"),
        (tensor("X", "Int8", [1], [300]), "values do not fit INT8"),
        (tensor("X", "Int32", [1], [1.5]), "values do not fit INT32"),
        (tensor("X", "Uint8", [1], [-1]), "values do not fit UINT8"),
        (tensor("X", "Float32", [1], ["a"]), "values do not fit FP32"),
        (tensor("X", "Complex64", [1], [1]), "unknown data type 'Complex64'"),
        (tensor("X", "Int32", [-1], [1]), "invalid shape [-1]"),
        ({"metadata": {"name": "X"}}, "lacks metadata.name"),
        (tensor("X", "Int32", [1] * 65, [1]), "has 65 dimensions; at most 64"),
        (tensor("X", "Int32", [True], [1]), "invalid shape [True]"),
        (tensor(7, "Int32", [1], [1]), "metadata.name must be a string"),
        (tensor("X", "Int32", [1], 5), "data.values a list of values"),
        ({"metadata": {"name": "X", "data_type": "Int32", "shape": [1]}, "data": [1]}, "lacks metadata.name"),
        (
            {
                "metadata": {"name": "X", "data_type": "Int32", "shape": [1]},
                "data": {"data_type": "Int64", "values": [1]},
            },
            "says Int32 in its metadata but Int64 in its data",
        ),
    ],
)
def test_malformed_tensors_name_the_problem(bad: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=None) as caught:
        decode_tensor(bad)
    assert message in caught.value.message


def test_parameters_both_ways() -> None:
    typed = {"a": {"bool": True}, "b": {"int64": 3}, "c": {"double": 1.5}, "d": {"string": "x"}}
    assert decode_parameters(typed) == {"a": True, "b": 3, "c": 1.5, "d": "x"}
    assert encode_parameters(decode_parameters(typed)) == typed
    with pytest.raises(InvalidInput, match="request parameter 'z'"):
        decode_parameters({"z": {"int64": 1, "bool": True}})


NUMERIC = [row for row in TABLE if row[1] not in ("BYTES", "BOOL", "FP16", "BF16")]


@st.composite
def dynamo_tensors(draw):
    """Any tensor a client could send: a numeric type, a shape, and values that may or may not fit either."""
    dynamo_type, triton_type, _, dtype = draw(st.sampled_from(NUMERIC))
    shape = draw(st.lists(st.integers(0, 4), min_size=0, max_size=3))
    count = math.prod(shape)
    if np.dtype(dtype).kind == "f":
        element = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**70), 2**70)
    else:
        element = st.integers(-(2**70), 2**70)
    extra = draw(st.integers(-1, 1))  # sometimes a value too few or too many
    values = draw(st.lists(element, min_size=max(0, count + extra), max_size=max(0, count + extra)))
    return tensor("X", dynamo_type, shape, values), triton_type, dtype, shape


@settings(max_examples=300, deadline=None)
@given(dynamo_tensors())
def test_decoding_never_fails_but_with_invalid_input(case) -> None:
    payload, triton_type, dtype, shape = case
    try:
        _, data_type, array = decode_tensor(payload)
    except InvalidInput as exc:
        assert exc.message.startswith("input 'X'")
        return
    assert data_type == triton_type and array.dtype == np.dtype(dtype) and list(array.shape) == shape
    expected = np.array(payload["data"]["values"], dtype=np.float64 if array.dtype.kind == "f" else object)
    if array.dtype.kind == "f":
        # a value beyond FP16/FP32 range is inf after the decoder's cast, and after this one too
        with np.errstate(over="ignore"):
            narrowed = expected.astype(array.dtype)
        np.testing.assert_array_equal(array.astype(np.float64).reshape(-1), narrowed)
    else:
        assert [int(v) for v in array.reshape(-1)] == [int(v) for v in expected]
