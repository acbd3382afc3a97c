# SPDX-License-Identifier: Apache-2.0
"""Sample requests from a JSON lines file: every data type, expectations, and errors that name the line."""

from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from triton_dynamo.dtypes import TRITON_DTYPES, numpy_dtype
from triton_dynamo.errors import ConfigurationError
from triton_dynamo.loadgen.requests_file import Sample, dump_sample, load_samples


def _array(data_type: str) -> np.ndarray:
    if data_type == "BYTES":
        array = np.empty(4, dtype=object)
        array[:] = [b"abc", "\u00fcber".encode(), b"\xff\x00", b""]
        return array.reshape(2, 2)
    if data_type == "BOOL":
        return np.array([[True, False], [False, True]])
    return np.array([[1, 2], [3, 127]]).astype(np.float32).astype(numpy_dtype(data_type))


def test_every_data_type_round_trips_through_the_file(tmp_path: Path) -> None:
    inputs = {f"IN_{t}": _array(t) for t in TRITON_DTYPES}
    path = tmp_path / "requests.jsonl"
    path.write_text(dump_sample(Sample("echo_all", inputs)) + "\n")
    (sample,) = load_samples(path)["echo_all"]
    assert set(sample.inputs) == set(inputs)
    for name, array in inputs.items():
        got = sample.inputs[name]
        assert got.dtype == array.dtype and got.shape == array.shape, name
        assert got.tolist() == array.tolist(), name
    assert sample.inputs["IN_BF16"].dtype == np.dtype(ml_dtypes.bfloat16)
    assert sample.expected is None


def test_lines_group_by_model_in_order_with_expectations(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    lines = [
        "# comment",
        json.dumps({"model": "identity", "inputs": {"INPUT0": {"datatype": "INT32", "shape": [2], "data": [1, 2]}}}),
        "",
        json.dumps(
            {
                "model": "repeat",
                "inputs": {"VALUES": {"datatype": "INT32", "shape": [2], "data": [7, 8]}},
                "expected": [
                    {"VALUE": {"datatype": "INT32", "shape": [1], "data": [7]}},
                    {"VALUE": {"datatype": "INT32", "shape": [1], "data": [8]}},
                ],
            }
        ),
        json.dumps(
            {"model": "identity", "inputs": {"INPUT0": {"datatype": "INT32", "shape": [1, 2], "data": [[3, 4]]}}}
        ),
    ]
    path.write_text("\n".join(lines))
    samples = load_samples(path)
    assert [s.inputs["INPUT0"].tolist() for s in samples["identity"]] == [[1, 2], [[3, 4]]]
    (repeat,) = samples["repeat"]
    assert [e["VALUE"].tolist() for e in repeat.expected] == [[7], [8]]
    assert repeat.origin.endswith("line 4")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not JSON"),
        ('{"inputs": {}}', "'model' and 'inputs'"),
        ('{"model": "m", "inputs": {}}', "non-empty object"),
        ('{"model": "m", "inputs": {"X": {"datatype": "INT32", "shape": [3], "data": [1, 2]}}}', "do not fill"),
        ('{"model": "m", "inputs": {"X": {"datatype": "INT32", "shape": [1], "data": [1.5]}}}', "fractions"),
        ('{"model": "m", "inputs": {"X": {"datatype": "INT4", "shape": [1], "data": [1]}}}', "INT4"),
        ('{"model": "m", "inputs": {"X": {"datatype": "BYTES", "shape": [1], "data": [1]}}}', "BYTES values"),
        ('{"model": "m", "inputs": {"X": {"shape": [1], "data": [1]}}}', "needs 'datatype'"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n" + line + "\n")
    with pytest.raises(ConfigurationError, match="line 2") as info:
        load_samples(path)
    assert problem in str(info.value)


def test_an_empty_or_missing_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("# nothing\n")
    with pytest.raises(ConfigurationError, match="no requests"):
        load_samples(tmp_path / "empty.jsonl")
    with pytest.raises(ConfigurationError, match=r"missing\.jsonl"):
        load_samples(tmp_path / "missing.jsonl")
