# SPDX-License-Identifier: Apache-2.0
"""The load generator's configuration: one typed object whose fields carry their Locust flag and environment variable.

The same fields are options of ``locust -f loadtest/locustfile.py`` (added to Locust's parser) and of
``triton-dynamo loadtest`` (which passes them on). Precedence: flag, then variable, then default.

Example:
    >>> config = LoadConfig(models="identity:3,repeat:1:stream", variable_dims="repeat.VALUES=2")
    >>> [(c.model, c.weight, c.kind) for c in config.model_choices]
    [('identity', 3.0, 'auto'), ('repeat', 1.0, 'stream')]
    >>> config.dims_for("repeat")
    {'VALUES': 2}
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .. import settings
from ..errors import ConfigurationError
from ..settings import setting

KINDS = ("unary", "stream")
SHAPES = ("constant", "step", "spike")

DEFAULT_MODEL = "identity"


@dataclass(frozen=True)
class ModelChoice:
    """One model to send requests to, how often relative to the others, and over which RPC (auto: stream for
    decoupled models, unary otherwise)."""

    model: str
    weight: float
    kind: str = "auto"


def parse_models(text: str) -> tuple[ModelChoice, ...]:
    """``MODEL[:WEIGHT[:unary|stream]]`` items, comma-separated; a model may appear once per kind."""
    choices: list[ModelChoice] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, rest = item.partition(":")
        weight_text, _, kind = rest.partition(":")
        try:
            weight = float(weight_text) if weight_text else 1.0
        except ValueError:
            raise ConfigurationError(f"--models: weight of {item!r} is not a number") from None
        kind = kind or "auto"
        if not name or weight <= 0 or kind not in ("auto", *KINDS):
            raise ConfigurationError(f"--models: {item!r} is not MODEL[:WEIGHT>0[:unary|stream]]")
        if any(c.model == name and c.kind == kind for c in choices):
            raise ConfigurationError(f"--models: {name!r} is given twice")
        choices.append(ModelChoice(name, weight, kind))
    return tuple(choices)


def parse_dims(text: str) -> dict[tuple[str, str], int]:
    """``[MODEL.]INPUT=SIZE`` items, comma-separated -> {(model or "", input): size}."""
    dims: dict[tuple[str, str], int] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, size = item.partition("=")
        model, _, name = key.rpartition(".")
        if not sep or not name or not size.strip().isdigit() or int(size) < 0:
            raise ConfigurationError(f"--variable-dims: {item!r} is not [MODEL.]INPUT=SIZE")
        dims[(model, name)] = int(size)
    return dims


@dataclass(frozen=True, kw_only=True)
class LoadConfig:
    """Everything a Locust process of the load generator needs; validated when built."""

    ENV_PREFIX: ClassVar[str] = "TRITON_DYNAMO_LOAD_"

    models: str = setting(
        "",
        help="models and weights, MODEL[:WEIGHT[:unary|stream]] comma-separated, e.g. identity:3,add_sub:1; "
        f"empty: the models of --requests-file, or {DEFAULT_MODEL}",
    )
    requests_file: Path | None = setting(
        None,
        help="JSON lines of sample requests {model, inputs: {NAME: {datatype, shape, data}}, expected?}; "
        "models without samples get generated inputs",
    )
    variable_dim: int = setting(16, help="size of -1 dims of generated inputs")
    variable_dims: str = setting(
        "",
        help="sizes of -1 dims per input, [MODEL.]INPUT=SIZE comma-separated, e.g. repeat.VALUES=4",
    )
    batch_size: int = setting(1, help="batch size of generated inputs")
    seed: int = setting(0, help="seed of generated inputs")
    samples_per_model: int = setting(8, help="distinct generated requests per model, sent in turn")
    check: bool = setting(
        False,
        help="check every answer (known sample models, and samples with 'expected'); a wrong one is a failure",
    )
    check_model_repository: Path = setting(
        Path("model_repo"),
        help="repository holding classifier/1/model.py, whose weights check the classifier's answers",
    )
    request_timeout_s: float = setting(30.0, help="deadline of each request")
    think_time_s: float = setting(0.0, help="pause of each user between requests")
    grpc_connections: int = setting(1, help="HTTP/2 connections per Locust process, shared by its users in turn")
    shape: str = setting(
        "constant",
        help="constant (-u users at -r per s for -t), step (ramp to find the knee) or spike",
        choices=SHAPES,
    )
    step_users: int = setting(4, help="step shape: users added at each step")
    step_s: float = setting(10.0, help="step shape: seconds each step lasts")
    step_max_users: int = setting(32, help="step shape: users of the last step")
    settle_s: float = setting(
        1.0,
        help="step shape: seconds after a step's users are spawned before its throughput counts",
    )
    knee_min_gain: float = setting(
        0.05,
        help="step shape: a step raises throughput when it beats the best earlier step by this fraction",
    )
    spike_users: int = setting(50, help="spike shape: users during the spike")
    spike_at_s: float = setting(10.0, help="spike shape: when the spike starts")
    spike_duration_s: float = setting(10.0, help="spike shape: its length")
    summary_json: Path | None = setting(
        None,
        help="write the JSON summary here at the end; default: <--csv prefix>_summary.json when --csv is given",
    )
    metrics_port: int = setting(
        9646,
        flag="--client-metrics-port",
        help="Prometheus /metrics port of a master or standalone Locust; 0: off",
    )
    worker_metrics_port: int = setting(
        9647,
        flag="--worker-client-metrics-port",
        help="Prometheus /metrics port of a Locust worker, the next free one when taken; 0: off",
    )

    def __post_init__(self) -> None:
        self.model_choices  # noqa: B018 -- parsing is the validation
        parse_dims(self.variable_dims)
        if self.variable_dim < 0 or self.batch_size < 1 or self.samples_per_model < 1 or self.grpc_connections < 1:
            raise ConfigurationError(
                "--variable-dim must be >= 0, --batch-size, --samples-per-model and --grpc-connections >= 1"
            )
        if self.request_timeout_s <= 0 or self.think_time_s < 0:
            raise ConfigurationError("--request-timeout-s must be positive and --think-time-s not negative")
        if self.step_users < 1 or self.step_max_users < self.step_users or self.step_s <= 0 or self.settle_s < 0:
            raise ConfigurationError(
                "step shape: need --step-users >= 1, --step-max-users >= --step-users, --step-s > 0"
            )
        if self.spike_users < 1 or self.spike_at_s < 0 or self.spike_duration_s <= 0:
            raise ConfigurationError("spike shape: need --spike-users >= 1, --spike-at-s >= 0, --spike-duration-s > 0")
        if self.knee_min_gain < 0:
            raise ConfigurationError("--knee-min-gain must not be negative")
        if not (0 <= self.metrics_port < 65536 and 0 <= self.worker_metrics_port < 65536):
            raise ConfigurationError("metrics ports must be between 0 (off) and 65535")

    @property
    def model_choices(self) -> tuple[ModelChoice, ...]:
        """The --models choices; none when --models is empty (then the requests file's models, or DEFAULT_MODEL)."""
        return parse_models(self.models)

    def dims_for(self, model: str) -> dict[str, int]:
        """Sizes of -1 dims for ``model``'s inputs: ``MODEL.INPUT`` entries win over bare ``INPUT`` ones."""
        dims = parse_dims(self.variable_dims)
        sizes = {name: size for (m, name), size in dims.items() if not m}
        sizes.update({name: size for (m, name), size in dims.items() if m == model})
        return sizes

    @classmethod
    def from_options(cls, options: Any, env: Mapping[str, str] | None = None) -> LoadConfig:
        """From parsed options (Locust's or ours: attributes named as the fields, None when not given), then env."""
        given = {f.name: getattr(options, f.name, None) for f in dataclasses.fields(cls)}
        return settings.from_env(cls, env, **given)


def add_arguments(parser: Any, cls: type = LoadConfig, title: str = "triton-dynamo load generator") -> None:
    """One option per field of ``cls`` on ``parser`` (an argparse parser or Locust's); options left out parse as
    None so that the environment, then the default, apply."""
    group, given_as = parser.add_argument_group(title), settings.names(cls)
    for f in dataclasses.fields(cls):
        meta, flag = f.metadata, given_as[f.name].flag
        default = "none" if f.default is None else (f.default if f.default != "" else '""')
        help_text = f"{meta['help']} (env {given_as[f.name].env}; default {default})"
        if str(f.type) == "bool":
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            metavar = flag.removeprefix("--").upper().replace("-", "_")
            group.add_argument(
                flag, dest=f.name, choices=meta["choices"], default=None, metavar=metavar, help=help_text
            )


def to_argv(options: Any, cls: type = LoadConfig) -> list[str]:
    """The flags of ``cls`` that were given in ``options``, as command-line arguments to pass on."""
    argv: list[str] = []
    for f in dataclasses.fields(cls):
        value, flag = getattr(options, f.name, None), settings.names(cls)[f.name].flag
        if value is None:
            continue
        if str(f.type) == "bool":
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, str(value)]
    return argv
