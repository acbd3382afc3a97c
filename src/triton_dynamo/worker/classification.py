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

# The element types Triton classifies; std::to_string writes floats with six decimals and integers as they are.
_FLOAT_KINDS = "f"
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
        kind, value = next(iter(typed.items())) if isinstance(typed, Mapping) and len(typed) == 1 else ("", typed)
        if kind != "int64" and not (kind == "" and isinstance(value, int) and not isinstance(value, bool)):
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
        # largest first; equal values in index order
        order = np.argsort(-row.astype(np.float64) if row.dtype.kind == "u" else -row, kind="stable")[:k]
        for column, index in enumerate(order):
            value = row[index]
            text = f"{value:f}" if row.dtype.kind in _FLOAT_KINDS else str(int(value))
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
