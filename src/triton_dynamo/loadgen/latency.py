# SPDX-License-Identifier: Apache-2.0
"""Precise latency per endpoint (``<model>/<kind>``): HDR histograms in microseconds, counts, failure reasons, and
successful completions per time bucket (for the knee of a step ramp).

Latencies of successful requests only go into the histograms (a request refused at once would make the percentiles
look better than the service is); failures are counted by reason. In distributed runs each Locust worker sends what
it recorded since its last report (:meth:`LatencyRecorder.take_delta`: HDR histograms in their standard compressed
encoding) and the master adds it up (:meth:`LatencyRecorder.merge`), which gives exactly the histogram one process
would have recorded.

Example:
    >>> recorder = LatencyRecorder()
    >>> for us in (100, 200, 300, 400):
    ...     recorder.record_success("identity/unary", us, at_s=0.0)
    >>> merged = LatencyRecorder()
    >>> merged.merge(recorder.take_delta())
    >>> merged.endpoints["identity/unary"].percentiles_us()["p50_us"]
    200
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 600_000_000  # ten minutes: longer than any request deadline worth setting
SIGNIFICANT_DIGITS = 3  # values within 0.1 %
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
RATE_BUCKET_S = 0.1  # completions are counted per 100 ms: fine enough for steps of a few seconds
MAX_REASONS = 100  # distinct failure reasons kept per endpoint; more are counted as OTHER_REASON
MAX_REASON_CHARS = 500
OTHER_REASON = "(other reasons)"
PAYLOAD_VERSION = 1


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def add_histogram(into: HdrHistogram, other: HdrHistogram) -> None:
    """``into += other``. hdrh's add() takes an empty histogram's minimum as 0, so empty ones are skipped."""
    if other.get_total_count():
        into.add(other)


def percentile_key(percentile: float) -> str:
    """50 -> 'p50_us', 99.9 -> 'p99_9_us'."""
    text = f"{percentile:g}".replace(".", "_")
    return f"p{text}_us"


def histogram_summary(histogram: HdrHistogram) -> dict[str, Any]:
    """count, min, mean, max and the percentiles of ``histogram`` in microseconds (None when it is empty)."""
    count = histogram.get_total_count()
    summary: dict[str, Any] = {"count": count}
    values = histogram.get_percentile_to_value_dict(list(PERCENTILES)) if count else {}
    for percentile in PERCENTILES:
        summary[percentile_key(percentile)] = values.get(percentile) if count else None
    summary["min_us"] = histogram.get_min_value() if count else None
    summary["mean_us"] = round(histogram.get_mean_value(), 1) if count else None
    summary["max_us"] = histogram.get_max_value() if count else None
    return summary


@dataclass
class EndpointLatency:
    """What one endpoint recorded: latencies of successes (µs), and counts."""

    histogram: HdrHistogram = field(default_factory=new_histogram)
    successes: int = 0
    failures: int = 0
    reasons: Counter = field(default_factory=Counter)

    def percentiles_us(self) -> dict[str, Any]:
        return histogram_summary(self.histogram)

    def add_reason(self, reason: str, count: int = 1) -> None:
        reason = reason[:MAX_REASON_CHARS]
        if reason not in self.reasons and len(self.reasons) >= MAX_REASONS:
            reason = OTHER_REASON
        self.reasons[reason] += count


class LatencyRecorder:
    """Everything recorded by this process (or merged from workers) since the test started."""

    def __init__(self) -> None:
        self.endpoints: dict[str, EndpointLatency] = {}
        self.completions: Counter[int] = Counter()  # RATE_BUCKET_S bucket index -> successes completed in it

    def _endpoint(self, name: str) -> EndpointLatency:
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            endpoint = self.endpoints[name] = EndpointLatency()
        return endpoint

    def record_success(self, name: str, latency_us: float, at_s: float) -> None:
        """A successful request of endpoint ``name`` that took ``latency_us`` and ended at wall time ``at_s``."""
        endpoint = self._endpoint(name)
        endpoint.histogram.record_value(min(max(round(latency_us), LOWEST_US), HIGHEST_US))
        endpoint.successes += 1
        self.completions[math.floor(at_s / RATE_BUCKET_S)] += 1

    def record_failure(self, name: str, reason: str) -> None:
        endpoint = self._endpoint(name)
        endpoint.failures += 1
        endpoint.add_reason(reason)

    def reset(self) -> None:
        self.endpoints.clear()
        self.completions.clear()

    def overall(self) -> EndpointLatency:
        """Every endpoint together."""
        total = EndpointLatency()
        for endpoint in self.endpoints.values():
            add_histogram(total.histogram, endpoint.histogram)
            total.successes += endpoint.successes
            total.failures += endpoint.failures
            for reason, count in endpoint.reasons.items():
                total.add_reason(reason, count)
        return total

    def completion_rate(self, start_s: float, end_s: float) -> float | None:
        """Successes per second completed in [start_s, end_s), counting whole buckets inside the window; None when
        the window holds no whole bucket."""
        first, last = math.ceil(start_s / RATE_BUCKET_S), math.floor(end_s / RATE_BUCKET_S)
        if last <= first:
            return None
        count = sum(self.completions.get(b, 0) for b in range(first, last))
        return count / ((last - first) * RATE_BUCKET_S)

    def take_delta(self) -> dict[str, Any]:
        """What was recorded since the last call, as a message for the master (msgpack-able), and start afresh."""
        payload = {
            "version": PAYLOAD_VERSION,
            "endpoints": {
                name: {
                    "hdr": e.histogram.encode(),
                    "successes": e.successes,
                    "failures": e.failures,
                    "reasons": [[reason, count] for reason, count in e.reasons.items()],
                }
                for name, e in self.endpoints.items()
            },
            "completions": [[bucket, count] for bucket, count in self.completions.items()],
        }
        self.reset()
        return payload

    def merge(self, payload: Mapping[str, Any]) -> None:
        """Add a worker's delta (from :meth:`take_delta`)."""
        if payload.get("version") != PAYLOAD_VERSION:
            raise ValueError(f"latency payload version {payload.get('version')!r}, expected {PAYLOAD_VERSION}")
        for name, item in payload["endpoints"].items():
            endpoint = self._endpoint(name)
            add_histogram(endpoint.histogram, HdrHistogram.decode(item["hdr"]))
            endpoint.successes += int(item["successes"])
            endpoint.failures += int(item["failures"])
            for reason, count in item["reasons"]:
                endpoint.add_reason(reason, int(count))
        for bucket, count in payload["completions"]:
            self.completions[int(bucket)] += int(count)

    def merge_all(self, payloads: Iterable[Mapping[str, Any]]) -> None:
        for payload in payloads:
            self.merge(payload)
