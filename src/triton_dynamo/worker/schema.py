# SPDX-License-Identifier: Apache-2.0
"""What a model accepts, from its Triton config, and the checks that turn a bad request into a message naming the
problem before Triton sees it. Dynamo's frontend checks none of this (an INT32 tensor for an FP32 input reaches the
worker), and its client only ever reads our message, so the message is the product.

Example:
    >>> schema = ModelSchema.from_config({"name": "identity", "max_batch_size": 0,
    ...     "input": [{"name": "INPUT0", "data_type": "TYPE_INT32", "dims": [-1]}],
    ...     "output": [{"name": "OUTPUT0", "data_type": "TYPE_INT32", "dims": [-1]}]})
    >>> schema.check_input("INPUT0", "FP32", (3,))
    Traceback (most recent call last):
    ...
    triton_dynamo.errors.InvalidInput: [INVALID_ARGUMENT] input 'INPUT0' of model 'identity' is INT32; the request ...
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import InvalidInput


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model config."""

    name: str
    data_type: str  # Triton's name: FP32, BYTES, ...
    dims: tuple[int, ...]  # without the batch dimension; -1 is any size
    optional: bool = False
    is_shape_tensor: bool = False

    def describe(self, max_batch_size: int) -> str:
        dims = ([-1] if max_batch_size > 0 else []) + list(self.dims)
        return f"{self.name} ({self.data_type} {dims})"


def _data_type(config_type: str) -> str:
    name = config_type.removeprefix("TYPE_")
    return "BYTES" if name == "STRING" else name


def _specs(entries: Iterable[Mapping]) -> dict[str, TensorSpec]:
    specs = {}
    for entry in entries:
        dims = entry.get("dims", [])
        specs[entry["name"]] = TensorSpec(
            name=entry["name"],
            data_type=_data_type(entry.get("data_type", "TYPE_INVALID")),
            dims=tuple(int(d) for d in dims),
            optional=bool(entry.get("optional", False)),
            is_shape_tensor=bool(entry.get("is_shape_tensor", False)),
        )
    return specs


@dataclass(frozen=True)
class ModelSchema:
    """A model's interface as its Triton config states it."""

    name: str
    max_batch_size: int
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    decoupled: bool = False
    stateful: bool = False

    @classmethod
    def from_config(cls, config: Mapping) -> ModelSchema:
        """From Triton's model config as JSON (``Model.config()``)."""
        return cls(
            name=config["name"],
            max_batch_size=int(config.get("max_batch_size", 0)),
            inputs=_specs(config.get("input", [])),
            outputs=_specs(config.get("output", [])),
            decoupled=bool(config.get("model_transaction_policy", {}).get("decoupled", False)),
            stateful="sequence_batching" in config,
        )

    def _listing(self, specs: Mapping[str, TensorSpec]) -> str:
        return ", ".join(spec.describe(self.max_batch_size) for spec in specs.values()) or "none"

    def check_input(self, name: str, data_type: str, shape: tuple[int, ...]) -> None:
        """Raise :class:`InvalidInput` unless ``name`` is an input of this model with this type and a fitting shape."""
        spec = self.inputs.get(name)
        if spec is None:
            raise InvalidInput(
                f"model {self.name!r} has no input {name!r}; its inputs are: {self._listing(self.inputs)}"
            )
        if data_type != spec.data_type:
            raise InvalidInput(
                f"input {name!r} of model {self.name!r} is {spec.data_type}; the request sent {data_type}"
            )
        if any(d < 0 for d in shape):
            raise InvalidInput(f"input {name!r} has a negative dimension in its shape {list(shape)}")
        if spec.is_shape_tensor:
            return  # shape tensors follow rules of their own; Triton checks them
        expected = spec.dims
        body = shape
        if self.max_batch_size > 0:
            if not shape:
                raise InvalidInput(
                    f"input {name!r} of model {self.name!r} needs a batch dimension: expected "
                    f"{[-1, *expected]}, got a scalar"
                )
            if shape[0] > self.max_batch_size:
                raise InvalidInput(
                    f"batch size {shape[0]} of input {name!r} exceeds the max_batch_size "
                    f"{self.max_batch_size} of model {self.name!r}"
                )
            body = shape[1:]
        if len(body) != len(expected) or any(e != -1 and e != d for e, d in zip(expected, body, strict=True)):
            batch = f" (batch of up to {self.max_batch_size} first)" if self.max_batch_size > 0 else ""
            shown = [-1, *expected] if self.max_batch_size > 0 else list(expected)
            raise InvalidInput(
                f"input {name!r} of model {self.name!r} has shape {shown}{batch}; the request sent {list(shape)}"
            )

    def check_inputs(self, inputs: Mapping[str, tuple[str, tuple[int, ...]]]) -> None:
        """Check every input (name -> (data type, shape)), that none required is missing, and one batch size."""
        for name, (data_type, shape) in inputs.items():
            self.check_input(name, data_type, shape)
        missing = [spec for n, spec in self.inputs.items() if not spec.optional and n not in inputs]
        if missing:
            sent = ", ".join(inputs) or "no inputs"
            needed = ", ".join(s.describe(self.max_batch_size) for s in missing)
            raise InvalidInput(f"model {self.name!r} needs input {needed}; the request sent {sent}")
        if self.max_batch_size > 0:
            batches = {shape[0] for n, (_, shape) in inputs.items() if shape and not self.inputs[n].is_shape_tensor}
            if len(batches) > 1:
                raise InvalidInput(
                    f"inputs of one request to model {self.name!r} must share their batch size; got {sorted(batches)}"
                )

    def check_outputs(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self.outputs:
                raise InvalidInput(
                    f"model {self.name!r} has no output {name!r}; its outputs are: {self._listing(self.outputs)}"
                )


def queue_policy_limits(config: Mapping) -> list[str]:
    """Where a model config limits or times out Triton's queue (``dynamic_batching``'s default and per-priority
    queue policies), as readable descriptions; empty when it does neither.

    Such a policy turns off the dynamic batcher's prefetch in Triton 24.03 and later, and its wait for an idle
    instance can then miss the wake-up: with the queue full, every instance of the model may idle up to 500 ms (see
    model_repo/slow/config.pbtxt). The worker warns about it at start.

    Example:
        >>> queue_policy_limits({"dynamic_batching": {"default_queue_policy": {"max_queue_size": "8"}}})
        ['default_queue_policy.max_queue_size=8']
        >>> queue_policy_limits({"dynamic_batching": {}})
        []
    """
    batching = config.get("dynamic_batching") or {}
    policies = {"default_queue_policy": batching.get("default_queue_policy") or {}}
    for level, policy in (batching.get("priority_queue_policy") or {}).items():
        policies[f"priority_queue_policy[{level}]"] = policy or {}
    found = []
    for where, policy in policies.items():
        for field in ("max_queue_size", "default_timeout_microseconds"):
            if int(policy.get(field) or 0) > 0:
                found.append(f"{where}.{field}={int(policy[field])}")
    return found
