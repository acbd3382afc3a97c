# SPDX-License-Identifier: Apache-2.0
"""Lists of numbers into float arrays in C (worker.lists.real_array): the same values and errors as array.array, on
both sides of the size where the C loop takes over."""

from __future__ import annotations

import array
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triton_dynamo.errors import InvalidInput
from triton_dynamo.worker.codec import decode_tensor
from triton_dynamo.worker.lists import real_array

DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]
SIZES = [0, 1, 255, 256, 150528]  # 256: the first size the C loop converts


def _expected(values: list, dtype: np.dtype) -> np.ndarray:
    return np.frombuffer(array.array(dtype.char, values), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("size", SIZES)
def test_values_as_array_array_converts_them(dtype: np.dtype, size: int) -> None:
    values = np.random.default_rng(size).standard_normal(size).tolist()
    values[::7] = [int(v * 1000) for v in values[::7]]  # ints convert too
    converted = real_array(values, dtype)
    assert converted.dtype == dtype and converted.shape == (size,)
    np.testing.assert_array_equal(converted, _expected(values, dtype))


@pytest.mark.parametrize("size", [3, 1000])
@pytest.mark.parametrize(
    ("item", "expected"),
    [(True, 1.0), (1e300, math.inf), (-1e300, -math.inf), (math.nan, math.nan), (2**70, float(2**70))],
)
def test_special_items(size: int, item, expected: float) -> None:
    values = [0.5] * size
    values[-1] = item
    converted = real_array(values, np.dtype(np.float32))
    np.testing.assert_array_equal(converted[-1:], np.array([expected], np.float32))
    assert converted[0] == 0.5


@pytest.mark.parametrize("size", [3, 1000])
@pytest.mark.parametrize(
    ("item", "error"), [("a", TypeError), (None, TypeError), ([1.0], TypeError), (2**1100, OverflowError)]
)
def test_bad_items_raise_what_array_array_raises(size: int, item, error: type) -> None:
    values = [1.0] * size
    values[size // 2] = item
    with pytest.raises(error):
        real_array(values, np.dtype(np.float32))
    with pytest.raises(error):
        _expected(values, np.dtype(np.float32))


def test_sequences_other_than_lists_and_other_dtypes() -> None:
    np.testing.assert_array_equal(real_array(tuple(range(300)), np.dtype(np.float64)), np.arange(300.0))
    with pytest.raises(ValueError, match="float32 or float64"):
        real_array([1], np.dtype(np.int32))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(allow_nan=False) | st.integers(-(2**60), 2**60), min_size=250, max_size=600),
    st.sampled_from(DTYPES),
)
def test_any_list_of_numbers(values: list, dtype: np.dtype) -> None:
    np.testing.assert_array_equal(real_array(values, dtype), _expected(values, dtype))


def test_a_large_request_tensor_with_a_bad_value_is_invalid_input() -> None:
    values = [1.0] * 150528
    values[100000] = "x"
    tensor = {
        "metadata": {"name": "INPUT0", "data_type": "Float32", "shape": [150528]},
        "data": {"data_type": "Float32", "values": values},
    }
    with pytest.raises(InvalidInput, match="input 'INPUT0': values do not fit FP32: must be real number, not str"):
        decode_tensor(tensor)
    values[100000] = 2.0
    _, data_type, decoded = decode_tensor(tensor)
    assert data_type == "FP32" and decoded[100000] == 2.0 and decoded.sum() == 150529.0
