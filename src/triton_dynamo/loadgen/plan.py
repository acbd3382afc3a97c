# SPDX-License-Identifier: Apache-2.0
"""What to send: the endpoints (model and kind) with their weights, and for each a few ready-made requests.

Built once per Locust process when a test starts, from the configuration, the requests file (if any) and each
model's metadata and config fetched from the server. Inputs come from the file's samples for the model when it has
some, and are generated from the model's metadata otherwise (``--samples-per-model`` requests with different seeds;
-1 dims sized by ``--variable-dim`` / ``--variable-dims``; every input when all of them are optional, as echo_all's).
"""

from __future__ import annotations

import bisect
import itertools
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from tritonclient.grpc import service_pb2

from ..client.inputs import synthesize_inputs
from ..errors import ConfigurationError
from .config import DEFAULT_MODEL, LoadConfig, ModelChoice
from .requests_file import Outputs, Sample, load_samples
from .wire import build_request

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """One request ready to send, with the inputs and expectation its answer is checked against."""

    request: service_pb2.ModelInferRequest
    inputs: Mapping[str, np.ndarray]
    expected: tuple[Outputs, ...] | None = None


@dataclass
class Target:
    """An endpoint of the test: a model over one kind of RPC, its weight and its requests, sent in turn."""

    model: str
    kind: str
    weight: float
    prepared: Sequence[Prepared]
    _turn: itertools.cycle = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._turn = itertools.cycle(self.prepared)

    @property
    def name(self) -> str:
        return f"{self.model}/{self.kind}"

    def next_request(self) -> Prepared:
        return next(self._turn)


class Plan:
    """The targets, picked at random in proportion to their weights."""

    def __init__(self, targets: Sequence[Target]) -> None:
        if not targets:
            raise ConfigurationError("nothing to send: no model was chosen")
        self.targets = list(targets)
        self._cumulative = list(itertools.accumulate(t.weight for t in self.targets))

    def pick(self, rng: random.Random) -> Target:
        if len(self.targets) == 1:
            return self.targets[0]
        return self.targets[bisect.bisect_right(self._cumulative, rng.random() * self._cumulative[-1])]


def is_decoupled(config: Mapping) -> bool:
    return bool(config.get("model_transaction_policy", {}).get("decoupled", False))


def generated_inputs(metadata: Mapping, model_config: Mapping, config: LoadConfig, model: str, seed: int) -> dict:
    optional = {i["name"] for i in model_config.get("input", []) if i.get("optional")}
    every_input_optional = bool(metadata["inputs"]) and all(i["name"] in optional for i in metadata["inputs"])
    return synthesize_inputs(
        metadata,
        model_config,
        batch_size=config.batch_size,
        variable_dim=config.variable_dim,
        variable_dims=config.dims_for(model),
        seed=seed,
        include_optional=every_input_optional,
    )


def build_plan(
    config: LoadConfig,
    describe: Callable[[str], tuple[dict, dict]],
) -> Plan:
    """The plan for ``config``; ``describe(model)`` returns the model's (metadata, config) from the server."""
    samples: dict[str, list[Sample]] = load_samples(config.requests_file) if config.requests_file else {}
    choices = config.model_choices or tuple(ModelChoice(m, 1.0) for m in samples) or (ModelChoice(DEFAULT_MODEL, 1),)
    targets = []
    for choice in choices:
        metadata, model_config = describe(choice.model)
        kind = choice.kind if choice.kind != "auto" else ("stream" if is_decoupled(model_config) else "unary")
        stream = kind == "stream"
        if choice.model in samples:
            prepared = [
                Prepared(build_request(s.model, s.inputs, stream=stream), s.inputs, s.expected)
                for s in samples[choice.model]
            ]
        else:
            prepared = []
            for i in range(config.samples_per_model):
                inputs = generated_inputs(metadata, model_config, config, choice.model, config.seed + i)
                prepared.append(Prepared(build_request(choice.model, inputs, stream=stream), inputs))
        targets.append(Target(choice.model, kind, choice.weight, prepared))
        logger.info(
            "%s: weight %g, %d request(s) %s",
            f"{choice.model}/{kind}",
            choice.weight,
            len(prepared),
            "from the requests file" if choice.model in samples else "generated from its metadata",
        )
    return Plan(targets)
