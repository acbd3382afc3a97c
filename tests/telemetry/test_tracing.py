# SPDX-License-Identifier: Apache-2.0
"""Traces through the real frontend and worker, received by a real OTLP/gRPC receiver.

What Dynamo 1.6.1 does with a client's trace context (seen here, and pinned by these tests): the KServe gRPC server
ignores a ``traceparent`` header and starts a trace of its own (``router.route_request``), which its worker runtime
continues (``handle_payload``); headers named ``x-dynamo-meta-*`` reach the worker as request metadata, so a client
that sends ``x-dynamo-meta-traceparent`` finds its trace linked from the worker's span. Every worker span carries the
KServe request id.
"""

from __future__ import annotations

import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from triton_dynamo.client.kserve import KServeClient, to_infer_inputs

from ..e2e.processes import StackProcess
from .otlp import OtlpReceiver, ReceivedSpan

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


def send(stack: StackProcess, model: str, inputs: dict, request_id: str, headers: dict | None = None) -> None:
    client = grpcclient.InferenceServerClient(stack.grpc_url)
    try:
        client.infer(model, to_infer_inputs(inputs), request_id=request_id, headers=headers)
    finally:
        client.close()


def request_span(receiver: OtlpReceiver, request_id: str, children: int = 2) -> tuple[ReceivedSpan, list[ReceivedSpan]]:
    """The worker's span of ``request_id`` and all spans of its trace, once its children have arrived too."""

    def ready(spans: list[ReceivedSpan]) -> bool:
        mine = [s for s in spans if s.attributes.get("kserve.request.id") == request_id]
        return bool(mine) and sum(s.parent_span_id == mine[0].span_id for s in spans) >= children

    spans = receiver.wait_for(ready)
    span = next(s for s in spans if s.attributes.get("kserve.request.id") == request_id)
    return span, [s for s in spans if s.trace_id == span.trace_id]


def test_request_span_tree_from_frontend_to_triton(traced_stack: StackProcess, otlp_receiver: OtlpReceiver) -> None:
    send(traced_stack, "identity", {"INPUT0": np.arange(6, dtype=np.int32)}, "trace-unary-1")
    span, _ = request_span(otlp_receiver, "trace-unary-1")
    # Dynamo's own spans come from other processes and exporters: wait for the whole chain up to the frontend.
    trace = otlp_receiver.wait_for(
        lambda spans: (
            any(s.trace_id == span.trace_id and s.service == "dynamo-frontend" for s in spans)
            and any(s.span_id == span.parent_span_id for s in spans)
        )
    )
    trace = [s for s in trace if s.trace_id == span.trace_id]
    by_id = {s.span_id: s for s in trace}

    assert span.name == "infer identity" and span.service == "triton-dynamo-worker"
    dynamo_worker = by_id[span.parent_span_id]
    assert dynamo_worker.name == "handle_payload" and dynamo_worker.service == "triton-dynamo-worker"
    frontend = by_id[dynamo_worker.parent_span_id]
    assert frontend.service == "dynamo-frontend" and frontend.parent_span_id == ""

    children = {s.name: s for s in trace if s.parent_span_id == span.span_id}
    assert set(children) == {"triton.queue", "triton.compute"}
    queue, compute = children["triton.queue"], children["triton.compute"]
    assert span.start_ns <= queue.start_ns <= queue.end_ns <= compute.start_ns <= compute.end_ns <= span.end_ns
    assert compute.attributes["triton.compute_infer_us"] > 0

    assert span.attributes["triton.model.name"] == "identity"
    assert span.attributes["triton.model.version"] == 1
    assert span.attributes["triton.batch_size"] == 1
    assert span.attributes["triton_dynamo.input.bytes"] == 24
    assert span.attributes["triton_dynamo.output.bytes"] == 24
    assert span.attributes["triton_dynamo.responses"] == 1
    assert span.attributes["triton_dynamo.outcome"] == "success"
    assert span.status_code == 0  # unset, as OpenTelemetry leaves a span that did not fail


