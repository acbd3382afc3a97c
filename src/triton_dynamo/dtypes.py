# SPDX-License-Identifier: Apache-2.0
"""Triton data types and their numpy counterparts: one mapping, its inverse, and pure functions over them.

Triton names its types ``BOOL``, ``UINT8`` ... ``BF16``, ``BYTES`` (the spelling of model metadata and of the KServe
protocol; model configs write them ``TYPE_...`` and call BYTES ``STRING``). numpy has no bfloat16, so BF16 maps to
``ml_dtypes.bfloat16``; BYTES maps to numpy object arrays of ``bytes``.

Example:
    >>> numpy_dtype("FP32")
    dtype('float32')
    >>> triton_dtype(np.dtype("int64"))
    'INT64'
    >>> deserialize_bytes(serialize_bytes(np.array([b"ab", b""], dtype=object)), 2).tolist()
    [b'ab', b'']
"""

from __future__ import annotations

import struct

import ml_dtypes
import numpy as np

from .errors import InvalidInput

# Triton's name -> (TRITONSERVER_DataType enum value, numpy dtype). Order follows tritonserver.h.
_TABLE: dict[str, tuple[int, np.dtype]] = {
    "BOOL": (1, np.dtype(np.bool_)),
    "UINT8": (2, np.dtype(np.uint8)),
    "UINT16": (3, np.dtype(np.uint16)),
    "UINT32": (4, np.dtype(np.uint32)),
    "UINT64": (5, np.dtype(np.uint64)),
    "INT8": (6, np.dtype(np.int8)),
    "INT16": (7, np.dtype(np.int16)),
    "INT32": (8, np.dtype(np.int32)),
    "INT64": (9, np.dtype(np.int64)),
    "FP16": (10, np.dtype(np.float16)),
    "FP32": (11, np.dtype(np.float32)),
    "FP64": (12, np.dtype(np.float64)),
    "BYTES": (13, np.dtype(object)),
    "BF16": (14, np.dtype(ml_dtypes.bfloat16)),
}

TRITON_DTYPES: tuple[str, ...] = tuple(_TABLE)
DTYPE_ENUM: dict[str, int] = {name: enum for name, (enum, _) in _TABLE.items()}
ENUM_DTYPE: dict[int, str] = {enum: name for name, enum in DTYPE_ENUM.items()}
NUMPY_DTYPE: dict[str, np.dtype] = {name: dtype for name, (_, dtype) in _TABLE.items()}
_FROM_NUMPY: dict[np.dtype, str] = {dtype: name for name, dtype in NUMPY_DTYPE.items()}
# numpy arrays of fixed-width bytes or str are BYTES tensors too.
_BYTES_KINDS = frozenset("OSU")

_LENGTH = struct.Struct("<I")


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype of Triton type ``name`` (``FP32`` or the config spelling ``TYPE_FP32``)."""
    key = name[5:] if name.startswith("TYPE_") else name
    key = "BYTES" if key == "STRING" else key
    try:
        return NUMPY_DTYPE[key]
    except KeyError:
        raise InvalidInput(f"unknown Triton data type {name!r}; known: {', '.join(TRITON_DTYPES)}") from None


def triton_dtype(dtype: np.dtype) -> str:
    """The Triton name of numpy ``dtype``; object, bytes and str arrays are BYTES."""
    dtype = np.dtype(dtype)
    name = _FROM_NUMPY.get(dtype)
    if name is not None:
        return name
    if dtype.kind in _BYTES_KINDS:
        return "BYTES"
    if dtype.byteorder == ">" or (dtype.byteorder == "=" and not np.little_endian):
        name = _FROM_NUMPY.get(dtype.newbyteorder("<"))
        if name is not None:
            raise InvalidInput(f"numpy dtype {dtype.str} is big-endian; Triton tensors are little-endian")
    raise InvalidInput(f"numpy dtype {dtype} has no Triton counterpart; supported: {', '.join(TRITON_DTYPES)}")


def element_size(name: str) -> int:
    """Bytes per element of a fixed-size Triton type; 0 for BYTES, whose elements vary."""
    return 0 if name == "BYTES" else NUMPY_DTYPE[name].itemsize


def serialize_bytes(array: np.ndarray) -> bytes:
    """Triton's wire form of a BYTES tensor: each element as a 4-byte little-endian length, then its bytes."""
    parts: list[bytes] = []
    for item in array.reshape(-1):
        data = item.encode("utf-8") if isinstance(item, str) else bytes(item)
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def deserialize_bytes(buffer: bytes | memoryview | np.ndarray, count: int) -> np.ndarray:
    """The ``count`` elements of a serialized BYTES tensor, as a flat object array of ``bytes``.

    Raises :class:`InvalidInput` when the buffer's length prefixes do not add up to exactly ``count`` elements.
    """
    view = memoryview(buffer).cast("B")
    offset, end = 0, len(view)
    if count < 0 or count * _LENGTH.size > end:  # before allocating: every element takes its 4-byte prefix at least
        raise InvalidInput(f"BYTES tensor is truncated: {end} bytes cannot hold {count} elements")
    out = np.empty(count, dtype=object)
    for i in range(count):
        if offset + 4 > end:
            raise InvalidInput(f"BYTES tensor is truncated: element {i} of {count} has no length prefix")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > end:
            raise InvalidInput(f"BYTES tensor is truncated: element {i} claims {length} bytes, {end - offset} remain")
        out[i] = bytes(view[offset : offset + length])
        offset += length
    if offset != end:
        raise InvalidInput(f"BYTES tensor has {end - offset} bytes after its {count} elements")
    return out
