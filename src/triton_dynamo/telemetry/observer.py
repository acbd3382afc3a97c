"""What the worker records about each request: metrics always, spans when tracing is configured.

The handler calls :meth:`RequestTelemetry.started` when a request arrives, :meth:`RequestTelemetry.decoded` once it
passed its checks, and :meth:`RequestTelemetry.finished` after the last response (or the error). Triton's trace
timestamps arrive through the request's ``on_trace`` callback, before or after ``finished``; queue and compute
histograms and the child spans are recorded once both have happened.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import Status
from ..triton import InferenceRequest, TraceTimestamps
from .metrics import ModelStats, WorkerMetrics
from .tracing import Clock, TraceParent, drops_unsampled_parents, parent_context, parse_traceparent

logger = logging.getLogger(__name__)

NS_PER_S = 1e9


@dataclass
class RequestRecord:
    """One request's telemetry while it is under way."""

    model: str
    stats: ModelStats
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

    @property
    def tracer(self) -> Any:
        return self._tracer

    @tracer.setter
    def tracer(self, tracer: Any) -> None:
        self._tracer = tracer
        self._skip_unsampled = tracer is not None and drops_unsampled_parents(tracer)

    def started(self, model: str, request_id: str, context: Any) -> RequestRecord:
        """A request arrived (before anything about it is checked)."""
        stats = self.metrics.model(model)
        record = RequestRecord(model, stats, request_id, 1, 0, time.monotonic_ns())
        stats.inflight += 1
        if self.tracer is None:
            # Dynamo's own trace (when its runtime traces) still makes an exemplar, if the frontend sampled it.
            dynamo = _dynamo_parent(context)
            if dynamo is not None and dynamo.sampled:
                record.trace_id = dynamo.trace_id
            return record
        dynamo = _dynamo_parent(context)
        if dynamo is not None and not dynamo.sampled and self._skip_unsampled:
            return record  # the frontend did not sample it, and the sampler would drop its span: make none
        client = _client_parent(context)
        # Under Dynamo's trace, the client's own traceparent (if any) becomes a link, so both traces lead here.
        link = client if dynamo is not None else None
        span = self.tracer.start_span(
            f"infer {model}",
            context=parent_context(dynamo or client),
            links=[_link(link)] if link else None,
            start_time=self.clock.to_epoch_ns(record.start_ns),
            attributes={"triton.model.name": model, "kserve.request.id": request_id},
        )
        # A span the sampler dropped records nothing; keeping no reference skips all the later span work.
        if span.is_recording():
            record.span = span
            record.trace_id = format(span.get_span_context().trace_id, "032x")
        return record

    def decoded(self, record: RequestRecord, request: InferenceRequest, input_bytes: int, batch_size: int) -> None:
        """The request passed its checks and goes to Triton; asks for Triton's timestamps when it is traced."""
        record.request_id, record.input_bytes, record.batch_size = request.request_id, input_bytes, batch_size
        record.stats.input_bytes += input_bytes
        if record.span is not None:  # attributes go only to spans: an unsampled request skips them
            record.attributes.update({"triton.batch_size": batch_size, "triton_dynamo.input.bytes": input_bytes})
        if request.trace:
            record.awaiting_timestamps = True
            request.on_trace = lambda timestamps: self._timestamps(record, timestamps)

    def finished(
        self,
        record: RequestRecord,
        status: Status | None,
        output_bytes: int,
        responses: int,
        model_version: int | None = None,
    ) -> None:
        record.end_ns = time.monotonic_ns()
        stats = record.stats
        stats.inflight -= 1
        outcome = "success" if status is None else status.name.lower()
        stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + 1
        stats.responses += responses
        stats.output_bytes += output_bytes
        stats.latency.observe((record.end_ns - record.start_ns) / NS_PER_S, record.trace_id)
        if record.span is not None:
            if status is not None:
                from opentelemetry.trace import Status as SpanStatus
                from opentelemetry.trace import StatusCode

                record.span.set_status(SpanStatus(StatusCode.ERROR, status.name))
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
                record.stats.queue.observe(ts.queue_ns / NS_PER_S)
            if ts.compute_ns is not None:
                record.stats.compute.observe(ts.compute_ns / NS_PER_S)
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


def _dynamo_parent(context: Any) -> TraceParent | None:
    """The span Dynamo's runtime opened for this request, with the frontend's sampling decision; None when Dynamo
    does not trace."""
    if context is None:
        return None
    try:
        headers = context.trace_headers()
    except AttributeError:  # a context without W3C headers (older runtimes): ids only, taken as sampled
        trace_id, span_id = getattr(context, "trace_id", None), getattr(context, "span_id", None)
        return TraceParent(trace_id, span_id) if trace_id and span_id else None
    return parse_traceparent(headers.get("traceparent")) if headers else None


def _client_parent(context: Any) -> TraceParent | None:
    """The ``traceparent`` the client sent as ``x-dynamo-meta-traceparent`` metadata, if any."""
    metadata = getattr(context, "metadata", None)
    if metadata is None:
        return None
    try:
        return parse_traceparent(metadata.get("traceparent"))
    except Exception:  # metadata is a live view over Rust state; never let it fail a request
        logger.debug("cannot read the request's metadata", exc_info=True)
        return None


def _link(parent: TraceParent):
    from opentelemetry.trace import Link, SpanContext, TraceFlags

    flags = TraceFlags(TraceFlags.SAMPLED if parent.sampled else TraceFlags.DEFAULT)
    return Link(SpanContext(int(parent.trace_id, 16), int(parent.span_id, 16), is_remote=True, trace_flags=flags))
