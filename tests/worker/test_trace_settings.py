# SPDX-License-Identifier: Apache-2.0
"""Triton's TraceSetting rules in the worker's trace policy (pure): parsing, resets, per-model overrides, rate and
count."""

from __future__ import annotations

import pytest

from triton_dynamo.errors import TritonDynamoError
from triton_dynamo.worker.trace_settings import TracePolicy, TraceSettings, parse_changes

ON = TraceSettings(trace_level=("TIMESTAMPS",), trace_rate=1)


@pytest.mark.parametrize(
    ("changes", "parsed"),
    [
        ({"trace_level": ["OFF"]}, {"trace_level": ("OFF",)}),
        ({"trace_level": ["TIMESTAMPS", "TENSORS"]}, {"trace_level": ("TIMESTAMPS", "TENSORS")}),
        ({"trace_rate": ["5"], "trace_count": ["-1"]}, {"trace_rate": 5, "trace_count": -1}),
        ({"log_frequency": ["10"]}, {"log_frequency": 10}),
        ({"trace_rate": []}, {"trace_rate": None}),
        ({"trace_count": None}, {"trace_count": None}),
        ({"trace_mode": ["triton"], "colour": ["red"]}, {}),  # ignored, as Triton 2.51 ignores them
    ],
)
def test_tritons_lists_of_strings_parse_to_values(changes: dict, parsed: dict) -> None:
    assert parse_changes(changes) == parsed


@pytest.mark.parametrize(
    ("changes", "status", "words"),
    [
        ({"trace_file": ["/tmp/t"]}, "UNIMPLEMENTED", "trace file location can not be updated through network"),
        ({"trace_rate": ["abc"]}, "INVALID_ARGUMENT", "Unable to parse 'trace_rate', got: abc"),
        ({"trace_rate": ["0"]}, "INVALID_ARGUMENT", "invalid trace setting :sample rate must be non-zero"),
        ({"trace_count": ["-2"]}, "INVALID_ARGUMENT", "Unable to parse 'trace_count'. Expecting value >= -1, got: -2"),
        ({"trace_level": ["LOUD"]}, "INVALID_ARGUMENT", "Unable to parse 'trace_level', got: LOUD"),
    ],
)
def test_what_triton_refuses_is_refused(changes: dict, status: str, words: str) -> None:
    with pytest.raises(TritonDynamoError) as info:
        parse_changes(changes)
    assert info.value.status.name == status
    assert words in info.value.message


def test_a_model_override_falls_back_to_the_worker_when_cleared() -> None:
    policy = TracePolicy(ON)
    policy.update("", {"trace_rate": ["4"]})
    assert policy.update("m", {"trace_level": ["OFF"]})["trace_rate"] == ["4"]  # the rest follows the worker
    policy.update("", {"trace_rate": ["2"]})
    assert policy.get("m")["trace_rate"] == ["2"] and policy.get("m")["trace_level"] == ["OFF"]
    assert policy.update("m", {"trace_level": []})["trace_level"] == ["TIMESTAMPS"]
    assert policy.update("", {"trace_rate": []})["trace_rate"] == ["1"]  # the worker's own default


def test_rate_and_count_pick_the_requests() -> None:
    policy = TracePolicy(ON)
    policy.update("m", {"trace_rate": ["3"], "trace_count": ["2"]})
    picks = [policy.sample("m") for _ in range(9)]
    assert picks == [True, False, False, True, False, False, False, False, False]  # two, then the count is spent
    assert policy.get("m")["trace_count"] == ["0"]
    assert all(policy.sample("other") for _ in range(3))  # other models follow the worker: every request


def test_off_traces_nothing() -> None:
    policy = TracePolicy(TraceSettings(trace_level=("OFF",)))
    assert not any(policy.sample("m") for _ in range(5))
