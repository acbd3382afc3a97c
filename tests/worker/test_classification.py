# SPDX-License-Identifier: Apache-2.0
"""Triton's classification extension in the worker: tables of tensors and what Triton 2.51's gRPC server answers for
them. tests/e2e/test_triton_parity.py asks Triton and a stack the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from triton_dynamo.errors import InvalidInput
from triton_dynamo.worker.classification import classification_counts, read_labels, top_k


@pytest.mark.parametrize(
    ("array", "count", "batched", "labels", "expected"),
    [
        (np.array([0.1, 0.7, 0.2], np.float32), 2, False, (), [b"0.700000:1", b"0.200000:2"]),
        (np.array([0.1, 0.7, 0.2], np.float64), 9, False, (), [b"0.700000:1", b"0.200000:2", b"0.100000:0"]),
        (np.array([[1, 5], [7, 3]], np.int32), 1, True, (), [[b"5:1"], [b"7:0"]]),
        (np.array([[1, 5], [7, 3]], np.int32), 1, False, (), [b"7:2"]),  # not batching: one tensor, flattened
        (np.array([3, 200], np.uint8), 2, False, (), [b"200:1", b"3:0"]),
        (np.array([-2, -1], np.int64), 1, False, (), [b"-1:1"]),
        # the type's minimum is the smallest, however negating it would wrap
        (np.array([-128, 5, 0], np.int8), 3, False, (), [b"5:1", b"0:2", b"-128:0"]),
        (np.array([np.iinfo(np.int64).min, 1], np.int64), 2, False, (), [b"1:1", b"-9223372036854775808:0"]),
        (np.array([2**64 - 2, 2**64 - 1], np.uint64), 1, False, (), [b"18446744073709551615:1"]),  # past float64
        (np.array([0.5, 0.25], np.float32), 2, False, ("cat", "dog"), [b"0.500000:0:cat", b"0.250000:1:dog"]),
        (
            np.array([0.5, 0.25, 0.75], np.float32),
            3,
            False,
            ("cat",),
            [b"0.750000:2", b"0.500000:0:cat", b"0.250000:1"],
        ),
        (np.array([[0.5, 0.5]], np.float32), 2, True, (), [[b"0.500000:0", b"0.500000:1"]]),  # ties in index order
    ],
)
def test_top_k_as_triton_writes_it(array, count, batched, labels, expected) -> None:
    assert top_k(array, count, batched=batched, labels=labels).tolist() == expected


@pytest.mark.parametrize(
    ("array", "data_type"),
    [(np.array([True]), "BOOL"), (np.array([1.0], np.float16), "FP16"), (np.array([b"x"], dtype=object), "BYTES")],
)
def test_types_triton_does_not_classify_are_refused(array, data_type: str) -> None:
    with pytest.raises(InvalidInput) as info:
        top_k(array, 1, batched=False, data_type=data_type)
    assert info.value.message == f"class result not available for output due to unsupported type '{data_type}'"


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        ([], {}),
        ([{"name": "A"}, {"name": "B", "parameters": {"classification": {"int64": 3}}}], {"B": 3}),
        ([{"name": "A", "parameters": {"binary_data": {"bool": True}}}], {}),
    ],
)
def test_classification_counts(outputs, expected) -> None:
    assert classification_counts(outputs) == expected


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ({"string": "3"}, "invalid value type for 'classification' parameter, expected int64_param"),
        ({"int64": 0}, "invalid value for 'classification' parameter, expected >= 0"),
        ({"int64": -2}, "invalid value for 'classification' parameter, expected >= 0"),
    ],
)
def test_malformed_counts_are_refused_in_tritons_words(typed, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        classification_counts([{"name": "A", "parameters": {"classification": typed}}])
    assert info.value.message == message


def test_labels_come_from_the_file_the_output_names(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    config = {"output": [{"name": "P", "label_filename": "labels.txt"}, {"name": "Q"}]}
    assert read_labels(tmp_path, config) == {"P": ["cat", "dog"]}