def test_dynamo_logs_reach_the_receiver_with_the_trace_of_their_request(
    traced_stack: StackProcess, otlp_receiver: OtlpReceiver
) -> None:
    """Dynamo exports each log event it prints as an OTLP log record, to the logs endpoint alone: the stack points it
    at the traces' collector, where the frontend's record of a request carries that request's trace."""
    send(traced_stack, "identity", {"INPUT0": np.arange(3, dtype=np.int32)}, "trace-logs-1")
    span, _ = request_span(otlp_receiver, "trace-logs-1")
    spans = otlp_receiver.wait_for(
        lambda spans: any(s.trace_id == span.trace_id and s.service == "dynamo-frontend" for s in spans)
    )
    frontend = next(s for s in spans if s.trace_id == span.trace_id and s.service == "dynamo-frontend")
    logs = otlp_receiver.wait_for_logs(lambda logs: any(r.trace_id == span.trace_id for r in logs))
    record = next(r for r in logs if r.trace_id == span.trace_id)
    assert (record.service, record.body, record.span_id) == (
        "dynamo-frontend",
        "route request completed",
        frontend.span_id,
    )
    assert record.attributes["request.outcome"] == "success"
    assert any(r.service == "triton-dynamo-worker" for r in logs)  # the worker's records come too
    # With the logs endpoint unset, every process logged a failed export (to localhost:4317) once a second.
    for log in sorted((traced_stack.state_dir / "logs").glob("*.log")):
        text = log.read_text(errors="replace")
        assert "ExportError" not in text, log.name
        assert "\x1b[" not in text, f"{log.name} has colour escapes"


def test_batched_request_records_its_batch_size(traced_stack: StackProcess, otlp_receiver: OtlpReceiver) -> None:
    data = np.ones((3, 4), np.float32)
    send(traced_stack, "add_sub", {"INPUT0": data, "INPUT1": data}, "trace-batch-3")
    span, _ = request_span(otlp_receiver, "trace-batch-3")
    assert span.attributes["triton.batch_size"] == 3
    assert span.attributes["triton_dynamo.output.bytes"] == 2 * data.nbytes


def test_stream_span_counts_every_response(traced_stack: StackProcess, otlp_receiver: OtlpReceiver) -> None:
    with KServeClient(traced_stack.grpc_url) as client:
        assert len(client.stream("repeat", {"VALUES": np.arange(5, dtype=np.int32)}, request_id="trace-stream")) == 5
    span, _ = request_span(otlp_receiver, "trace-stream")
    assert span.attributes["triton_dynamo.responses"] == 5


def test_bad_request_span_is_an_error_without_triton_children(traced_stack, otlp_receiver) -> None:
    with pytest.raises(InferenceServerException):
        send(traced_stack, "identity", {"INPUT0": np.ones(2, np.float32)}, "trace-bad")
    span, trace = request_span(otlp_receiver, "trace-bad", children=0)
    assert span.attributes["triton_dynamo.outcome"] == "INVALID_ARGUMENT"
    assert span.status_code == 2  # STATUS_CODE_ERROR
    assert not [s for s in trace if s.parent_span_id == span.span_id]


def test_client_traceparent_header_is_dropped_by_dynamo(traced_stack, otlp_receiver) -> None:
    header = {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}
    send(traced_stack, "identity", {"INPUT0": np.arange(2, dtype=np.int32)}, "trace-tp", header)
    span, _ = request_span(otlp_receiver, "trace-tp")
    assert span.trace_id != CLIENT_TRACE  # Dynamo 1.6.1 starts its own trace; the request id still finds it


def test_client_trace_is_linked_through_dynamo_metadata(traced_stack, otlp_receiver) -> None:
    header = {"x-dynamo-meta-traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}
    send(traced_stack, "identity", {"INPUT0": np.arange(2, dtype=np.int32)}, "trace-meta", header)
    span, _ = request_span(otlp_receiver, "trace-meta")
    assert (CLIENT_TRACE, CLIENT_SPAN) in span.links


def test_latency_histogram_carries_trace_exemplars(traced_stack: StackProcess, otlp_receiver: OtlpReceiver) -> None:
    send(traced_stack, "identity", {"INPUT0": np.arange(3, dtype=np.int32)}, "trace-exemplar")
    request_span(otlp_receiver, "trace-exemplar")
    request = urllib.request.Request(
        f"http://127.0.0.1:{traced_stack.worker_metrics_ports[0]}/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    buckets = [line for line in text.splitlines() if line.startswith("triton_dynamo_request_duration_seconds_bucket")]
    exemplar_ids = {line.split('trace_id="', 1)[1].split('"', 1)[0] for line in buckets if "trace_id=" in line}
    assert exemplar_ids, "no exemplar on the worker's latency histogram"
    # Each bucket keeps its latest exemplar: the trace ids there are traces the receiver got.
    traces = {s.trace_id for s in otlp_receiver.snapshot()}
    assert exemplar_ids <= traces
