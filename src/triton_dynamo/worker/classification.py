# SPDX-License-Identifier: Apache-2.0
"""Triton's classification extension, done in the worker as Triton's gRPC server does it (``ParseClassificationParams``,
``TopkClassifications`` and the response encoding in Triton 2.51): an output requested with the parameter
``classification`` = k comes back as a BYTES tensor of its k largest elements, largest first, each as
``"value:index"``, with ``":label"`` added where the output names a label file in its config. For a model that
batches, each batch entry is classified on its own, and the shape is ``[batch, k]``; otherwise ``[k]``. k is at most
the number of elements.

Example:
    >>> top_k(np.array([0.1, 0.7, 0.2], np.float32), 2, batched=False).tolist()
    [b'0.700000:1', b'0.200000:2']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInput
from .request_fields import typed_parameter

# The element kinds Triton classifies; std::to_string writes floats with six decimals and integers as they are.
_CLASSIFIABLE = {"u", "i", "f"}


def classification_counts(outputs: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Output name -> k, for the requested outputs that carry a ``classification`` parameter (Dynamo's typed form).

    Raises :class:`InvalidInput` in Triton's words for a value that is not an int64 or not positive.
    """
    counts = {}
    for output in outputs:
        typed = (output.get("parameters") or {}).get("classification")
        if typed is None:
            continue
        kind, value = typed_parameter(typed)
        if kind != "int64":
            raise InvalidInput("invalid value type for 'classification' parameter, expected int64_param")
        if value <= 0:
            raise InvalidInput("invalid value for 'classification' parameter, expected >= 0")
        counts[output["name"]] = int(value)
    return counts


def top_k(
    array: np.ndarray, count: int, *, batched: bool, labels: Sequence[str] = (), data_type: str = ""
) -> np.ndarray:
    """The classification of one output tensor (see the module's docstring); ``data_type`` names the type in the
    refusal of one Triton cannot classify."""
    if array.dtype.kind not in _CLASSIFIABLE or array.dtype == np.float16:
        name = data_type or str(array.dtype)
        raise InvalidInput(f"class result not available for output due to unsupported type '{name}'")
    rows = array.reshape(array.shape[0], -1) if batched and array.ndim > 0 else array.reshape(1, -1)
    k = min(count, rows.shape[1])
    classes = np.empty((rows.shape[0], k), dtype=object)
    for row_index, row in enumerate(rows):
        # Largest first, equal values in index order: a stable ascending sort of the reversed row, read backwards.
        # Not a sort of -row, which wraps at a signed type's minimum, nor of a float64 copy, which merges large
        # 64-bit integers.
        order = (len(row) - 1 - np.argsort(row[::-1], kind="stable"))[::-1][:k]
        for column, index in enumerate(order):
            value = row[index]
            text = f"{value:f}" if row.dtype.kind == "f" else str(int(value))
            entry = f"{text}:{index}"
            if index < len(labels):
                entry += f":{labels[index]}"
            classes[row_index, column] = entry.encode()
    return classes if batched and array.ndim > 0 else classes.reshape(k)


def read_labels(model_directory: Path, config: Mapping[str, Any]) -> dict[str, list[str]]:
    """Output name -> its labels, one a line of the file its config names in ``label_filename`` (in the model's
    directory, as Triton reads it)."""
    labels = {}
    for output in config.get("output", []):
        filename = output.get("label_filename")
        if filename:
            labels[output["name"]] = (model_directory / filename).read_text().splitlines()
    return labels
