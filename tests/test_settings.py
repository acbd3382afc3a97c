# SPDX-License-Identifier: Apache-2.0
"""The settings machinery: types from annotations, and the worker's command line written from its config and read
back (both ways), which is how `triton-dynamo up` starts its workers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from triton_dynamo import settings
from triton_dynamo.errors import ConfigurationError
from triton_dynamo.stack.config import StackConfig
from triton_dynamo.stack.launcher import build_specs
from triton_dynamo.worker.config import ServingSettings, WorkerConfig

REPO = Path(__file__).resolve().parent.parent / "model_repo"


@pytest.mark.parametrize(
    "config",
    [
        WorkerConfig(model_repository=REPO),
        WorkerConfig(
            model_repository=REPO,
            model_names=("identity", "add_sub"),
            max_inflight=14,
            grace_period_s=2.5,
            system_port=8100,
            metrics_port=8200,
            ready_file=Path("/tmp/ready"),
            trace_requests=False,
            telemetry=False,
            discovery_backend="file",
            request_plane="nats",
            log_verbose=2,
        ),
    ],
    ids=["defaults", "every-kind"],
)
def test_a_config_survives_its_command_line(config: WorkerConfig) -> None:
    argv = settings.to_args(config)
    assert WorkerConfig.from_args(argv, env={}) == config
    # and the command line read back writes the same command line
    assert settings.to_args(WorkerConfig.from_args(argv, env={})) == argv


def test_the_environment_cannot_change_a_written_command_line() -> None:
    config = WorkerConfig(model_repository=REPO, max_inflight=3)
    noisy = {"TRITON_DYNAMO_MAX_INFLIGHT": "99", "TRITON_DYNAMO_TELEMETRY": "0", "DYN_NAMESPACE": "other"}
    assert WorkerConfig.from_args(settings.to_args(config), env=noisy) == config


def test_up_starts_each_worker_with_its_serving_settings_and_the_rest_from_the_environment(tmp_path: Path) -> None:
    stack = StackConfig(
        model_repository=REPO, workers=2, model_names=("identity",), max_inflight=5, grace_period_s=7.0, proxy="none"
    )
    specs = {spec.name: spec for spec in build_specs(stack, tmp_path, environ={"TRITON_DYNAMO_LOG_VERBOSE": "1"})}
    for index in range(2):
        argv = specs[f"worker-{index}"].argv
        worker = WorkerConfig.from_args(argv[argv.index("worker") + 1 :], env={})
        assert worker.serving() == stack.serving()
        assert worker.system_port == stack.worker_ports[index]
        assert worker.metrics_port == stack.worker_metrics_ports[index]
        assert worker.log_verbose == 1  # not decided by up: the environment's, as before


def test_the_shared_settings_are_declared_once() -> None:
    shared = {f.name: f for f in dataclasses.fields(ServingSettings)}
    assert set(shared) == {"model_repository", "model_names", "max_request_bytes", "max_inflight", "grace_period_s"}
    for cls in (WorkerConfig, StackConfig):
        assert all(cls.__dataclass_fields__[name] is field for name, field in shared.items()), cls


def test_no_environment_variable_has_two_meanings() -> None:
    worker_env = {known.env: name for name, known in settings.names(WorkerConfig).items()}
    stack_env = {known.env: name for name, known in settings.names(StackConfig).items()}
    for env, name in stack_env.items():
        assert worker_env.get(env, name) == name, f"{env} is {name} for up and {worker_env[env]} for a worker"


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        (
            "TRITON_DYNAMO_MAX_INFLIGHT",
            "many",
            "--max-inflight / TRITON_DYNAMO_MAX_INFLIGHT: 'many' is not a valid int",
        ),
        ("TRITON_DYNAMO_GRACE_PERIOD_S", "soon", "'soon' is not a valid float"),
        ("TRITON_DYNAMO_TELEMETRY", "maybe", "'maybe' is not a valid bool"),
        ("DYN_REQUEST_PLANE", "pigeon", "'pigeon' is not one of tcp, nats, http"),
    ],
)
def test_a_bad_value_names_its_flag_and_variable(variable: str, value: str, said: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        WorkerConfig.from_env({variable: value, "TRITON_DYNAMO_MODEL_REPOSITORY": str(REPO)})
    assert said in str(caught.value)


def test_a_field_is_given_by_its_name_and_its_declaring_class_prefix() -> None:
    from triton_dynamo.loadgen.cli import LoadtestConfig

    known = settings.names(LoadtestConfig)
    # declared by StackAddress (TRITON_DYNAMO_), inherited by the load test (TRITON_DYNAMO_LOAD_)
    assert known["url"] == settings.Names("--url", "TRITON_DYNAMO_URL", (), ())
    assert known["users"] == settings.Names("--users", "TRITON_DYNAMO_LOAD_USERS", (), ())
    assert settings.names(StackConfig)["model_names"].flag == "--model-name"  # declared where it differs


def test_a_class_without_a_prefix_must_name_its_variables() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Bare:
        port: int = settings.setting(1, help="a port")

    with pytest.raises(TypeError, match=r"Bare\.port names no variable and Bare has no ENV_PREFIX"):
        settings.names(Bare)


def test_the_client_commands_build_their_config_from_a_parse() -> None:
    from triton_dynamo.client.config import ClientConfig

    args = ClientConfig.parser("triton-dynamo models", "").parse_args(["--url", "10.0.0.5:8001"])
    config = ClientConfig.from_parsed(args, env={})
    assert (config.url, config.metrics_address) == ("10.0.0.5:8001", "http://10.0.0.5:8002")
