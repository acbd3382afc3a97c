# SPDX-License-Identifier: Apache-2.0
"""OpenTelemetry tracing for the worker: on when an OTLP endpoint is configured, and free when it is not.

Spans are made after the fact with explicit timestamps (Triton's trace activities arrive when Triton releases a
request), so a request's span and its ``triton.queue`` / ``triton.compute`` children carry Triton's exact times.
Triton stamps activities with the monotonic clock; :func:`to_epoch_ns` maps them onto wall-clock time.

Sampling: the SDK's standard ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (``triton-dynamo up`` sets
``parentbased_traceidratio``), and the parent's sampled flag is honoured, so the worker traces exactly the requests
the frontend traces. Spans themselves are made by :mod:`.spans`, not the SDK's tracer (why: there).

Parents: Dynamo's request context when its runtime traces (``OTEL_EXPORT_ENABLED`` on the frontend and the worker);
else a ``traceparent`` the client sent as gRPC metadata ``x-dynamo-meta-traceparent`` (Dynamo 1.6.1's KServe server
ignores a plain ``traceparent`` but passes ``x-dynamo-meta-*`` headers on as request metadata); else a new trace.
Every span carries the KServe request id, so a trace can always be found from a client's log line.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceProto

from ..errors import ConfigurationError
from .spans import RequestSpan, SpanBatcher, encode_attributes, new_span_id, new_trace_id

logger = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def tracing_configured(env: Mapping[str, str] = os.environ) -> bool:
    """Whether an OTLP traces endpoint is set (and tracing not switched off with ``OTEL_SDK_DISABLED``)."""
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return any(env.get(name) for name in ENDPOINT_VARIABLES)


def dynamo_exports_traces(env: Mapping[str, str] = os.environ) -> bool:
    """Whether Dynamo's runtime in this process exports its spans: ``OTEL_EXPORT_ENABLED``, read as Dynamo 1.6.1 reads
    it (1, true, on or yes).

    Example:
        >>> dynamo_exports_traces({"OTEL_EXPORT_ENABLED": "On"}), dynamo_exports_traces({})
        (True, False)
    """
    return env.get("OTEL_EXPORT_ENABLED", "").strip().lower() in ("1", "true", "on", "yes")


class RequestTracer:
    """Decides which requests get spans (the SDK's sampler, from ``OTEL_TRACES_SAMPLER``) and queues theirs for
    export (:mod:`.spans`)."""

    def __init__(self, sampler: Any, batcher: SpanBatcher, close: Callable[[], Any] | None = None) -> None:
        self.sampler = sampler
        self.batcher = batcher
        self._close = close  # the transport's
        # A parent-based sampler drops every span under an unsampled parent: such requests skip the sampler.
        self.skips_unsampled = drops_unsampled_parents(sampler)

    def start(self, name: str, parent: TraceParent | None, link: TraceParent | None = None) -> SpanStart | None:
        """The ids of a new span under ``parent`` (a new trace without one), or None when the sampler drops it."""
        context = parent_context(parent)
        trace_id = int(parent.trace_id, 16) if context is not None else new_trace_id()
        links = [_link(link)] if link is not None else None
        if not self.sampler.should_sample(context, trace_id, name, links=links).decision.is_sampled():
            return None
        return SpanStart(
            trace_id,
            new_span_id(),
            int(parent.span_id, 16) if context is not None else None,
            ((int(link.trace_id, 16), int(link.span_id, 16)),) if link is not None else (),
        )

    def finish(self, span: RequestSpan) -> None:
        self.batcher.add(span)

    def shutdown(self) -> None:
        """Export the spans still queued (for a few seconds at most), then close the transport."""
        self.batcher.shutdown()
        if self._close is not None:
            self._close()


class SpanStart(NamedTuple):
    """A sampled request's ids, until its span is finished."""

    trace_id: int
    span_id: int
    parent_span_id: int | None
    links: tuple[tuple[int, int], ...]


def make_tracer(service_name: str, env: Mapping[str, str] = os.environ) -> RequestTracer | None:
    """A tracer exporting over OTLP/gRPC, or None when no endpoint is configured. The SDK's exporter reads the
    standard ``OTEL_EXPORTER_OTLP_*`` variables itself.

    Raises :class:`~triton_dynamo.errors.ConfigurationError` for an OTLP protocol other than gRPC: every collector
    (and Tempo, Jaeger) takes gRPC, and one transport is one thing to keep right.
    """
    if not tracing_configured(env):
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    if protocol != "grpc":
        raise ConfigurationError(
            f"OTLP protocol {protocol!r} is not supported by the worker: it exports traces over OTLP/gRPC only; "
            "set OTEL_EXPORTER_OTLP_PROTOCOL=grpc and point the endpoint at a collector's gRPC port (4317)"
        )
    name = env.get("OTEL_SERVICE_NAME") or service_name
    # The provider only to build the sampler and the resource from the environment as every SDK user gets them.
    provider = TracerProvider(resource=Resource.create({"service.name": name}), shutdown_on_exit=False)
    exporter = _grpc_exporter()
    batcher = SpanBatcher.from_env(
        exporter.export,
        ResourceProto(attributes=encode_attributes(provider.resource.attributes)),
        InstrumentationScope(name="triton_dynamo.worker"),
        env,
    )
    logger.info(
        "tracing on: spans of service %r go to %s over OTLP/gRPC",
        name,
        next(env[v] for v in ENDPOINT_VARIABLES if env.get(v)),
    )
    return RequestTracer(provider.sampler, batcher, exporter.shutdown)


def _grpc_exporter():
    """The SDK's OTLP/gRPC span exporter, handed requests :mod:`.spans` has encoded already: ``_translate_data``
    is the one place the exporter encodes (opentelemetry-exporter-otlp-proto-grpc 1.45, the locked version; a
    release that moved it would fail tests/telemetry/test_tracing.py); everything else (endpoint, headers, TLS,
    compression, timeout, retries with backoff) is the SDK's."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    class EncodedSpanExporter(OTLPSpanExporter):
        def _translate_data(self, data: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
            return data

        def _count_data(self, data: ExportTraceServiceRequest) -> int:
            return sum(len(scope.spans) for resource in data.resource_spans for scope in resource.scope_spans)

    return EncodedSpanExporter()


def drops_unsampled_parents(sampler) -> bool:
    """Whether ``sampler`` drops every span whose remote parent is not sampled (the parent-based samplers
    ``triton-dynamo up`` configures do): the worker can then skip the sampler and ids for a span that would never
    record. False for any other sampler, whose decisions are left to it."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.sampling import Decision, ParentBased
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    if not isinstance(sampler, ParentBased):
        return False
    parent = SpanContext(1, 1, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    probe = sampler.should_sample(trace.set_span_in_context(NonRecordingSpan(parent)), 1, "probe")
    return probe.decision is Decision.DROP


class Clock:
    """Maps ``time.monotonic_ns()`` readings (Triton's trace clock) to Unix-epoch nanoseconds."""

    def __init__(self) -> None:
        self.recalibrate()

    def recalibrate(self) -> None:
        # Read both clocks back to back twice and keep the tighter pair: the offset is then good to a microsecond.
        pairs = []
        for _ in range(2):
            before = time.monotonic_ns()
            wall = time.time_ns()
            after = time.monotonic_ns()
            pairs.append((after - before, wall - (before + after) // 2))
        self.offset_ns = min(pairs)[1]

    def to_epoch_ns(self, monotonic_ns: int) -> int:
        return monotonic_ns + self.offset_ns


class TraceParent(NamedTuple):
    """The parts of a W3C ``traceparent`` a child span needs: ids in hex and the sampled flag."""

    trace_id: str
    span_id: str
    sampled: bool = True


def parent_context(parent: TraceParent | None):
    """An OpenTelemetry context whose current span is the remote span ``parent``, or None.

    The sampled flag travels with it: under the parent-based sampler a request the frontend chose not to trace makes
    no span here either, so each trace is whole or absent.
    """
    if parent is None:
        return None
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    flags = TraceFlags(TraceFlags.SAMPLED if parent.sampled else TraceFlags.DEFAULT)
    try:
        span_context = SpanContext(int(parent.trace_id, 16), int(parent.span_id, 16), is_remote=True, trace_flags=flags)
    except ValueError:
        return None
    if not span_context.is_valid:
        return None
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def _link(parent: TraceParent):
    from opentelemetry.trace import Link, SpanContext, TraceFlags

    flags = TraceFlags(TraceFlags.SAMPLED if parent.sampled else TraceFlags.DEFAULT)
    return Link(SpanContext(int(parent.trace_id, 16), int(parent.span_id, 16), is_remote=True, trace_flags=flags))


# version-traceid-spanid-flags, in hex: one match rather than a split and three int() calls (cheaper, and every request
# of a traced stack is parsed: docs/measurements.md, "traceparent parsing"), and stricter (int() took "0x" and "_"
# inside an id).
_TRACEPARENT = re.compile(r"\s*[0-9a-fA-F]{2}-([0-9a-fA-F]{32})-([0-9a-fA-F]{16})-[0-9a-fA-F]([0-9a-fA-F])\s*")
_SAMPLED_DIGITS = frozenset("13579bdfBDF")  # the last hex digit of the flags, with the sampled bit (0x01) set


def parse_traceparent(value: str | None) -> TraceParent | None:
    """The ids and sampled flag of a W3C ``traceparent`` header value, or None when it is not one.

    Example:
        >>> parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        TraceParent(trace_id='0af7651916cd43dd8448eb211c80319c', span_id='b7ad6b7169203331', sampled=True)
    """
    match = _TRACEPARENT.fullmatch(value) if value else None
    if match is None:
        return None
    trace_id, span_id, last_flags_digit = match.groups()
    return TraceParent(trace_id, span_id, last_flags_digit in _SAMPLED_DIGITS)
