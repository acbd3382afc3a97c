# SPDX-License-Identifier: Apache-2.0
"""Triton data types <-> numpy dtypes, and the BYTES wire format (pure: no Triton)."""

from __future__ import annotations

import struct

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from triton_dynamo.dtypes import (
    DTYPE_ENUM,
    ENUM_DTYPE,
    TRITON_DTYPES,
    deserialize_bytes,
    element_size,
    numpy_dtype,
    serialize_bytes,
    triton_dtype,
)
from triton_dynamo.errors import InvalidInput, Status
from triton_dynamo.triton.types import Tensor

# Triton name, numpy dtype, TRITONSERVER_DataType value in tritonserver.h (what the binding sends to Triton).
TABLE = [
    ("BOOL", np.dtype(np.bool_), 1),
    ("UINT8", np.dtype(np.uint8), 2),
    ("UINT16", np.dtype(np.uint16), 3),
    ("UINT32", np.dtype(np.uint32), 4),
    ("UINT64", np.dtype(np.uint64), 5),
    ("INT8", np.dtype(np.int8), 6),
    ("INT16", np.dtype(np.int16), 7),
    ("INT32", np.dtype(np.int32), 8),
    ("INT64", np.dtype(np.int64), 9),
    ("FP16", np.dtype(np.float16), 10),
    ("FP32", np.dtype(np.float32), 11),
    ("FP64", np.dtype(np.float64), 12),
    ("BYTES", np.dtype(object), 13),
    ("BF16", np.dtype(ml_dtypes.bfloat16), 14),
]
IDS = [name for name, _, _ in TABLE]


def test_table_covers_every_triton_type() -> None:
    assert set(TRITON_DTYPES) == {name for name, _, _ in TABLE}
    assert len(TRITON_DTYPES) == 14


@pytest.mark.parametrize(("name", "dtype", "enum"), TABLE, ids=IDS)
def test_name_to_numpy_and_back(name: str, dtype: np.dtype, enum: int) -> None:
    assert numpy_dtype(name) == dtype
    assert triton_dtype(dtype) == name
    assert triton_dtype(numpy_dtype(name)) == name
    assert DTYPE_ENUM[name] == enum
    assert ENUM_DTYPE[enum] == name


@pytest.mark.parametrize(("name", "dtype", "enum"), TABLE, ids=IDS)
def test_config_spelling(name: str, dtype: np.dtype, enum: int) -> None:
    config_name = "TYPE_STRING" if name == "BYTES" else f"TYPE_{name}"
    assert numpy_dtype(config_name) == dtype


def test_string_is_bytes() -> None:
    assert numpy_dtype("STRING") == np.dtype(object)
    assert numpy_dtype("TYPE_STRING") == np.dtype(object)
    assert numpy_dtype("TYPE_BYTES") == np.dtype(object)


@pytest.mark.parametrize(
    ("name", "dtype", "size"),
    [(name, dtype, 0 if name == "BYTES" else dtype.itemsize) for name, dtype, _ in TABLE],
    ids=IDS,
)
def test_element_size(name: str, dtype: np.dtype, size: int) -> None:
    assert element_size(name) == size


@pytest.mark.parametrize("dtype", ["S5", "U3", "O"])
def test_bytes_like_numpy_dtypes_are_bytes(dtype: str) -> None:
    assert triton_dtype(np.dtype(dtype)) == "BYTES"


def test_triton_dtype_accepts_scalar_types() -> None:
    assert triton_dtype(np.float32) == "FP32"
    assert triton_dtype(ml_dtypes.bfloat16) == "BF16"
    assert triton_dtype(np.dtype("<i8")) == "INT64"


@pytest.mark.parametrize("name", ["FP8", "fp32", "", "TYPE_", "TYPE_FOO", "INT128", "FLOAT", "TYPE_TYPE_FP32"])
def test_unknown_names_raise(name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        numpy_dtype(name)
    assert info.value.status is Status.INVALID_ARGUMENT
    assert repr(name) in info.value.message
    assert "unknown Triton data type" in info.value.message
    assert "FP32" in info.value.message  # lists the known ones


@pytest.mark.parametrize(
    "dtype",
    [">i2", ">i4", ">i8", ">u2", ">u4", ">u8", ">f2", ">f4", ">f8", np.dtype(ml_dtypes.bfloat16).newbyteorder(">")],
    ids=str,
)
def test_big_endian_raises(dtype) -> None:
    dtype = np.dtype(dtype)
    with pytest.raises(InvalidInput) as info:
        triton_dtype(dtype)
    assert "big-endian" in info.value.message
    assert info.value.status is Status.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "dtype",
    ["complex64", "complex128", ">c8", "longdouble", "datetime64[ns]", "timedelta64[s]", "V4", [("a", "<i4")]],
    ids=str,
)
def test_unsupported_numpy_dtypes_raise(dtype) -> None:
    dtype = np.dtype(dtype)
    with pytest.raises(InvalidInput) as info:
        triton_dtype(dtype)
    message = info.value.message
    assert "has no Triton counterpart" in message
    assert str(dtype) in message
    assert "BF16" in message  # lists what is supported


