# SPDX-License-Identifier: Apache-2.0
"""Request inputs for any model: generated from its KServe metadata and Triton config, or parsed from text.

Used by ``triton-dynamo infer`` and by the load generator. Generated values are deterministic for a seed, fit their
type's range, and give variable dimensions (-1) the size asked for.

Example:
    >>> metadata = {"inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [-1]}]}
    >>> inputs = synthesize_inputs(metadata, {"max_batch_size": 0}, variable_dim=3)
    >>> inputs["INPUT0"].dtype, inputs["INPUT0"].shape
    (dtype('int32'), (3,))
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

from ..dtypes import numpy_dtype
from ..errors import InvalidInput


def input_shape(shape: list[int], *, batched: bool, batch_size: int, variable_dim: int) -> tuple[int, ...]:
    """A concrete shape from a metadata shape: the batch dimension (first, when the model batches) becomes
    ``batch_size`` and every other -1 becomes ``variable_dim``."""
    dims = [batch_size if (batched and i == 0) else (variable_dim if d < 0 else d) for i, d in enumerate(shape)]
    return tuple(dims)


def synthesize_array(data_type: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Values of ``data_type`` in ``shape``: small integers, floats in [-1, 1), booleans, or short byte strings."""
    count = int(np.prod(shape, dtype=np.int64))
    if data_type == "BYTES":
        words = [b"triton", b"dynamo", b"kserve", b"tensor", "\u00fcber".encode()]
        flat = np.array([words[i] for i in rng.integers(0, len(words), count)], dtype=object)
        return flat.reshape(shape)
    dtype = numpy_dtype(data_type)
    if data_type == "BOOL":
        return rng.integers(0, 2, count).astype(bool).reshape(shape)
    if dtype.kind in "iu":
        return rng.integers(0, 100, count).astype(dtype).reshape(shape)
    return rng.uniform(-1.0, 1.0, count).astype(np.float32).astype(dtype).reshape(shape)


def synthesize_inputs(
    metadata: Mapping,
    config: Mapping,
    *,
    batch_size: int = 1,
    variable_dim: int = 4,
    variable_dims: Mapping[str, int] | None = None,
    seed: int = 0,
    include_optional: bool = False,
) -> dict[str, np.ndarray]:
    """One request's inputs for a model, from its KServe metadata (``inputs``: name, datatype, shape) and Triton
    config (``max_batch_size``, ``input[].optional``). ``variable_dims`` sizes -1 dimensions per input name."""
    batched = int(config.get("max_batch_size", 0)) > 0
    optional = {i["name"] for i in config.get("input", []) if i.get("optional")}
    rng = np.random.default_rng(seed)
    inputs = {}
    for spec in metadata["inputs"]:
        name = spec["name"]
        if name in optional and not include_optional:
            continue
        size = (variable_dims or {}).get(name, variable_dim)
        shape = input_shape([int(d) for d in spec["shape"]], batched=batched, batch_size=batch_size, variable_dim=size)
        inputs[name] = synthesize_array(spec["datatype"], shape, rng)
    return inputs


def parse_input(text: str, data_type: str) -> np.ndarray:
    """A value given on the command line as JSON (a number, string or nested list) as an array of ``data_type``.

    Example:
        >>> parse_input("[[1, 2], [3, 4]]", "FP32").shape
        (2, 2)
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = [text]  # a bare word is one BYTES element
    if data_type == "BYTES":
        array = np.array(value, dtype=object)
        return np.vectorize(lambda v: v.encode() if isinstance(v, str) else bytes(v), otypes=[object])(array)
    dtype = numpy_dtype(data_type)
    array = np.asarray(value)
    if dtype.kind in "iub" and array.dtype.kind == "f" and np.any(array != np.round(array)):
        raise InvalidInput(f"{text!r} is not a valid {data_type} value: it has fractions")
    try:
        return array.astype(dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{text!r} is not a valid {data_type} value: {exc}") from None
