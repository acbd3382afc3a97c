# SPDX-License-Identifier: Apache-2.0
"""The plain data the binding hands in and out: requests, responses, tensors and per-request trace timestamps."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..dtypes import DTYPE_ENUM
from ..errors import InvalidInput


@dataclass(frozen=True)
class Tensor:
    """A tensor already in Triton's memory layout, for inputs numpy cannot describe by dtype alone.

    ``data`` is any contiguous buffer: for BYTES, the serialized form (4-byte little-endian length before each
    element); for BF16, the raw 16-bit patterns (e.g. a ``uint16`` array).

    Example:
        >>> t = Tensor("BF16", (2,), np.array([0x3F80, 0x4000], dtype=np.uint16))  # 1.0 and 2.0
        >>> t.byte_size
        4
    """

    data_type: str
    shape: tuple[int, ...]
    data: Any

    def __post_init__(self) -> None:
        if self.data_type not in DTYPE_ENUM:  # Triton's protocol names only: not the config spelling TYPE_FP32
            raise InvalidInput(
                f"tensor data type {self.data_type!r} is not a Triton type name; use one of {', '.join(DTYPE_ENUM)}"
            )

    @property
    def byte_size(self) -> int:
        return memoryview(self.data).nbytes


InputValue = np.ndarray | Tensor
ParameterValue = str | int | float | bool


@dataclass
class TraceTimestamps:
    """Triton's trace activities of one request, in nanoseconds of the monotonic clock (``time.monotonic_ns``).

    Fields are None when Triton did not report the activity (a request that failed before it was queued, say).
    """

    request_start_ns: int | None = None
    queue_start_ns: int | None = None
    compute_start_ns: int | None = None
    compute_input_end_ns: int | None = None
    compute_output_start_ns: int | None = None
    compute_end_ns: int | None = None
    request_end_ns: int | None = None

    @property
    def queue_ns(self) -> int | None:
        """Time the request waited in the model's queue (scheduler and dynamic batcher)."""
        return _span(self.queue_start_ns, self.compute_start_ns)

    @property
    def compute_input_ns(self) -> int | None:
        return _span(self.compute_start_ns, self.compute_input_end_ns)

    @property
    def compute_infer_ns(self) -> int | None:
        return _span(self.compute_input_end_ns, self.compute_output_start_ns)

    @property
    def compute_output_ns(self) -> int | None:
        return _span(self.compute_output_start_ns, self.compute_end_ns)

    @property
    def compute_ns(self) -> int | None:
        """Time the backend spent on the request, inputs and outputs included."""
        return _span(self.compute_start_ns, self.compute_end_ns)

    @property
    def total_ns(self) -> int | None:
        return _span(self.request_start_ns, self.request_end_ns)


def _span(start: int | None, end: int | None) -> int | None:
    return None if start is None or end is None else end - start


# TRITONSERVER_InferenceTraceActivity value -> TraceTimestamps field.
TRACE_ACTIVITY_FIELDS: dict[int, str] = {
    0: "request_start_ns",
    1: "queue_start_ns",
    2: "compute_start_ns",
    3: "compute_input_end_ns",
    4: "compute_output_start_ns",
    5: "compute_end_ns",
    6: "request_end_ns",
}


@dataclass
class InferenceRequest:
    """One inference request for a model; create it with :meth:`Model.create_request` or pass the same keywords to
    :meth:`Model.async_infer`.

    Attributes:
        inputs: input name -> numpy array (dtype gives the Triton type) or :class:`Tensor`. Arrays are handed to
            Triton without a copy and must not be changed until the request completes.
        request_id: the id Triton logs, traces and echoes in every response.
        parameters: request parameters for the backend (str, int, float or bool values).
        output_names: the outputs to return; empty means all of them.
        correlation_id: sequence id for stateful models (int or str).
        flags: sequence flags (1 = start, 2 = end).
        priority: scheduling priority; 0 is the model's default.
        timeout_us: how long the request may wait in the queue; 0 means no limit.
        trace: collect Triton's trace timestamps into ``timestamps`` (filled when the request completes).
        on_trace: called on the event loop with the timestamps once Triton has released the trace (implies
            ``trace``); the iteration then ends with the final response instead of waiting for them.
        on_release: called on the event loop once Triton has let go of the request (its inputs are free), which
            may be after the iteration ended: a cancelled request runs on in Triton until then. Called at once when
            Triton refuses the request. Only for a request whose iteration started.
    """

    inputs: dict[str, InputValue] = field(default_factory=dict)
    request_id: str = ""
    parameters: dict[str, ParameterValue] = field(default_factory=dict)
    output_names: Sequence[str] = ()
    correlation_id: int | str | None = None
    flags: int = 0
    priority: int = 0
    timeout_us: int = 0
    trace: bool = False
    on_trace: Callable[[TraceTimestamps], None] | None = None
    on_release: Callable[[], None] | None = None
    timestamps: TraceTimestamps | None = None

    def __post_init__(self) -> None:
        if self.on_trace is not None:
            self.trace = True


@dataclass
class InferenceResponse:
    """One response: a model sends exactly one per request unless it is decoupled.

    ``outputs`` maps names to numpy arrays that view the buffers Triton wrote into (no copy); BYTES outputs are
    object arrays of ``bytes``. ``final`` is True on the last response of a request.
    """

    model: str
    model_version: int
    request_id: str
    outputs: dict[str, np.ndarray]
    parameters: Mapping[str, ParameterValue | None]
    final: bool
