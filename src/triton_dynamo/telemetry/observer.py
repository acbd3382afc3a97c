# SPDX-License-Identifier: Apache-2.0
"""What the worker records about each request: metrics always, spans when tracing is configured.

The handler calls :meth:`RequestTelemetry.started` when a request arrives, :meth:`RequestTelemetry.decoded` once it
passed its checks, and :meth:`RequestTelemetry.finished` after the last response (or the error). Triton's trace
timestamps arrive through the request's ``on_trace`` callback, before or after ``finished``; queue and compute
histograms and the child spans are recorded once both have happened. A request's span runs from its arrival to the
later of its last response and Triton's end of compute, so that Triton's spans nest inside it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from ..errors import Status
from ..triton.types import InferenceRequest, TraceTimestamps
from .metrics import ModelStats, WorkerMetrics
from .spans import ChildSpan, RequestSpan
from .tracing import Clock, RequestTracer, SpanStart, TraceParent, parse_traceparent

logger = logging.getLogger(__name__)

NS_PER_S = 1e9


@dataclass(slots=True)
class RequestRecord:
    """One request's telemetry while it is under way."""

    model: str
    stats: ModelStats
    request_id: str
    batch_size: int
    input_bytes: int
    start_ns: int
    span: SpanStart | None = None  # set when the request is traced
    trace_id: str | None = None
    error: str | None = None
    end_ns: int | None = None
    timestamps: TraceTimestamps | None = None
    awaiting_timestamps: bool = False
    attributes: dict | None = None  # the span's, when the request is traced


class RequestTelemetry:
    """The worker's :class:`~triton_dynamo.worker.handler.RequestObserver`."""

    def __init__(
        self, metrics: WorkerMetrics, tracer: RequestTracer | None = None, *, dynamo_traces: bool = False
    ) -> None:
        self.metrics = metrics
        self.tracer = tracer
        # Without a tracer, Dynamo's context is read only for exemplars, so only when Dynamo exports its spans: with
        # export off there is no trace for an exemplar to lead to (and none came), and the read costs on every request
        # (docs/measurements.md, "Dynamo context for exemplars").
        self.dynamo_traces = dynamo_traces
        self.clock = Clock()

    def started(self, model: str, request_id: str, context: Any) -> RequestRecord:
        """A request arrived (before anything about it is checked)."""
        stats = self.metrics.model(model)
        record = RequestRecord(model, stats, request_id, 1, 0, time.monotonic_ns())
        stats.inflight += 1
        tracer = self.tracer
        if tracer is None:
            # Dynamo's own trace (when its runtime exports) still makes an exemplar, if the frontend sampled it.
            dynamo = _dynamo_parent(context) if self.dynamo_traces else None
            if dynamo is not None and dynamo.sampled:
                record.trace_id = dynamo.trace_id
            return record
        dynamo = _dynamo_parent(context)
        if dynamo is not None and not dynamo.sampled and tracer.skips_unsampled:
            return record  # the frontend did not sample it, and the sampler would drop its span: make none
        client = _client_parent(context)
        # Under Dynamo's trace, the client's own traceparent (if any) becomes a link, so both traces lead here.
        span = tracer.start(f"infer {model}", dynamo or client, client if dynamo is not None else None)
        if span is not None:
            record.span = span
            record.trace_id = format(span.trace_id, "032x")
            record.attributes = {"triton.model.name": model, "kserve.request.id": request_id}
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
            record.error = status.name if status is not None else None
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
        span = record.span
        if span is None:
            return
        to_epoch_ns = self.clock.to_epoch_ns
        start_ns, end_ns = record.start_ns, record.end_ns
        if ts is not None:
            # Backends may stamp the end of compute after the response left: the python backend sends it from the
            # stub before the parent stamps compute end (docs/measurements.md, "compute end after the response"). The
            # span covers both.
            start_ns = min(start_ns, ts.queue_start_ns or start_ns)
            end_ns = max(end_ns, ts.compute_end_ns or end_ns)
        self.tracer.finish(
            RequestSpan(
                trace_id=span.trace_id,
                span_id=span.span_id,
                name=f"infer {record.model}",
                start_ns=to_epoch_ns(start_ns),
                end_ns=to_epoch_ns(end_ns),
                attributes=record.attributes,
                parent_span_id=span.parent_span_id,
                links=span.links,
                error=record.error,
                children=self._triton_spans(ts) if ts is not None else [],
            )
        )

    def _triton_spans(self, ts: TraceTimestamps) -> list[ChildSpan]:
        """Triton's queue and compute, as far as it reported them."""
        to_epoch_ns = self.clock.to_epoch_ns
        spans = []
        if ts.queue_start_ns is not None and ts.compute_start_ns is not None:
            spans.append(ChildSpan("triton.queue", to_epoch_ns(ts.queue_start_ns), to_epoch_ns(ts.compute_start_ns)))
        if ts.compute_start_ns is not None and ts.compute_end_ns is not None:
            attributes = {
                "triton.compute_input_us": _us(ts.compute_input_ns),
                "triton.compute_infer_us": _us(ts.compute_infer_ns),
                "triton.compute_output_us": _us(ts.compute_output_ns),
            }
            start_ns, end_ns = to_epoch_ns(ts.compute_start_ns), to_epoch_ns(ts.compute_end_ns)
            spans.append(ChildSpan("triton.compute", start_ns, end_ns, attributes))
        return spans


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
