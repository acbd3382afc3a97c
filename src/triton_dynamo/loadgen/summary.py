# SPDX-License-Identifier: Apache-2.0
"""The JSON summary of a run: throughput, microsecond percentiles per endpoint and overall, failures by reason,
request counts per model, and for a step ramp each step's throughput and the knee.

Layout (see ``loadtest/README.md``)::

    {"duration_s", "users_max", "shape": {...},
     "overall": {"requests", "successes", "failures", "throughput_rps", "latency_us": {"p50_us", "p90_us",
                 "p99_us", "p99_9_us", "min_us", "mean_us", "max_us", "count"}},
     "endpoints": {"identity/unary": {"model", "kind", ...as overall..., "failures_by_reason", "locust"}},
     "models": {"identity": {"requests", "successes", "failures"}},
     "failures_by_reason": {"REASON": count},
     "steps": [...], "knee": {...}}       # step shape only

Throughput counts successful requests per second of test time.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .knee import StepWindow, find_knee, step_throughputs
from .latency import EndpointLatency, LatencyRecorder


def endpoint_summary(endpoint: EndpointLatency, duration_s: float) -> dict[str, Any]:
    requests = endpoint.successes + endpoint.failures
    return {
        "requests": requests,
        "successes": endpoint.successes,
        "failures": endpoint.failures,
        "throughput_rps": round(endpoint.successes / duration_s, 2) if duration_s > 0 else None,
        "latency_us": endpoint.percentiles_us(),
        "failures_by_reason": dict(endpoint.reasons.most_common()),
    }


def build_summary(
    recorder: LatencyRecorder,
    *,
    started_s: float,
    ended_s: float,
    shape: Mapping[str, Any],
    steps: Sequence[StepWindow] = (),
    knee_min_gain: float = 0.05,
    locust_stats: Mapping[str, Mapping[str, Any]] | None = None,
    users_max: int | None = None,
) -> dict[str, Any]:
    """The summary of what ``recorder`` holds for a test that ran from ``started_s`` to ``ended_s`` (wall clock)."""
    duration_s = max(ended_s - started_s, 0.0)
    endpoints: dict[str, Any] = {}
    models: dict[str, Counter] = {}
    for name in sorted(recorder.endpoints):
        model, _, kind = name.rpartition("/")
        item = {"model": model, "kind": kind, **endpoint_summary(recorder.endpoints[name], duration_s)}
        if locust_stats and name in locust_stats:
            item["locust"] = dict(locust_stats[name])
        endpoints[name] = item
        counts = models.setdefault(model, Counter())
        counts.update({"requests": item["requests"], "successes": item["successes"], "failures": item["failures"]})
    overall = endpoint_summary(recorder.overall(), duration_s)
    summary: dict[str, Any] = {
        "started_at_s": round(started_s, 3),
        "duration_s": round(duration_s, 3),
        "users_max": users_max,
        "shape": dict(shape),
        "overall": {k: v for k, v in overall.items() if k != "failures_by_reason"},
        "endpoints": endpoints,
        "models": {model: dict(counts) for model, counts in sorted(models.items())},
        "failures_by_reason": overall["failures_by_reason"],
    }
    if steps:
        measured = step_throughputs(steps, recorder.completion_rate)
        summary["steps"] = measured
        summary["knee"] = find_knee([(s["users"], s["throughput_rps"]) for s in measured], knee_min_gain)
    return summary


def write_summary(path: Path, summary: Mapping[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return path


def format_table(summary: Mapping[str, Any]) -> list[str]:
    """Lines of a plain-text table: one per endpoint and the total, then the knee when there is one."""
    header = f"{'endpoint':<28} {'reqs':>8} {'fails':>6} {'req/s':>9} {'p50 us':>9} {'p90 us':>9} {'p99 us':>9} "
    header += f"{'p99.9 us':>9}"
    lines = [header]
    rows = [*summary["endpoints"].items(), ("total", summary["overall"])]
    for name, item in rows:
        lat = item["latency_us"]
        cells = [lat.get(k) for k in ("p50_us", "p90_us", "p99_us", "p99_9_us")]
        shown = " ".join(f"{'-' if c is None else c:>9}" for c in cells)
        lines.append(
            f"{name:<28} {item['requests']:>8} {item['failures']:>6} {item['throughput_rps'] or 0:>9.1f} {shown}"
        )
    knee = summary.get("knee")
    if knee is not None:
        if knee["found"]:
            lines.append(f"knee: {knee['users']} users at {knee['throughput_rps']} req/s ({knee['reason']})")
        else:
            lines.append(f"knee: not found ({knee['reason']})")
    return lines
