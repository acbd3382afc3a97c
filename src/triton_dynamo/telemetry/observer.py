"""What the worker records about each request: metrics always, spans when tracing is configured.

The handler calls :meth:`RequestTelemetry.started` before inference and :meth:`RequestTelemetry.finished` after the
last response; Triton's trace timestamps arrive through the request's ``on_trace`` callback, before or after that.
Queue and compute histograms and the child spans are recorded once both have happened.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import Status
from ..triton import InferenceRequest, TraceTimestamps
from .metrics import WorkerMetrics
from .tracing import Clock, parent_context, parse_traceparent

logger = logging.getLogger(__name__)

NS_PER_S = 1e9


@dataclass
class RequestRecord:
    """One request's telemetry while it is under way."""

    model: str
    request_id: str
    batch_size: int
    input_bytes: int
    start_ns: int
    span: Any = None
    trace_id: str | None = None
    end_ns: int | None = None
    timestamps: TraceTimestamps | None = None
    awaiting_timestamps: bool = False
    attributes: dict = field(default_factory=dict)


class RequestTelemetry:
    """The worker's :class:`~triton_dynamo.worker.handler.RequestObserver`."""

    def __init__(self, metrics: WorkerMetrics, tracer: Any = None) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self.clock = Clock()

    def started(
        self, model: str, request: InferenceRequest, input_bytes: int, batch_size: int, context: Any
    ) -> RequestRecord:
        record = RequestRecord(model, request.request_id, batch_size, input_bytes, time.monotonic_ns())
        self.metrics.inflight.labels(model).inc()
        self.metrics.input_bytes.labels(model).inc(input_bytes)
        parent_ids = _parent_ids(context)
        if self.tracer is not None:
            record.span = self.tracer.start_span(
                f"infer {model}",
                context=parent_context(*parent_ids) if parent_ids else None,
                start_time=self.clock.to_epoch_ns(record.start_ns),
                attributes={
                    "triton.model.name": model,
                    "kserve.request.id": request.request_id,
                    "triton.batch_size": batch_size,
                    "triton_dynamo.input.bytes": input_bytes,
                },
            )
            record.trace_id = format(record.span.get_span_context().trace_id, "032x")
        elif parent_ids:
            record.trace_id = parent_ids[0]  # Dynamo's own trace: still worth an exemplar
        if request.trace:
            record.awaiting_timestamps = True
            request.on_trace = lambda timestamps: self._timestamps(record, timestamps)
        return record

    def finished(
        self,
        record: RequestRecord,
        status: Status | None,
        output_bytes: int,
        responses: int,
        model_version: int | None = None,
    ) -> None:
        record.end_ns = time.monotonic_ns()
        m, model = self.metrics, record.model
        m.inflight.labels(model).dec()
        m.requests.labels(model, "success" if status is None else status.name.lower()).inc()
        m.responses.labels(model).inc(responses)
        m.output_bytes.labels(model).inc(output_bytes)
        exemplar = {"trace_id": record.trace_id} if record.trace_id else None
        m.latency.labels(model).observe((record.end_ns - record.start_ns) / NS_PER_S, exemplar=exemplar)
        if record.span is not None:
            record.attributes.update(
                {
                    "triton_dynamo.output.bytes": output_bytes,
                    "triton_dynamo.responses": responses,
                    "triton_dynamo.outcome": "success" if status is None else status.name,
                }
            )
            if model_version is not None:
                record.attributes["triton.model.version"] = model_version
        if not record.awaiting_timestamps or record.timestamps is not None:
            self._complete(record)

    def _timestamps(self, record: RequestRecord, timestamps: TraceTimestamps) -> None:
        record.timestamps = timestamps
        if record.end_ns is not None:
            self._complete(record)

    def _complete(self, record: RequestRecord) -> None:
        ts = record.timestamps
        if ts is not None:
            if ts.queue_ns is not None:
                self.metrics.queue.labels(record.model).observe(ts.queue_ns / NS_PER_S)
            if ts.compute_ns is not None:
                self.metrics.compute.labels(record.model).observe(ts.compute_ns / NS_PER_S)
        if record.span is None:
            return
        span = record.span
        span.set_attributes(record.attributes)
        if ts is not None:
            self._child(span, "triton.queue", ts.queue_start_ns, ts.compute_start_ns, {})
            self._child(
                span,
                "triton.compute",
                ts.compute_start_ns,
                ts.compute_end_ns,
                {
                    "triton.compute_input_us": _us(ts.compute_input_ns),
                    "triton.compute_infer_us": _us(ts.compute_infer_ns),
                    "triton.compute_output_us": _us(ts.compute_output_ns),
                },
            )
        span.end(end_time=self.clock.to_epoch_ns(record.end_ns))

    def _child(self, parent: Any, name: str, start_ns: int | None, end_ns: int | None, attributes: dict) -> None:
        if start_ns is None or end_ns is None:
            return
        from opentelemetry import trace

        child = self.tracer.start_span(
            name,
            context=trace.set_span_in_context(parent),
            start_time=self.clock.to_epoch_ns(start_ns),
            attributes={k: v for k, v in attributes.items() if v is not None},
        )
        child.end(end_time=self.clock.to_epoch_ns(end_ns))


def _us(ns: int | None) -> float | None:
    return None if ns is None else ns / 1000.0


def _parent_ids(context: Any) -> tuple[str, str] | None:
    """(trace id, span id) to hang the request's span under: Dynamo's context, else the client's traceparent."""
    if context is None:
        return None
    trace_id, span_id = getattr(context, "trace_id", None), getattr(context, "span_id", None)
    if trace_id and span_id:
        return trace_id, span_id
    metadata = getattr(context, "metadata", None)
    if metadata is not None:
        try:
            return parse_traceparent(metadata.get("traceparent"))
        except Exception:  # metadata is a live view over Rust state; never let it fail a request
            logger.debug("cannot read the request's metadata", exc_info=True)
    return None
