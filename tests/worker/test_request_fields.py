# SPDX-License-Identifier: Apache-2.0
"""Triton's reserved request parameters: a table of what the model keeps and what becomes the request's fields, and
of the refusals, in Triton 2.51's words. tests/e2e/test_triton_parity.py sends the same through a stack and Triton."""

from __future__ import annotations

import pytest

from triton_dynamo.errors import InvalidInput
from triton_dynamo.worker.request_fields import SEQUENCE_END, SEQUENCE_START, split_request_fields


@pytest.mark.parametrize(
    ("parameters", "left", "fields"),
    [
        (None, {}, {}),
        ({"custom": {"int64": 5}}, {"custom": {"int64": 5}}, {}),
        ({"priority": {"int64": 3}}, {}, {"priority": 3}),
        ({"priority": {"uint64": 3}}, {}, {"priority": 3}),
        ({"timeout": {"int64": 1500}}, {}, {"timeout_us": 1500}),
        ({"sequence_id": {"int64": 7}}, {}, {"correlation_id": 7}),
        ({"sequence_id": {"string": "s-7"}}, {}, {"correlation_id": "s-7"}),
        ({"sequence_start": {"bool": True}}, {}, {"flags": SEQUENCE_START}),
        (
            {"sequence_start": {"bool": True}, "sequence_end": {"bool": True}},
            {},
            {"flags": SEQUENCE_START | SEQUENCE_END},
        ),
        ({"sequence_start": {"bool": False}, "sequence_end": {"bool": False}}, {}, {}),
        # the one 'triton_' key Triton 2.51 knows stays for the worker, which acts on it
        (
            {"triton_enable_empty_final_response": {"bool": True}},
            {"triton_enable_empty_final_response": {"bool": True}},
            {},
        ),
        # bare values, typed by their Python type
        (
            {"priority": 2, "timeout": 10, "sequence_end": True, "x": "y"},
            {"x": "y"},
            {"priority": 2, "timeout_us": 10, "flags": SEQUENCE_END},
        ),
    ],
)
def test_reserved_parameters_become_request_fields(parameters, left, fields) -> None:
    assert split_request_fields(parameters) == (left, fields)


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (
            {"sequence_id": {"double": 1.5}},
            "invalid value type for 'sequence_id' parameter, expected int64_param or string_param.",
        ),
        ({"sequence_start": {"int64": 1}}, "invalid value type for 'sequence_start' parameter, expected bool_param."),
        ({"sequence_end": {"string": "yes"}}, "invalid value type for 'sequence_end' parameter, expected bool_param."),
        (
            {"priority": {"string": "high"}},
            "invalid value type for 'priority' parameter, expected int64_param or uint64_param.",
        ),
        ({"priority": {"int64": -1}}, "invalid value for 'priority', expected value >= 0."),
        ({"timeout": {"double": 0.5}}, "invalid value type for 'timeout' parameter, expected int64_param."),
        (
            {"triton_mine": {"int64": 1}},
            "parameter keys starting with 'triton_' are reserved for Triton usage. Only the following keys starting "
            "with 'triton_' are allowed: triton_enable_empty_final_response",
        ),
    ],
)
def test_malformed_reserved_parameters_are_refused_in_tritons_words(parameters, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        split_request_fields(parameters)
    assert info.value.message == message
