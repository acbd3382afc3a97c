# SPDX-License-Identifier: Apache-2.0
"""The load generator's options: models and weights, variable dims, validation, and passing flags on."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from triton_dynamo.errors import ConfigurationError
from triton_dynamo.loadgen.config import LoadConfig, ModelChoice, add_arguments, parse_dims, parse_models, to_argv


def test_models_with_weights_and_kinds() -> None:
    assert parse_models("identity:3, add_sub , repeat:0.5:stream") == (
        ModelChoice("identity", 3.0, "auto"),
        ModelChoice("add_sub", 1.0, "auto"),
        ModelChoice("repeat", 0.5, "stream"),
    )
    assert parse_models("") == ()


@pytest.mark.parametrize("text", ["identity:0", "identity:-1", "identity:x", ":2", "identity:1:grpc", "a,a"])
def test_bad_models_are_refused_naming_the_item(text: str) -> None:
    with pytest.raises(ConfigurationError, match="--models"):
        parse_models(text)


def test_a_model_may_be_sent_both_ways() -> None:
    assert [c.kind for c in parse_models("repeat:1:stream,repeat:1:unary")] == ["stream", "unary"]


def test_variable_dims_per_model_win_over_bare_input_names() -> None:
    config = LoadConfig(variable_dims="VALUES=3,repeat.VALUES=5,TEXT=2")
    assert config.dims_for("repeat") == {"VALUES": 5, "TEXT": 2}
    assert config.dims_for("other") == {"VALUES": 3, "TEXT": 2}
    with pytest.raises(ConfigurationError, match="--variable-dims"):
        parse_dims("VALUES")


def test_environment_then_flags() -> None:
    env = {
        "TRITON_DYNAMO_LOAD_MODELS": "identity:2",
        "TRITON_DYNAMO_LOAD_CHECK": "true",
        "TRITON_DYNAMO_LOAD_SHAPE": "step",
    }
    options = argparse.Namespace(models="add_sub", check=None, shape=None, step_s="2.5")
    config = LoadConfig.from_options(options, env)
    assert (config.models, config.check, config.shape, config.step_s) == ("add_sub", True, "step", 2.5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shape": "ramp"},
        {"step_users": 0},
        {"step_users": 8, "step_max_users": 4},
        {"batch_size": 0},
        {"request_timeout_s": 0},
        {"knee_min_gain": -0.1},
        {"metrics_port": 70000},
    ],
)
def test_invalid_configurations_are_refused(kwargs: dict) -> None:
    values = {k: str(v) for k, v in kwargs.items()}
    with pytest.raises(ConfigurationError):
        LoadConfig.from_options(argparse.Namespace(**values), env={})


def test_flags_parse_and_pass_on_unchanged() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--models", "identity:2", "--check", "--requests-file", "r.jsonl", "--step-s", "3"])
    argv = to_argv(args)
    assert argv == ["--models", "identity:2", "--requests-file", "r.jsonl", "--check", "--step-s", "3"]
    again = parser.parse_args(argv)
    config = LoadConfig.from_options(again, env={})
    assert config.requests_file == Path("r.jsonl") and config.check and config.step_s == 3.0
    assert to_argv(parser.parse_args(["--no-check"])) == ["--no-check"]
