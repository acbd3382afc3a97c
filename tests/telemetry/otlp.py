# SPDX-License-Identifier: Apache-2.0
"""A real OTLP/gRPC receiver for tests: collects every span and every log record exported to it."""

from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    start_ns: int
    end_ns: int
    attributes: dict
    links: list[tuple[str, str]] = field(default_factory=list)
    status_code: int = 0  # OTLP's: 0 unset, 1 ok, 2 error


@dataclass
class ReceivedLog:
    service: str
    body: str
    severity: str
    trace_id: str  # "" when the record carries no trace context
    span_id: str
    attributes: dict


def _value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _service_name(resource) -> str:
    return {a.key: _value(a.value) for a in resource.attributes}.get("service.name", "")


def _spans(request) -> list[ReceivedSpan]:
    return [
        ReceivedSpan(
            service=_service_name(resource_spans.resource),
            name=span.name,
            trace_id=span.trace_id.hex(),
            span_id=span.span_id.hex(),
            parent_span_id=span.parent_span_id.hex(),
            start_ns=span.start_time_unix_nano,
            end_ns=span.end_time_unix_nano,
            attributes={a.key: _value(a.value) for a in span.attributes},
            links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
            status_code=span.status.code,
        )
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]


def _logs(request) -> list[ReceivedLog]:
    return [
        ReceivedLog(
            service=_service_name(resource_logs.resource),
            body=str(_value(record.body)),
            severity=record.severity_text,
            trace_id=record.trace_id.hex(),
            span_id=record.span_id.hex(),
            attributes={a.key: _value(a.value) for a in record.attributes},
        )
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
    ]


def _servicer(base, response, decode, keep):
    """An OTLP service (``base``) whose Export hands what ``decode`` makes of each request to ``keep``."""

    class Servicer(base):
        def Export(self, request, context):
            keep(decode(request))
            return response()

    return Servicer()


class OtlpReceiver:
    """Listens on 127.0.0.1:``port`` (0: any free port) until :meth:`stop`."""

    def __init__(self, port: int = 0) -> None:
        self.spans: list[ReceivedSpan] = []
        self.logs: list[ReceivedLog] = []
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        traces = _servicer(
            trace_service_pb2_grpc.TraceServiceServicer,
            trace_service_pb2.ExportTraceServiceResponse,
            _spans,
            self._keep(self.spans),
        )
        logs = _servicer(
            logs_service_pb2_grpc.LogsServiceServicer,
            logs_service_pb2.ExportLogsServiceResponse,
            _logs,
            self._keep(self.logs),
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(traces, self.server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(logs, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()

    def _keep(self, into: list):
        def keep(received: list) -> None:
            with self._lock:
                into.extend(received)

        return keep

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def logs_snapshot(self) -> list[ReceivedLog]:
        with self._lock:
            return list(self.logs)

    def wait_for(self, predicate, timeout_s: float = 20.0) -> list[ReceivedSpan]:
        """Spans once ``predicate(spans)`` holds; raises TimeoutError with what arrived otherwise."""
        return _wait(self.snapshot, predicate, timeout_s, lambda spans: sorted({(s.service, s.name) for s in spans}))

    def wait_for_logs(self, predicate, timeout_s: float = 20.0) -> list[ReceivedLog]:
        """Log records once ``predicate(logs)`` holds; raises TimeoutError with what arrived otherwise."""
        return _wait(self.logs_snapshot, predicate, timeout_s, lambda logs: sorted({(r.service, r.body) for r in logs}))

    def stop(self) -> None:
        self.server.stop(grace=None)


def _wait(snapshot, predicate, timeout_s: float, describe):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        items = snapshot()
        if predicate(items):
            return items
        time.sleep(0.1)
    raise TimeoutError(f"nothing as expected within {timeout_s} s; received: {describe(snapshot())}")
