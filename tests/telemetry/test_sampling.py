# SPDX-License-Identifier: Apache-2.0
"""The worker follows the frontend's sampling decision: end to end through a stack sampling half its requests, and
the decision logic with the OpenTelemetry SDK's samplers, the worker's span encoder (its requests kept in a list
instead of sent) and contexts shaped like Dynamo's."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased

from triton_dynamo.telemetry.metrics import WorkerMetrics
from triton_dynamo.telemetry.observer import RequestTelemetry
from triton_dynamo.telemetry.spans import SpanBatcher
from triton_dynamo.telemetry.tracing import RequestTracer, TraceParent, drops_unsampled_parents, parse_traceparent
from triton_dynamo.triton import TraceTimestamps

from ..e2e.processes import StackProcess, start_stack
from .otlp import OtlpReceiver, ReceivedSpan
from .test_tracing import send

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"


class DynamoContext:
    """What the observer reads of ``dynamo.runtime.Context``: its W3C headers and the propagated metadata."""

    def __init__(self, traceparent: str | None, metadata: dict | None = None) -> None:
        self._traceparent = traceparent
        self.metadata = metadata or {}

    def trace_headers(self) -> dict | None:
        return {"traceparent": self._traceparent} if self._traceparent else None


@pytest.fixture(scope="module")
def half_sampled() -> Iterator[tuple[StackProcess, OtlpReceiver]]:
    receiver = OtlpReceiver()
    extra = ("--otlp-endpoint", receiver.endpoint, "--trace-sample-ratio", "0.5", "--model-name", "identity")
    stack = start_stack(Path(tempfile.mkdtemp(prefix="half-sampled-")), workers=1, extra_args=extra)
    yield stack, receiver
    stack.stop()
    receiver.stop()


def _traces(spans: list[ReceivedSpan]) -> tuple[set, set]:
    """(traces the frontend started, traces with the worker's request span)."""
    frontend = {s.trace_id for s in spans if s.service == "dynamo-frontend" and not s.parent_span_id}
    worker = {s.trace_id for s in spans if s.name == "infer identity"}
    return frontend, worker


def test_the_worker_traces_exactly_the_requests_the_frontend_sampled(half_sampled) -> None:
    stack, receiver = half_sampled
    requests = 40
    for i in range(requests):
        send(stack, "identity", {"INPUT0": np.arange(4, dtype=np.int32)}, f"sampled-{i}")
    receiver.wait_for(lambda spans: (lambda f, w: bool(f) and f == w)(*_traces(spans)))
    time.sleep(6)  # past both exporters' 5 s batch delay: a late batch from either side would show here
    frontend, worker = _traces(receiver.snapshot())
    assert frontend == worker
    # P(all or none of 40 sampled at 0.5) is 2e-12
    assert 0 < len(worker) < requests


class Exported:
    """Where a tracer's export requests go in these tests: a list, read back as OTLP spans."""

    def __init__(self, sampler: Sampler) -> None:
        self.requests: list = []
        self.batcher = SpanBatcher(self.requests.append, Resource(), InstrumentationScope(name="test"), delay_s=3600)
        self.tracer = RequestTracer(sampler, self.batcher)

    def spans(self) -> list[Span]:
        self.batcher.flush()
        return [s for r in self.requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]


@pytest.fixture
def traced() -> Iterator[tuple[RequestTelemetry, Exported]]:
    # ratio 0 for requests without a parent: any span that appears came from the parent's decision
    exported = Exported(ParentBased(TraceIdRatioBased(0.0)))
    yield RequestTelemetry(WorkerMetrics(), exported.tracer), exported
    exported.batcher.shutdown()


def _request(telemetry: RequestTelemetry, context: DynamoContext) -> str | None:
    record = telemetry.started("identity", "r1", context)
    telemetry.finished(record, None, 8, 1)
    return record.trace_id


def test_a_request_the_frontend_sampled_gets_a_child_span(traced) -> None:
    telemetry, exported = traced
    assert _request(telemetry, DynamoContext(f"00-{TRACE_ID}-{SPAN_ID}-01")) == TRACE_ID
    (span,) = exported.spans()
    assert (span.trace_id.hex(), span.parent_span_id.hex()) == (TRACE_ID, SPAN_ID)
    assert {a.key: a.value.string_value for a in span.attributes}["triton_dynamo.outcome"] == "success"


def test_a_request_the_frontend_did_not_sample_makes_no_span_and_no_exemplar(traced) -> None:
    telemetry, exported = traced
    assert _request(telemetry, DynamoContext(f"00-{TRACE_ID}-{SPAN_ID}-00")) is None
    assert exported.spans() == []
    assert telemetry.metrics.model("identity").outcomes == {"success": 1}  # metrics count it all the same


@pytest.mark.parametrize(
    ("sampler", "drops"),
    [
        (ParentBased(TraceIdRatioBased(0.5)), True),
        (ParentBased(ALWAYS_ON), True),
        (ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON), False),
        (ALWAYS_ON, False),
    ],
)
def test_unsampled_parents_are_skipped_only_where_the_sampler_drops_them(sampler, drops: bool) -> None:
    assert drops_unsampled_parents(sampler) is drops
    exported = Exported(sampler)
    # Either way the outcome is the sampler's: a span for an unsampled parent exactly when it would record one.
    _request(RequestTelemetry(WorkerMetrics(), exported.tracer), DynamoContext(f"00-{TRACE_ID}-{SPAN_ID}-00"))
    assert len(exported.spans()) == (0 if drops else 1)
    exported.batcher.shutdown()


