# SPDX-License-Identifier: Apache-2.0
"""Client-side metrics for Prometheus, served by every Locust process (master, workers, standalone).

- ``triton_dynamo_client_requests_total{model,kind,outcome}``: requests this process sent, outcome success|failure
- ``triton_dynamo_client_request_duration_seconds{model,kind}``: their durations (every request, failed ones too)
- ``process_*``: this process's CPU and memory (what the load generator itself costs)

Each process counts only what it sent; in a distributed run the master sends nothing, so sum over the workers.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, start_http_server

logger = logging.getLogger(__name__)

REQUESTS_TOTAL = "triton_dynamo_client_requests_total"
REQUEST_DURATION = "triton_dynamo_client_request_duration_seconds"
DURATION_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
PORT_TRIES = 100  # a worker whose port is taken tries the next ones, so that workers on one machine can share a flag


class ClientMetrics:
    """The metrics of one process, in a registry of their own (so /metrics shows only them and the process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        # prometheus_client adds the _total suffix to counters itself
        self.requests = Counter(
            REQUESTS_TOTAL.removesuffix("_total"),
            "KServe requests sent by this load generator process",
            ("model", "kind", "outcome"),
            registry=self.registry,
        )
        self.duration = Histogram(
            REQUEST_DURATION,
            "Duration of KServe requests sent by this load generator process, from send to the last response",
            ("model", "kind"),
            buckets=DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, bool], tuple] = {}
        self.port: int | None = None

    def observe(self, model: str, kind: str, duration_s: float, success: bool) -> None:
        key = (model, kind, success)
        children = self._children.get(key)
        if children is None:
            # labels() costs a lookup under a lock each call: keep the children
            children = self._children[key] = (
                self.requests.labels(model, kind, "success" if success else "failure"),
                self.duration.labels(model, kind),
            )
        children[0].inc()
        children[1].observe(duration_s)

    def serve(self, port: int, host: str = "0.0.0.0", next_free: bool = False) -> int | None:
        """Serve /metrics on ``port`` (0: not at all); with ``next_free``, the first free port from ``port`` on.
        Returns the port, or None when not served."""
        if port == 0:
            return None
        last = port + (PORT_TRIES if next_free else 1)
        for candidate in range(port, min(last, 65536)):
            try:
                start_http_server(candidate, addr=host, registry=self.registry)
            except OSError as exc:
                if next_free:
                    continue
                logger.error("client metrics not served: port %d: %s", candidate, exc)
                return None
            self.port = candidate
            logger.info("client metrics at http://%s:%d/metrics", host, candidate)
            return candidate
        logger.error("client metrics not served: no free port in %d-%d", port, last - 1)
        return None
