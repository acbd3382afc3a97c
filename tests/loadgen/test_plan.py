# SPDX-License-Identifier: Apache-2.0
"""The plan: endpoints from --models (or the requests file), kinds from the model config, inputs generated or read."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from triton_dynamo.errors import ConfigurationError
from triton_dynamo.loadgen.config import LoadConfig
from triton_dynamo.loadgen.plan import Plan, Target, build_plan

MODELS = {
    "identity": (
        {"inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [-1]}]},
        {"max_batch_size": 0},
    ),
    "add_sub": (
        {"inputs": [{"name": n, "datatype": "FP32", "shape": [-1, 4]} for n in ("INPUT0", "INPUT1")]},
        {"max_batch_size": 64},
    ),
    "repeat": (
        {
            "inputs": [
                {"name": "VALUES", "datatype": "INT32", "shape": [-1]},
                {"name": "DELAY_MS", "datatype": "INT32", "shape": [1]},
            ]
        },
        {"model_transaction_policy": {"decoupled": True}, "input": [{"name": "DELAY_MS", "optional": True}]},
    ),
    "echo_all": (
        {"inputs": [{"name": f"IN_{t}", "datatype": t, "shape": [-1]} for t in ("BYTES", "BF16")]},
        {"input": [{"name": "IN_BYTES", "optional": True}, {"name": "IN_BF16", "optional": True}]},
    ),
}


def describe(model: str) -> tuple[dict, dict]:
    return MODELS[model]


def test_kinds_weights_and_generated_inputs() -> None:
    config = LoadConfig(
        models="identity:3,repeat:1,add_sub:2:stream,echo_all",
        variable_dims="repeat.VALUES=3",
        variable_dim=5,
        batch_size=2,
        samples_per_model=4,
    )
    plan = build_plan(config, describe)
    assert [(t.name, t.weight) for t in plan.targets] == [
        ("identity/unary", 3.0),
        ("repeat/stream", 1.0),
        ("add_sub/stream", 2.0),
        ("echo_all/unary", 1.0),
    ]
    identity, repeat, add_sub, echo_all = plan.targets
    assert len(identity.prepared) == 4
    assert [p.inputs["INPUT0"].shape for p in identity.prepared] == [(5,)] * 4
    assert len({p.inputs["INPUT0"].tobytes() for p in identity.prepared}) == 4  # different seeds
    assert set(repeat.prepared[0].inputs) == {"VALUES"} and repeat.prepared[0].inputs["VALUES"].shape == (3,)
    assert repeat.prepared[0].request.parameters["triton_enable_empty_final_response"].bool_param
    assert add_sub.prepared[0].inputs["INPUT0"].shape == (2, 4)  # batched
    assert set(echo_all.prepared[0].inputs) == {"IN_BYTES", "IN_BF16"}  # all optional: all sent


def test_samples_from_the_file_replace_generated_inputs(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    tensor = {"datatype": "INT32", "shape": [2], "data": [4, 5]}
    path.write_text(json.dumps({"model": "identity", "inputs": {"INPUT0": tensor}, "expected": {"OUTPUT0": tensor}}))
    plan = build_plan(LoadConfig(requests_file=path), describe)
    (target,) = plan.targets
    assert target.name == "identity/unary"
    (prepared,) = target.prepared
    assert prepared.inputs["INPUT0"].tolist() == [4, 5] and prepared.expected[0]["OUTPUT0"].tolist() == [4, 5]
    assert target.next_request() is target.next_request()
    mixed = build_plan(LoadConfig(requests_file=path, models="identity,repeat"), describe)
    assert [len(t.prepared) for t in mixed.targets] == [1, 8]


def test_the_default_is_identity() -> None:
    assert [t.name for t in build_plan(LoadConfig(), describe).targets] == ["identity/unary"]


def test_picks_follow_the_weights() -> None:
    prepared = [object()]
    plan = Plan([Target("a", "unary", 3.0, prepared), Target("b", "unary", 1.0, prepared)])
    rng = random.Random(7)
    counts = Counter(plan.pick(rng).model for _ in range(20000))
    assert counts["a"] / counts["b"] == pytest.approx(3.0, rel=0.05)
    with pytest.raises(ConfigurationError):
        Plan([])


def test_requests_go_round_robin_over_the_prepared_ones() -> None:
    target = Target("a", "unary", 1.0, [1, 2, 3])
    assert [target.next_request() for _ in range(5)] == [1, 2, 3, 1, 2]
