"""OpenTelemetry tracing for the worker: on when an OTLP endpoint is configured, and free when it is not.

Spans are made after the fact with explicit timestamps (Triton's trace activities arrive when Triton releases a
request), so a request's span and its ``triton.queue`` / ``triton.compute`` children carry Triton's exact times.
Triton stamps activities with the monotonic clock; :func:`to_epoch_ns` maps them onto wall-clock time.

Sampling: the SDK's standard ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (``triton-dynamo up`` sets
``parentbased_traceidratio``), and the parent's sampled flag is honoured, so the worker traces exactly the requests
the frontend traces.

Parents: Dynamo's request context when its runtime traces (``OTEL_EXPORT_ENABLED`` on the frontend and the worker);
else a ``traceparent`` the client sent as gRPC metadata ``x-dynamo-meta-traceparent`` (Dynamo 1.6.1's KServe server
ignores a plain ``traceparent`` but passes ``x-dynamo-meta-*`` headers on as request metadata); else a new trace.
Every span carries the KServe request id, so a trace can always be found from a client's log line.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import NamedTuple

logger = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def tracing_configured(env: Mapping[str, str] = os.environ) -> bool:
    """Whether an OTLP traces endpoint is set (and tracing not switched off with ``OTEL_SDK_DISABLED``)."""
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return any(env.get(name) for name in ENDPOINT_VARIABLES)


def make_tracer(service_name: str, env: Mapping[str, str] = os.environ):
    """A tracer exporting over OTLP (gRPC, or HTTP when ``OTEL_EXPORTER_OTLP_PROTOCOL`` says so), or None when no
    endpoint is configured. The exporter reads the standard ``OTEL_EXPORTER_OTLP_*`` variables itself."""
    if not tracing_configured(env):
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    if protocol.startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    name = env.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    logger.info(
        "tracing on: spans of service %r go to %s over OTLP/%s",
        name,
        next(env[v] for v in ENDPOINT_VARIABLES if env.get(v)),
        protocol,
    )
    return provider.get_tracer("triton_dynamo.worker")


def drops_unsampled_parents(tracer) -> bool:
    """Whether ``tracer``'s sampler drops every span whose remote parent is not sampled (the parent-based samplers
    ``triton-dynamo up`` configures do): the worker can then skip the SDK's parent context, span start and ids for
    a span that would never record. False for any other sampler, whose decisions are left to it."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.sampling import Decision, ParentBased
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    sampler = getattr(tracer, "sampler", None)
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


def parse_traceparent(value: str | None) -> TraceParent | None:
    """The ids and sampled flag of a W3C ``traceparent`` header value, or None when it is not one.

    Example:
        >>> parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        TraceParent(trace_id='0af7651916cd43dd8448eb211c80319c', span_id='b7ad6b7169203331', sampled=True)
    """
    if not value:
        return None
    parts = value.strip().split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        int(parts[1], 16), int(parts[2], 16)
        flags = int(parts[3], 16)
    except ValueError:
        return None
    return TraceParent(parts[1], parts[2], bool(flags & 0x01))