# --- BYTES serialization ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([b"ab", b""], b"\x02\x00\x00\x00ab\x00\x00\x00\x00"),
        ([], b""),
        ([b""], b"\x00\x00\x00\x00"),
        (["é"], b"\x02\x00\x00\x00\xc3\xa9"),
        ([b"\xff\x00\xfe"], b"\x03\x00\x00\x00\xff\x00\xfe"),
    ],
)
def test_serialize_bytes_wire_format(items: list, expected: bytes) -> None:
    assert serialize_bytes(np.array(items, dtype=object)) == expected


def test_round_trip_with_empty_non_utf8_and_str() -> None:
    items = [b"", b"hello", b"\xff\xfe\x00\x80", "wörld", "", b"x" * 70000]
    expected = [item.encode() if isinstance(item, str) else item for item in items]
    array = np.empty(len(items), dtype=object)
    array[:] = items
    out = deserialize_bytes(serialize_bytes(array), len(items))
    assert out.dtype == np.dtype(object)
    assert out.shape == (len(items),)
    assert out.tolist() == expected
    assert all(type(x) is bytes for x in out)


def test_round_trip_multidimensional_is_row_major() -> None:
    array = np.array([[b"a", b"bb"], [b"", b"dddd"]], dtype=object)
    out = deserialize_bytes(serialize_bytes(array), array.size).reshape(array.shape)
    assert out.tolist() == array.tolist()


def test_fixed_width_numpy_strings() -> None:
    assert deserialize_bytes(serialize_bytes(np.array([b"ab", b"c"])), 2).tolist() == [b"ab", b"c"]
    assert deserialize_bytes(serialize_bytes(np.array(["ä", "bc"])), 2).tolist() == ["ä".encode(), b"bc"]


@pytest.mark.parametrize("container", [bytes, bytearray, memoryview, lambda b: np.frombuffer(b, dtype=np.uint8)])
def test_deserialize_accepts_buffers(container) -> None:
    buffer = serialize_bytes(np.array([b"one", b"", b"three"], dtype=object))
    assert deserialize_bytes(container(buffer), 3).tolist() == [b"one", b"", b"three"]


@given(st.lists(st.binary(max_size=300), max_size=40))
def test_bytes_round_trip_property(items: list[bytes]) -> None:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    buffer = serialize_bytes(array)
    assert len(buffer) == 4 * len(items) + sum(map(len, items))
    assert deserialize_bytes(buffer, len(items)).tolist() == items


@given(st.lists(st.text(max_size=50), max_size=20))
def test_str_round_trip_property(items: list[str]) -> None:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    assert deserialize_bytes(serialize_bytes(array), len(items)).tolist() == [s.encode("utf-8") for s in items]


@pytest.mark.parametrize(
    ("buffer", "count", "fragment"),
    [
        # too short for the prefixes alone: refused before anything is allocated
        (b"", 1, "BYTES tensor is truncated: 0 bytes cannot hold 1 elements"),
        (b"\x01\x00", 1, "BYTES tensor is truncated: 2 bytes cannot hold 1 elements"),
        (b"\x01\x00\x00\x00a", 2, "BYTES tensor is truncated: 5 bytes cannot hold 2 elements"),
        (b"\x05\x00\x00\x00abcde\x01\x00", 2, "element 1 of 2 has no length prefix"),
        (b"\x05\x00\x00\x00abc", 1, "element 0 claims 5 bytes, 3 remain"),
        (b"\xff\xff\xff\xff", 1, "element 0 claims 4294967295 bytes, 0 remain"),
    ],
)
def test_truncated_buffers_raise(buffer: bytes, count: int, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        deserialize_bytes(buffer, count)
    assert "truncated" in info.value.message
    assert fragment in info.value.message


@pytest.mark.parametrize(
    ("buffer", "count", "extra"),
    [(b"\x01\x00\x00\x00ab", 1, 1), (b"\x00\x00\x00\x00", 0, 4), (b"\x00\x00\x00\x00\x00\x00\x00\x00zz", 2, 2)],
)
def test_trailing_garbage_raises(buffer: bytes, count: int, extra: int) -> None:
    with pytest.raises(InvalidInput) as info:
        deserialize_bytes(buffer, count)
    assert f"{extra} bytes after its {count} elements" in info.value.message


def test_empty_tensor_deserializes() -> None:
    out = deserialize_bytes(b"", 0)
    assert out.shape == (0,)
    assert out.dtype == np.dtype(object)


def test_length_prefix_is_little_endian_uint32() -> None:
    buffer = serialize_bytes(np.array([b"x" * 258], dtype=object))
    assert struct.unpack_from("<I", buffer)[0] == 258
    assert buffer[:4] == b"\x02\x01\x00\x00"


@pytest.mark.parametrize("count", [10**12, 3, -1])
def test_a_count_the_buffer_cannot_hold_is_refused_before_allocating(count: int) -> None:
    with pytest.raises(InvalidInput, match=f"BYTES tensor is truncated: 8 bytes cannot hold {count} elements"):
        deserialize_bytes(b"\x00" * 8, count)


@pytest.mark.parametrize("name", ["TYPE_FP32", "STRING", "fp32"])
def test_a_tensor_takes_tritons_protocol_type_names_only(name: str) -> None:
    with pytest.raises(InvalidInput, match=f"tensor data type '{name}' is not a Triton type name"):
        Tensor(name, (1,), np.zeros(1, np.float32))
    assert Tensor("FP32", (1,), np.zeros(1, np.float32)).byte_size == 4
