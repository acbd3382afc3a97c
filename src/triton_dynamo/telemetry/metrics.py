"""The worker's Prometheus metrics, and the one scrape target that carries all of a worker's metrics.

Per model: requests by outcome, a latency histogram (100 us to 10 s) whose buckets carry trace ids as OpenMetrics
exemplars, Triton's queue and compute times per request (from its trace activities), requests in flight, and input
and output bytes. Beside them on the same target: Triton's own ``nv_*`` metrics and Dynamo's ``dynamo_component_*``.

Why a port of our own (``--metrics-port``): Dynamo's system port answers ``text/plain`` whatever the scraper asks for,
and exemplars exist only in OpenMetrics. So :func:`serve_metrics` serves, in the format the scraper negotiates, our
registry plus Triton's and Dynamo's families re-read from their text. Our families are also appended to Dynamo's
system port (:meth:`WorkerMetrics.render_text`), so either port shows the worker whole; scrape one of them.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

logger = logging.getLogger(__name__)

# 100 us to 10 s: the stack lives below a millisecond on small tensors and in seconds under overload.
LATENCY_BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class WorkerMetrics:
    """The worker's own metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "triton_dynamo_requests",
            "Requests handled, by model and outcome (success, or the status of the error)",
            ["model", "outcome"],
            registry=r,
        )
        self.responses = Counter(
            "triton_dynamo_responses",
            "Responses sent (decoupled models send several per request)",
            ["model"],
            registry=r,
        )
        self.latency = Histogram(
            "triton_dynamo_request_duration_seconds",
            "Time from a request's arrival in the worker to its last response",
            ["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.queue = Histogram(
            "triton_dynamo_queue_duration_seconds",
            "Time requests waited in Triton's queue (scheduler and dynamic batcher)",
            ["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.compute = Histogram(
            "triton_dynamo_compute_duration_seconds",
            "Time Triton's backend spent on requests (inputs, inference, outputs)",
            ["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.inflight = Gauge("triton_dynamo_inflight_requests", "Requests in the worker now", ["model"], registry=r)
        self.input_bytes = Counter(
            "triton_dynamo_input_bytes", "Bytes of input tensor data received", ["model"], registry=r
        )
        self.output_bytes = Counter(
            "triton_dynamo_output_bytes", "Bytes of output tensor data sent", ["model"], registry=r
        )

    def declare(self, model: str) -> None:
        """Create every series of ``model`` at zero, so that dashboards and rates see it before its first request."""
        for family in (
            self.responses,
            self.latency,
            self.queue,
            self.compute,
            self.inflight,
            self.input_bytes,
            self.output_bytes,
        ):
            family.labels(model)
        self.requests.labels(model, "success")

    def render_text(self) -> str:
        """Our families in the classic text format (no exemplars): what Dynamo's system port appends."""
        return generate_latest(self.registry).decode()


def untyped_counters(text: str) -> Iterable[Metric]:
    """Metric families parsed from classic text exposition, ready to re-expose in OpenMetrics, names unchanged.

    A counter whose name lacks the ``_total`` suffix (Triton's ``nv_*``) is not a valid OpenMetrics counter, and the
    parser would rename its samples to ``<name>_total``; it goes out as ``unknown`` under Triton's own name instead,
    which ``rate()`` handles the same.
    """
    bare_counters = {
        parts[2]
        for parts in (line.split() for line in text.splitlines() if line.startswith("# TYPE "))
        if len(parts) == 4 and parts[3] == "counter" and not parts[2].endswith("_total")
    }
    for family in text_string_to_metric_families(text):
        if family.type == "counter" and family.name in bare_counters:
            family.type = "unknown"
            family.samples = [
                s._replace(name=family.name) if s.name == family.name + "_total" else s for s in family.samples
            ]
        yield family


class TextCollector:
    """A collector that re-reads another component's text exposition at every scrape."""

    def __init__(self, fetch: Callable[[], str], name: str) -> None:
        self.fetch = fetch
        self.name = name

    def collect(self) -> Iterable[Metric]:
        try:
            text = self.fetch()
        except Exception as exc:  # a scrape must still show the rest of the worker
            logger.debug("no %s metrics this scrape: %s", self.name, exc)
            return []
        return list(untyped_counters(text))


def fetch_url(url: str, timeout_s: float = 2.0) -> Callable[[], str]:
    def fetch() -> str:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.read().decode()

    return fetch


def without_families(text: str, prefixes: tuple[str, ...]) -> str:
    """``text`` without the lines of families whose name starts with one of ``prefixes`` (ours, which Dynamo's
    port shows too, and would otherwise be collected twice)."""
    keep = []
    for line in text.splitlines():
        name = line.split(" ", 3)[2] if line.startswith("# ") and line.count(" ") >= 2 else line.split("{", 1)[0]
        if not name.startswith(prefixes):
            keep.append(line)
    return "\n".join(keep) + "\n"


class RegistryCollector:
    """Another registry's families, as one collector of a registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


def scrape_registry(
    metrics: WorkerMetrics, triton_text: Callable[[], str], dynamo_text: Callable[[], str] | None
) -> CollectorRegistry:
    """Everything a worker exports: our families, Triton's, and Dynamo's (read from its system port, less what we
    append there ourselves)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RegistryCollector(metrics.registry))
    registry.register(TextCollector(triton_text, "Triton"))
    if dynamo_text is not None:
        registry.register(TextCollector(lambda: without_families(dynamo_text(), ("triton_dynamo_", "nv_")), "Dynamo"))
    return registry


def serve_metrics(port: int, registry: CollectorRegistry, host: str = "0.0.0.0") -> None:
    """Serve ``registry`` on ``port`` (/metrics), OpenMetrics (with exemplars) to scrapers that ask for it."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=registry)
    logger.info("worker metrics on http://%s:%d/metrics", host, port)
