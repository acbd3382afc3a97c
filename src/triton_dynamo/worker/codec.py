# SPDX-License-Identifier: Apache-2.0
"""Dynamo's tensor dicts to numpy and back: pure functions over one mapping of type names and its inverse.

Dynamo hands a worker each tensor as ``{"metadata": {"name", "data_type", "shape"}, "data": {"data_type",
"values"}}`` where ``values`` is a flat Python list: numbers, booleans, raw 16-bit patterns for Float16 and BFloat16,
and one list of byte values per element for Bytes. The list is what Dynamo's runtime gives and takes, so the one
conversion we cannot avoid is the request's list -> contiguous buffer; it runs in C (``array.array``, and for FP32
and FP64 a loop of our own, four times faster: :func:`~triton_dynamo.triton.lists.real_array`), never a Python loop
over elements of numeric tensors. Responses go back as memoryviews of the output arrays, which the runtime reads
directly.

Example:
    >>> name, data_type, array = decode_tensor({"metadata": {"name": "X", "data_type": "Int32", "shape": [2]},
    ...                                        "data": {"data_type": "Int32", "values": [1, 2]}})
    >>> name, data_type, array.tolist()
    ('X', 'INT32', [1, 2])
    >>> encode_tensor("Y", array)["data"]["values"].tolist()
    [1, 2]
"""

from __future__ import annotations

import array
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..dtypes import NUMPY_DTYPE, triton_dtype
from ..errors import InvalidInput
from .lists import real_array

# Dynamo's name -> Triton's name, and the inverse.
DYNAMO_TO_TRITON: dict[str, str] = {
    "Bool": "BOOL",
    "Uint8": "UINT8",
    "Uint16": "UINT16",
    "Uint32": "UINT32",
    "Uint64": "UINT64",
    "Int8": "INT8",
    "Int16": "INT16",
    "Int32": "INT32",
    "Int64": "INT64",
    "Float16": "FP16",
    "BFloat16": "BF16",
    "Float32": "FP32",
    "Float64": "FP64",
    "Bytes": "BYTES",
}
TRITON_TO_DYNAMO: dict[str, str] = {v: k for k, v in DYNAMO_TO_TRITON.items()}

# array.array type codes of the same width, for the list -> buffer step; 16-bit floats travel as raw bits. FP32 and
# FP64 go through triton.lists.real_array instead.
_ARRAY_CODE: dict[str, str] = {
    "UINT8": "B",
    "INT8": "b",
    "UINT16": "H",
    "INT16": "h",
    "UINT32": "I",
    "INT32": "i",
    "UINT64": "Q",
    "INT64": "q",
    "FP16": "H",
    "BF16": "H",
}
_RAW_BITS = {"FP16", "BF16"}
# More dimensions than any model declares; a bound before anything is computed from the shape.
MAX_DIMS = 64
_REAL_TYPES = {"FP32", "FP64"}


