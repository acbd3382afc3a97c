# SPDX-License-Identifier: Apache-2.0
"""Checks of a request against a model's config, with the messages the client reads."""

from __future__ import annotations

import pytest

from triton_dynamo.errors import InvalidInput
from triton_dynamo.worker.schema import ModelSchema, queue_policy_limits

ADD_SUB = ModelSchema.from_config(
    {
        "name": "add_sub",
        "max_batch_size": 64,
        "input": [
            {"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [4]},
            {"name": "INPUT1", "data_type": "TYPE_FP32", "dims": [4]},
        ],
        "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [4]}],
        "dynamic_batching": {},
    }
)
REPEAT = ModelSchema.from_config(
    {
        "name": "repeat",
        "max_batch_size": 0,
        "model_transaction_policy": {"decoupled": True},
        "input": [
            {"name": "VALUES", "data_type": "TYPE_INT32", "dims": [-1]},
            {"name": "DELAY_MS", "data_type": "TYPE_INT32", "dims": [1], "optional": True},
        ],
        "output": [{"name": "VALUE", "data_type": "TYPE_INT32", "dims": [1]}],
    }
)
TEXT = ModelSchema.from_config(
    {"name": "t", "input": [{"name": "T", "data_type": "TYPE_STRING", "dims": [-1]}], "sequence_batching": {}}
)


def test_config_is_read() -> None:
    assert (ADD_SUB.max_batch_size, ADD_SUB.decoupled, ADD_SUB.stateful) == (64, False, False)
    assert (REPEAT.decoupled, REPEAT.inputs["DELAY_MS"].optional) == (True, True)
    assert (TEXT.inputs["T"].data_type, TEXT.stateful) == ("BYTES", True)


@pytest.mark.parametrize(
    ("schema", "inputs"),
    [
        (ADD_SUB, {"INPUT0": ("FP32", (2, 4)), "INPUT1": ("FP32", (2, 4))}),
        (REPEAT, {"VALUES": ("INT32", (0,))}),
        (REPEAT, {"VALUES": ("INT32", (5,)), "DELAY_MS": ("INT32", (1,))}),
        (TEXT, {"T": ("BYTES", (3,))}),
    ],
)
def test_good_requests_pass(schema: ModelSchema, inputs: dict) -> None:
    schema.check_inputs(inputs)


@pytest.mark.parametrize(
    ("schema", "inputs", "message"),
    [
        (
            ADD_SUB,
            {"INPUT0": ("FP32", (1, 4))},
            "model 'add_sub' needs input INPUT1 (FP32 [-1, 4]); the request sent INPUT0",
        ),
        (ADD_SUB, {"INPUT0": ("FP16", (1, 4)), "INPUT1": ("FP32", (1, 4))}, "is FP32; the request sent FP16"),
        (
            ADD_SUB,
            {"INPUT0": ("FP32", (1, 5)), "INPUT1": ("FP32", (1, 4))},
            "has shape [-1, 4] (batch of up to 64 first)",
        ),
        (ADD_SUB, {"INPUT0": ("FP32", (4,)), "INPUT1": ("FP32", (4,))}, "has shape [-1, 4]"),
        (ADD_SUB, {"INPUT0": ("FP32", ()), "INPUT1": ("FP32", ())}, "needs a batch dimension"),
        (ADD_SUB, {"INPUT0": ("FP32", (65, 4)), "INPUT1": ("FP32", (65, 4))}, "exceeds the max_batch_size 64"),
        (ADD_SUB, {"INPUT0": ("FP32", (1, 4)), "INPUT1": ("FP32", (2, 4))}, "must share their batch size; got [1, 2]"),
        (REPEAT, {"VALUES": ("INT32", (2, 2))}, "has shape [-1]; the request sent [2, 2]"),
        (
            REPEAT,
            {"X": ("INT32", (1,))},
            "model 'repeat' has no input 'X'; its inputs are: VALUES (INT32 [-1]), DELAY_MS (INT32 [1])",
        ),
    ],
)
def test_bad_requests_are_named(schema: ModelSchema, inputs: dict, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        schema.check_inputs(inputs)
    assert message in caught.value.message


def test_unknown_requested_output() -> None:
    REPEAT.check_outputs(["VALUE"])
    with pytest.raises(InvalidInput, match="model 'repeat' has no output 'NOPE'; its outputs are: VALUE"):
        REPEAT.check_outputs(["NOPE"])


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, []),
        ({"dynamic_batching": {}}, []),
        ({"dynamic_batching": {"default_queue_policy": {"max_queue_size": "0"}}}, []),
        (
            {"dynamic_batching": {"default_queue_policy": {"max_queue_size": "8"}}},
            ["default_queue_policy.max_queue_size=8"],
        ),
        (
            {"dynamic_batching": {"default_queue_policy": {"default_timeout_microseconds": "400000"}}},
            ["default_queue_policy.default_timeout_microseconds=400000"],
        ),
        (
            {"dynamic_batching": {"priority_queue_policy": {"2": {"max_queue_size": 4}}}},
            ["priority_queue_policy[2].max_queue_size=4"],
        ),
    ],
)
def test_queue_policy_limits_found_where_triton_reads_them(config: dict, expected: list[str]) -> None:
    assert queue_policy_limits(config) == expected
