# SPDX-License-Identifier: Apache-2.0
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

import bisect
import logging
import math
import time
import urllib.request
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

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


class LatencyHistogram:
    """A histogram over :data:`LATENCY_BUCKETS_S` that keeps the latest trace id seen in each bucket (an exemplar).

    Updated only on the worker's event loop, so it takes no lock; a scrape copies its lists (atomic under the GIL).
    """

    __slots__ = ("counts", "exemplars", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS_S) + 1)  # per bucket, not cumulative; the last is +Inf
        self.exemplars: list[tuple[str, float, float] | None] = [None] * len(self.counts)
        self.sum = 0.0

    def observe(self, value_s: float, trace_id: str | None = None) -> None:
        index = bisect.bisect_left(LATENCY_BUCKETS_S, value_s)  # le: the first bound at or above the value
        self.counts[index] += 1
        self.sum += value_s
        if trace_id:
            self.exemplars[index] = (trace_id, value_s, time.time())

    def add_to(self, family: HistogramMetricFamily, model: str) -> None:
        counts, exemplars, total = list(self.counts), list(self.exemplars), self.sum
        buckets, running = [], 0
        for bound, count, exemplar in zip((*LATENCY_BUCKETS_S, math.inf), counts, exemplars, strict=True):
            running += count
            le = "+Inf" if bound == math.inf else floatToGoString(bound)
            if exemplar is None:
                buckets.append((le, running))
            else:
                buckets.append((le, running, Exemplar({"trace_id": exemplar[0]}, exemplar[1], exemplar[2])))
        family.add_metric([model], buckets, total)


class ModelStats:
    """One model's counters; plain attributes, because every request touches them."""

    __slots__ = (
        "compute",
        "handed",
        "inflight",
        "input_bytes",
        "latency",
        "outcomes",
        "output_bytes",
        "queue",
        "responses",
        "sequence_forwarded",
    )

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {"success": 0}
        self.responses = self.inflight = self.input_bytes = self.output_bytes = self.handed = 0
        self.sequence_forwarded = 0
        self.latency, self.queue, self.compute = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()


class WorkerMetrics:
    """The worker's own metrics: per model, counted in plain Python and rendered into metric families at scrape.

    (prometheus_client's own metric objects lock and look labels up on every update; nine updates per request cost
    the worker more than a tenth of its throughput on small tensors.)
    """

    def __init__(self) -> None:
        self.models: dict[str, ModelStats] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def model(self, name: str) -> ModelStats:
        stats = self.models.get(name)
        if stats is None:
            stats = self.models[name] = ModelStats()
        return stats

    def declare(self, model: str) -> None:
        """Create ``model``'s series at zero, so that dashboards and rates see it before its first request."""
        self.model(model)

    def collect(self) -> Iterable[Metric]:
        models = list(self.models.items())
        requests = CounterMetricFamily(
            "triton_dynamo_requests",
            "Requests handled, by model and outcome (success, or the status of the error)",
            labels=["model", "outcome"],
        )
        responses = CounterMetricFamily(
            "triton_dynamo_responses", "Responses sent (decoupled models send several per request)", labels=["model"]
        )
        inflight = GaugeMetricFamily("triton_dynamo_inflight_requests", "Requests in the worker now", labels=["model"])
        input_bytes = CounterMetricFamily(
            "triton_dynamo_input_bytes", "Bytes of input tensor data received", labels=["model"]
        )
        output_bytes = CounterMetricFamily(
            "triton_dynamo_output_bytes", "Bytes of output tensor data sent", labels=["model"]
        )
        handed = CounterMetricFamily(
            "triton_dynamo_handed_requests",
            "Requests this worker, at its --max-inflight limit, handed to another one, which served or refused them",
            labels=["model"],
        )
        sequence_forwarded = CounterMetricFamily(
            "triton_dynamo_sequence_forwarded_requests",
            "Requests of a stateful model's sequence this worker sent to the worker that serves the sequence",
            labels=["model"],
        )
        latency = HistogramMetricFamily(
            "triton_dynamo_request_duration_seconds",
            "Time from a request's arrival in the worker to its last response",
            labels=["model"],
        )
        queue = HistogramMetricFamily(
            "triton_dynamo_queue_duration_seconds",
            "Time requests waited in Triton's queue (scheduler and dynamic batcher)",
            labels=["model"],
        )
        compute = HistogramMetricFamily(
            "triton_dynamo_compute_duration_seconds",
            "Time Triton's backend spent on requests (inputs, inference, outputs)",
            labels=["model"],
        )
        for name, stats in models:
            for outcome, count in list(stats.outcomes.items()):
                requests.add_metric([name, outcome], count)
            responses.add_metric([name], stats.responses)
            inflight.add_metric([name], stats.inflight)
            input_bytes.add_metric([name], stats.input_bytes)
            output_bytes.add_metric([name], stats.output_bytes)
            handed.add_metric([name], stats.handed)
            sequence_forwarded.add_metric([name], stats.sequence_forwarded)
            stats.latency.add_to(latency, name)
            stats.queue.add_to(queue, name)
            stats.compute.add_to(compute, name)
        return [
            requests,
            responses,
            inflight,
            input_bytes,
            output_bytes,
            handed,
            sequence_forwarded,
            latency,
            queue,
            compute,
        ]

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