def element_count(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def decode_values(data_type: str, values: list, shape: tuple[int, ...]) -> np.ndarray:
    """A Dynamo value list as a numpy array of Triton type ``data_type`` and ``shape``.

    Raises :class:`InvalidInput` when the values do not fit the type (out of range, not numbers, broken bytes).
    """
    try:
        if data_type == "BYTES":
            flat = np.empty(len(values), dtype=object)
            flat[:] = [v if isinstance(v, bytes) else bytes(v) for v in values]
            return flat.reshape(shape)
        if data_type == "BOOL":
            return np.array(values, dtype=np.bool_).reshape(shape)
        if data_type in _REAL_TYPES:  # the large tensors: converted in C
            return real_array(values, NUMPY_DTYPE[data_type]).reshape(shape)
        # array.array refuses out-of-range values, where numpy 1.x would wrap them round silently.
        code = _ARRAY_CODE[data_type]
        flat = np.frombuffer(array.array(code, values), dtype=np.dtype(code))
        if data_type in _RAW_BITS:
            flat = flat.view(NUMPY_DTYPE[data_type])
        return flat.reshape(shape)
    except (OverflowError, TypeError, ValueError) as exc:
        raise InvalidInput(f"values do not fit {data_type}: {exc}") from None


def encode_values(data_type: str, array_: np.ndarray) -> list | memoryview:
    """A numpy array as values Dynamo's runtime takes: BYTES as a list of ``bytes`` (one per element); every other
    type as a flat memoryview of the array, which the runtime reads element by element without a Python list (this
    halved the cost of returning 602 KB); 16-bit floats as their raw bits, as Dynamo carries them."""
    if data_type == "BYTES":
        return [item if isinstance(item, bytes) else str(item).encode() for item in array_.reshape(-1)]
    if data_type in _RAW_BITS:
        array_ = array_.view(np.uint16)
    return memoryview(np.ascontiguousarray(array_).reshape(-1))


def decode_tensor(tensor: Mapping[str, Any]) -> tuple[str, str, np.ndarray]:
    """(name, Triton data type, array) of one Dynamo tensor; :class:`InvalidInput` names what is malformed."""
    try:
        meta, data = tensor["metadata"], tensor["data"]
        name, dynamo_type, shape = meta["name"], meta["data_type"], tuple(meta["shape"])
        values = data["values"]
    except (KeyError, TypeError):
        raise InvalidInput(
            "a tensor of the request lacks metadata.name, metadata.data_type, metadata.shape or data.values"
        ) from None
    if not isinstance(name, str) or not isinstance(data, Mapping) or not isinstance(values, (list, tuple)):
        raise InvalidInput(
            "a tensor of the request is malformed: metadata.name must be a string and data.values a list of values"
        )
    if len(shape) > MAX_DIMS:
        raise InvalidInput(f"input {name!r} has {len(shape)} dimensions; at most {MAX_DIMS} are accepted")
    data_type = DYNAMO_TO_TRITON.get(dynamo_type)
    if data_type is None:
        raise InvalidInput(f"input {name!r} has unknown data type {dynamo_type!r}")
    if data.get("data_type", dynamo_type) != dynamo_type:
        raise InvalidInput(f"input {name!r} says {dynamo_type} in its metadata but {data['data_type']} in its data")
    if any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in shape):
        raise InvalidInput(f"input {name!r} has an invalid shape {list(shape)}")
    count = element_count(shape)
    if len(values) != count:
        raise InvalidInput(f"input {name!r} has shape {list(shape)} ({count} elements) but {len(values)} values")
    try:
        return name, data_type, decode_values(data_type, values, shape)
    except InvalidInput as exc:
        raise InvalidInput(f"input {name!r}: {exc.message}") from None


def encode_tensor(name: str, array_: np.ndarray) -> dict[str, Any]:
    """One numpy array as a Dynamo tensor dict."""
    dynamo_type = TRITON_TO_DYNAMO[triton_dtype(array_.dtype)]
    return {
        "metadata": {"name": name, "data_type": dynamo_type, "shape": list(array_.shape)},
        "data": {"data_type": dynamo_type, "values": encode_values(DYNAMO_TO_TRITON[dynamo_type], array_)},
    }


# KServe request and response parameters as Dynamo carries them: {"name": {"int64": 3}}.
_PARAMETER_KINDS = ("bool", "int64", "double", "string", "uint64")


def decode_parameters(parameters: Mapping[str, Any] | None) -> dict[str, str | int | float | bool]:
    """Dynamo's typed parameter dicts as plain values for Triton."""
    if not parameters:
        return {}
    decoded = {}
    for key, typed in parameters.items():
        if isinstance(typed, Mapping) and len(typed) == 1:
            ((kind, value),) = typed.items()
            if kind in _PARAMETER_KINDS:
                decoded[key] = value
                continue
        if isinstance(typed, (str, int, float, bool)):
            decoded[key] = typed
            continue
        raise InvalidInput(
            f"request parameter {key!r} has an unsupported value {typed!r}; "
            f"expected one of {', '.join(_PARAMETER_KINDS)}"
        )
    return decoded


def encode_parameters(parameters: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Plain values as Dynamo's typed parameter dicts (values of other types are left out)."""
    encoded = {}
    for key, value in parameters.items():
        if isinstance(value, bool):
            encoded[key] = {"bool": value}
        elif isinstance(value, int):
            encoded[key] = {"int64": value}
        elif isinstance(value, float):
            encoded[key] = {"double": value}
        elif isinstance(value, str):
            encoded[key] = {"string": value}
    return encoded
