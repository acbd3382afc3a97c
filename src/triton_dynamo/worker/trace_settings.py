# SPDX-License-Identifier: Apache-2.0
"""Triton's TraceSetting for a worker: which requests carry Triton's trace (its queue and compute timestamps, which
become the worker's per-phase metrics and its spans' events), for the whole worker and per model.

Triton's own trace file does not exist here: traces leave as OpenTelemetry spans (``trace_mode`` is
``opentelemetry``, ``trace_file`` empty); as in Triton, the file cannot be changed through the protocol and the mode
is ignored. What can, with Triton's names, values (lists of strings) and rules:

- ``trace_level``: ``OFF``, or ``TIMESTAMPS`` (``TENSORS`` is accepted and traces timestamps: the worker records no
  tensors);
- ``trace_rate``: trace one request in this many;
- ``trace_count``: how many more requests to trace, -1 for no limit; each traced request counts it down;
- ``log_frequency``: kept and reported (Triton flushes its trace file every so many traces; spans leave in batches).

A setting given an empty list goes back to the default (the worker's flags) for the whole worker, or to the worker's
value for one model.

Example:
    >>> policy = TracePolicy(TraceSettings(trace_level=("TIMESTAMPS",), trace_rate=2))
    >>> [policy.sample("m") for _ in range(4)]
    [True, False, True, False]
    >>> policy.update("m", {"trace_level": ["OFF"]})["trace_level"]
    ['OFF']
    >>> policy.sample("m"), policy.sample("other")
    (False, True)
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

from ..errors import InvalidInput, Status, TritonDynamoError

TRACE_LEVELS = ("OFF", "TIMESTAMPS", "TENSORS")
_INTEGERS = ("trace_rate", "trace_count", "log_frequency")


@dataclass(frozen=True)
class TraceSettings:
    trace_level: tuple[str, ...] = ("OFF",)
    trace_rate: int = 1000
    trace_count: int = -1
    log_frequency: int = 0
    trace_mode: str = "opentelemetry"
    trace_file: str = ""

    @cached_property  # asked for every request: computed once per settings object (they are replaced, not changed)
    def on(self) -> bool:
        return any(level != "OFF" for level in self.trace_level) and self.trace_count != 0

    def as_triton(self) -> dict[str, list[str]]:
        """Triton's answer: every setting as a list of strings."""
        return {
            "trace_level": list(self.trace_level),
            "trace_rate": [str(self.trace_rate)],
            "trace_count": [str(self.trace_count)],
            "log_frequency": [str(self.log_frequency)],
            "trace_mode": [self.trace_mode],
            "trace_file": [self.trace_file],
        }


def parse_changes(changes: Mapping[str, Sequence[str] | None]) -> dict[str, object | None]:
    """Triton's request (name -> list of strings; empty for "back to the default") as typed values, or None.

    As Triton 2.51 does: a trace file cannot be set, ``trace_mode`` and names it does not know are ignored.
    """
    parsed: dict[str, object | None] = {}
    for key, values in changes.items():
        values = list(values or [])
        if key == "trace_file":
            raise TritonDynamoError(
                "trace file location can not be updated through network protocol", status=Status.UNIMPLEMENTED
            )
        if key not in ("trace_level", *_INTEGERS):
            continue
        if not values:
            parsed[key] = None
        elif key == "trace_level":
            unknown = [v for v in values if v not in TRACE_LEVELS]
            if unknown:
                raise InvalidInput(f"Unable to parse 'trace_level', got: {unknown[0]}")
            parsed[key] = tuple(values)
        else:
            try:
                parsed[key] = int(values[0])
            except ValueError:
                raise InvalidInput(f"Unable to parse '{key}', got: {values[0]}") from None
            if key == "trace_count" and parsed[key] < -1:
                raise InvalidInput(f"Unable to parse 'trace_count'. Expecting value >= -1, got: {values[0]}")
            if key == "trace_rate" and parsed[key] < 1:
                raise InvalidInput("Attempting to set invalid trace setting :sample rate must be non-zero")
    return parsed


@dataclass
class _Scope:
    settings: TraceSettings
    overrides: dict[str, object] = field(default_factory=dict)  # a model's own settings, over the worker's
    counter: itertools.count = field(default_factory=itertools.count)


class TracePolicy:
    """The worker's trace settings and per-model overrides; :meth:`sample` decides each request."""

    def __init__(self, defaults: TraceSettings) -> None:
        self.defaults = defaults
        self._worker = _Scope(defaults)
        self._models: dict[str, _Scope] = {}

    def get(self, model: str = "") -> dict[str, list[str]]:
        return self._scope(model).settings.as_triton()

    def update(self, model: str, changes: Mapping[str, Sequence[str] | None]) -> dict[str, list[str]]:
        parsed = parse_changes(changes)
        if not model:
            values = {k: getattr(self.defaults, k) if v is None else v for k, v in parsed.items()}
            self._worker.settings = replace(self._worker.settings, **values)
            for scope in self._models.values():  # models follow the worker where they have no setting of their own
                scope.settings = replace(self._worker.settings, **scope.overrides)
            return self.get()
        scope = self._models.setdefault(model, _Scope(self._worker.settings))
        for key, value in parsed.items():
            if value is None:
                scope.overrides.pop(key, None)
            else:
                scope.overrides[key] = value
        scope.settings = replace(self._worker.settings, **scope.overrides)
        return self.get(model)

    def sample(self, model: str) -> bool:
        """Whether this request of ``model`` carries Triton's trace (counts it against ``trace_count``)."""
        scope = self._scope(model)
        settings = scope.settings
        if not settings.on or next(scope.counter) % settings.trace_rate:
            return False
        if settings.trace_count > 0:
            scope.settings = replace(settings, trace_count=settings.trace_count - 1)
            if scope is not self._worker:
                scope.overrides["trace_count"] = scope.settings.trace_count
        return True

    def _scope(self, model: str) -> _Scope:
        return self._models.get(model, self._worker) if model else self._worker
