# SPDX-License-Identifier: Apache-2.0
"""The worker's span encoder and batcher: OTLP messages from plain values, batches, a full queue, shutdown.

The same path end to end, through the SDK's OTLP/gRPC transport to a real receiver, is in test_tracing.py."""

from __future__ import annotations

import threading
import time

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, SpanFlags, Status

from triton_dynamo.errors import ConfigurationError
from triton_dynamo.telemetry.spans import ChildSpan, RequestSpan, SpanBatcher, encode_attributes, encode_spans
from triton_dynamo.telemetry.tracing import make_tracer

RESOURCE = Resource(attributes=encode_attributes({"service.name": "test"}))
SCOPE = InstrumentationScope(name="test")
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
PARENT_ID = 0xB7AD6B7169203331


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, AnyValue(bool_value=True)),
        (False, AnyValue(bool_value=False)),
        (3, AnyValue(int_value=3)),
        (-(2**63), AnyValue(int_value=-(2**63))),
        (1.5, AnyValue(double_value=1.5)),
        ("identity", AnyValue(string_value="identity")),
        (b"raw", AnyValue(string_value="b'raw'")),
    ],
)
def test_attribute_values_keep_their_type(value, expected: AnyValue) -> None:
    assert encode_attributes({"k": value}) == [KeyValue(key="k", value=expected)]


def test_none_attributes_are_left_out() -> None:
    assert encode_attributes({"a": None, "b": 1}) == [KeyValue(key="b", value=AnyValue(int_value=1))]


def _spans(request) -> list[Span]:
    (resource_spans,) = request.resource_spans
    assert resource_spans.resource == RESOURCE
    (scope_spans,) = resource_spans.scope_spans
    assert scope_spans.scope == SCOPE
    return list(scope_spans.spans)


def test_a_request_span_with_a_remote_parent_a_link_and_triton_children() -> None:
    request_span = RequestSpan(
        trace_id=TRACE_ID,
        span_id=0x1111,
        name="infer identity",
        start_ns=100,
        end_ns=900,
        attributes={"triton.model.name": "identity", "triton.batch_size": 4},
        parent_span_id=PARENT_ID,
        links=((0x22, 0x33),),
        children=[ChildSpan("triton.queue", 200, 300), ChildSpan("triton.compute", 300, 800, {"us": 0.5})],
    )
    span, queue, compute = _spans(encode_spans([request_span], RESOURCE, SCOPE))
    assert span.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert (span.span_id.hex(), span.parent_span_id.hex()) == ("0000000000001111", "b7ad6b7169203331")
    assert (span.name, span.start_time_unix_nano, span.end_time_unix_nano) == ("infer identity", 100, 900)
    assert span.kind == Span.SpanKind.SPAN_KIND_INTERNAL
    assert {a.key for a in span.attributes} == {"triton.model.name", "triton.batch_size"}
    assert [(link.trace_id, link.span_id) for link in span.links] == [(b"\0" * 15 + b"\x22", b"\0" * 7 + b"\x33")]
    remote = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK | SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
    assert span.flags == remote
    assert not span.HasField("status")  # unset: the request succeeded
    expected = [("triton.queue", 200, 300), ("triton.compute", 300, 800)]
    for child, (name, start, end) in zip((queue, compute), expected, strict=True):
        assert (child.name, child.start_time_unix_nano, child.end_time_unix_nano) == (name, start, end)
        assert child.trace_id == span.trace_id and child.parent_span_id == span.span_id
        assert child.flags == SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK  # a local parent
    assert queue.span_id != compute.span_id and b"\0" * 8 not in (queue.span_id, compute.span_id)
    assert compute.attributes == [KeyValue(key="us", value=AnyValue(double_value=0.5))]


def test_a_failed_request_without_parent_is_a_root_with_an_error_status() -> None:
    (span,) = _spans(
        encode_spans([RequestSpan(TRACE_ID, 7, "infer m", 1, 2, {}, error="INVALID_ARGUMENT")], RESOURCE, SCOPE)
    )
    assert span.parent_span_id == b""
    assert span.flags == SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
    assert span.status == Status(code=Status.StatusCode.STATUS_CODE_ERROR, message="INVALID_ARGUMENT")


def _span(number: int) -> RequestSpan:
    return RequestSpan(TRACE_ID, number, f"infer {number}", 1, 2, {})


def test_batches_hold_at_most_max_batch_requests_and_a_full_queue_drops() -> None:
    sent = []
    batcher = SpanBatcher(sent.append, RESOURCE, SCOPE, delay_s=3600, max_queue=5, max_batch=2)
    try:
        for number in range(1, 8):
            batcher.add(_span(number))
        assert batcher.dropped == 2
        batcher.flush()
        assert [[s.name for s in _spans(r)] for r in sent] == [
            ["infer 1", "infer 2"],
            ["infer 3", "infer 4"],
            ["infer 5"],
        ]
        assert batcher.dropped == 0  # reported (a warning) and counted afresh
    finally:
        batcher.shutdown()


def test_the_thread_exports_a_full_batch_without_waiting_for_the_delay() -> None:
    exported = threading.Event()
    batcher = SpanBatcher(lambda request: exported.set(), RESOURCE, SCOPE, delay_s=3600, max_batch=3)
    try:
        for number in range(1, 4):
            batcher.add(_span(number))
        assert exported.wait(10)
    finally:
        batcher.shutdown()


def test_shutdown_exports_what_is_queued_and_a_failing_export_is_survived() -> None:
    sent = []

    def export(request) -> None:
        sent.append(request)
        if len(sent) == 1:
            raise ConnectionError("collector down")

    batcher = SpanBatcher(export, RESOURCE, SCOPE, delay_s=3600, max_batch=1)
    batcher.add(_span(1))
    batcher.add(_span(2))
    batcher.shutdown()
    assert [[s.name for s in _spans(r)] for r in sent] == [["infer 1"], ["infer 2"]]


def test_batching_follows_the_sdk_variables() -> None:
    env = {"OTEL_BSP_SCHEDULE_DELAY": "250", "OTEL_BSP_MAX_QUEUE_SIZE": "10", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "oops"}
    batcher = SpanBatcher.from_env(lambda request: None, RESOURCE, SCOPE, env)
    try:
        assert (batcher.delay_s, batcher.max_queue, batcher.max_batch) == (0.25, 10, 512)
    finally:
        batcher.shutdown()


def test_tracing_is_off_without_an_endpoint_and_refuses_otlp_over_http() -> None:
    assert make_tracer("w", {}) is None
    assert (
        make_tracer("w", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_SDK_DISABLED": "true"}) is None
    )
    with pytest.raises(ConfigurationError, match="OTLP/gRPC only"):
        make_tracer(
            "w",
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
        )


def test_shutdown_gives_up_on_a_collector_that_does_not_answer() -> None:
    calls = []

    def export(request) -> None:
        calls.append(request)
        time.sleep(0.3)  # as an exporter waits out its timeout

    batcher = SpanBatcher(export, RESOURCE, SCOPE, delay_s=3600, max_batch=1)
    for number in range(1, 11):
        batcher.add(_span(number))
    started = time.monotonic()
    batcher.shutdown(timeout_s=0.5)
    assert time.monotonic() - started < 1.5
    assert 1 <= len(calls) <= 3  # the rest dropped, not sent after the deadline
