# SPDX-License-Identifier: Apache-2.0
"""Sample requests from a file: JSON lines, one request a line.

Each line is an object::

    {"model": "add_sub",
     "inputs": {"INPUT0": {"datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
                "INPUT1": {"datatype": "FP32", "shape": [1, 4], "data": [4, 3, 2, 1]}},
     "expected": {"OUTPUT0": {"datatype": "FP32", "shape": [1, 4], "data": [5, 5, 5, 5]}}}

``data`` is the flat (or nested) list of values in row-major order; BYTES values are strings (sent as UTF-8) or
``{"b64": "..."}`` for arbitrary bytes; BF16 and FP16 values are numbers. ``expected`` (optional) maps output names to
tensors the answer must equal (floats within 1e-5 relative, 1e-6 absolute), checked when ``--check`` is on; for a
streamed request, ``expected`` is a list with one such map per response. Decoupled models are sent over
ModelStreamInfer, others over ModelInfer (``--models MODEL:WEIGHT:KIND`` forces one). Blank lines and lines starting
with ``#`` are skipped.

Example:
    >>> sample = parse_line('{"model": "identity", "inputs": {"INPUT0": '
    ...                     '{"datatype": "INT32", "shape": [2], "data": [1, 2]}}}', 1)
    >>> sample.model, sample.inputs["INPUT0"].tolist()
    ('identity', [1, 2])
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..dtypes import numpy_dtype, triton_dtype
from ..errors import ConfigurationError, InvalidInput

Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class Sample:
    """One request's inputs for a model, and what its answer must be (one map per response)."""

    model: str
    inputs: dict[str, np.ndarray]
    expected: tuple[Outputs, ...] | None = None
    origin: str = field(default="", compare=False)


def decode_tensor(spec: Mapping, where: str) -> np.ndarray:
    """An array from ``{"datatype", "shape", "data"}``."""
    try:
        data_type, shape, data = spec["datatype"], tuple(int(d) for d in spec["shape"]), spec["data"]
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(f"{where}: a tensor needs 'datatype', 'shape' (integers) and 'data'") from None
    if data_type == "BYTES":
        flat = [_to_bytes(v, where) for v in np.array(data, dtype=object).reshape(-1).tolist()]
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
    else:
        try:
            dtype = numpy_dtype(data_type)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc.message}") from None
        values = np.asarray(data)
        if dtype.kind in "iub" and values.dtype.kind == "f" and np.any(values != np.round(values)):
            raise InvalidInput(f"{where}: {data_type} data has fractions")
        try:
            array = values.astype(np.float32).astype(dtype) if data_type == "BF16" else values.astype(dtype)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{where}: data is not {data_type}: {exc}") from None
    if array.size != int(np.prod(shape, dtype=np.int64)):
        raise InvalidInput(f"{where}: {array.size} values do not fill shape {list(shape)}")
    return array.reshape(shape)


def encode_tensor(array: np.ndarray) -> dict:
    """The file's form of an array (inverse of :func:`decode_tensor`)."""
    data_type = triton_dtype(array.dtype)
    if data_type == "BYTES":
        data = [_from_bytes(bytes(v) if not isinstance(v, str) else v.encode()) for v in array.reshape(-1)]
    elif data_type in ("BF16", "FP16"):
        data = array.astype(np.float32).reshape(-1).tolist()
    else:
        data = array.reshape(-1).tolist()
    return {"datatype": data_type, "shape": list(array.shape), "data": data}


def _to_bytes(value, where: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and isinstance(value.get("b64"), str):
        return base64.b64decode(value["b64"])
    raise InvalidInput(f"{where}: BYTES values are strings or {{'b64': ...}}, not {value!r}")


def _from_bytes(value: bytes) -> str | dict:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(value).decode()}


def _tensors(mapping, where: str) -> Outputs:
    if not isinstance(mapping, dict) or not mapping:
        raise InvalidInput(f"{where}: expected a non-empty object of NAME: tensor")
    return {name: decode_tensor(spec, f"{where} {name}") for name, spec in mapping.items()}


def parse_line(text: str, line_number: int, origin: str = "") -> Sample:
    where = f"{origin or 'requests file'} line {line_number}"
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{where}: not JSON: {exc}") from None
    if not isinstance(item, dict) or not isinstance(item.get("model"), str):
        raise InvalidInput(f"{where}: each line is an object with 'model' and 'inputs'")
    expected = item.get("expected")
    if expected is not None:
        maps = expected if isinstance(expected, list) else [expected]
        expected = tuple(_tensors(m, f"{where} expected") for m in maps)
    return Sample(item["model"], _tensors(item.get("inputs"), f"{where} inputs"), expected, where)


def load_samples(path: Path) -> dict[str, list[Sample]]:
    """Every sample of the file, by model, in file order; errors name the line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigurationError(f"--requests-file {str(path)!r}: {exc}") from None
    samples: dict[str, list[Sample]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            sample = parse_line(line, number, str(path))
        except InvalidInput as exc:
            raise ConfigurationError(exc.message) from None
        samples.setdefault(sample.model, []).append(sample)
    if not samples:
        raise ConfigurationError(f"--requests-file {str(path)!r} has no requests")
    return samples


def dump_sample(sample: Sample) -> str:
    """One line of the file for ``sample``."""
    item: dict = {"model": sample.model, "inputs": {n: encode_tensor(a) for n, a in sample.inputs.items()}}
    if sample.expected is not None:
        maps = [{n: encode_tensor(a) for n, a in m.items()} for m in sample.expected]
        item["expected"] = maps[0] if len(maps) == 1 else maps
    return json.dumps(item)