def test_under_dynamos_trace_the_clients_traceparent_is_a_link(traced) -> None:
    telemetry, exported = traced
    client = "11111111111111111111111111111111"
    context = DynamoContext(f"00-{TRACE_ID}-{SPAN_ID}-01", {"traceparent": f"00-{client}-2222222222222222-01"})
    _request(telemetry, context)
    (span,) = exported.spans()
    assert [(link.trace_id.hex(), link.span_id.hex()) for link in span.links] == [(client, "2222222222222222")]


def test_without_tracer_a_sampled_dynamo_trace_still_makes_an_exemplar() -> None:
    telemetry = RequestTelemetry(WorkerMetrics(), dynamo_traces=True)
    assert _request(telemetry, DynamoContext(f"00-{TRACE_ID}-{SPAN_ID}-01")) == TRACE_ID
    assert _request(telemetry, DynamoContext(f"00-{TRACE_ID}-{SPAN_ID}-00")) is None
    assert _request(telemetry, DynamoContext(None)) is None


class UnreadContext(DynamoContext):
    def trace_headers(self) -> dict | None:
        raise AssertionError("read Dynamo's trace headers though Dynamo exports no spans")


def test_without_tracer_or_dynamos_export_the_context_is_not_read_and_makes_no_exemplar() -> None:
    telemetry = RequestTelemetry(WorkerMetrics())
    assert _request(telemetry, UnreadContext(f"00-{TRACE_ID}-{SPAN_ID}-01")) is None
    assert telemetry.metrics.model("identity").outcomes == {"success": 1}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"00-{TRACE_ID}-{SPAN_ID}-01", TraceParent(TRACE_ID, SPAN_ID, True)),
        (f"00-{TRACE_ID}-{SPAN_ID}-00", TraceParent(TRACE_ID, SPAN_ID, False)),
        (f" 00-{TRACE_ID}-{SPAN_ID}-03 ", TraceParent(TRACE_ID, SPAN_ID, True)),
        (f"00-{TRACE_ID}-{SPAN_ID}", None),
        (f"00-{TRACE_ID[:-1]}x-{SPAN_ID}-01", None),
        (f"00-{TRACE_ID}-{SPAN_ID}-1", None),
        (f"00-{TRACE_ID}-{SPAN_ID}-0B", TraceParent(TRACE_ID, SPAN_ID, True)),
        (f"00-{TRACE_ID}-{SPAN_ID}-02", TraceParent(TRACE_ID, SPAN_ID, False)),
        (f"00-{TRACE_ID[:-2]}_0-{SPAN_ID}-01", None),
        (f"00-0x{TRACE_ID[2:]}-{SPAN_ID}-01", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_traceparent(value: str | None, expected: TraceParent | None) -> None:
    assert parse_traceparent(value) == expected


def test_the_request_span_covers_a_compute_end_stamped_after_the_response(traced) -> None:
    telemetry, exported = traced
    record = telemetry.started("identity", "r1", DynamoContext(f"00-{TRACE_ID}-{SPAN_ID}-01"))
    request = SimpleNamespace(request_id="r1", trace=True, on_trace=None)
    telemetry.decoded(record, request, 24, 1)
    telemetry.finished(record, None, 24, 1)
    assert exported.spans() == []  # waits for Triton's timestamps
    # As the python backend reports it: compute ends 0.3 ms after the response reached the worker.
    compute_end_ns = record.end_ns + 300_000
    request.on_trace(
        TraceTimestamps(
            queue_start_ns=record.start_ns + 1000,
            compute_start_ns=record.start_ns + 2000,
            compute_end_ns=compute_end_ns,
        )
    )
    spans = {s.name: s for s in exported.spans()}
    request_span, compute = spans["infer identity"], spans["triton.compute"]
    assert request_span.end_time_unix_nano == compute.end_time_unix_nano
    assert request_span.start_time_unix_nano < spans["triton.queue"].start_time_unix_nano
    # the latency histogram keeps what the client waited for
    assert telemetry.metrics.model("identity").latency.sum == pytest.approx((record.end_ns - record.start_ns) / 1e9)
