# SPDX-License-Identifier: Apache-2.0
"""The worker's metrics plumbing (pure parts): re-exposing Triton's and Dynamo's text in OpenMetrics."""

from __future__ import annotations

from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from triton_dynamo.telemetry.metrics import WorkerMetrics, scrape_registry, untyped_counters, without_families

TRITON_TEXT = """# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="identity",version="1"} 7
# HELP nv_inference_pending_request_count Instantaneous number of pending requests
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{model="identity",version="1"} 0
"""

DYNAMO_TEXT = """# HELP dynamo_component_requests_total Total number of requests processed by work handler
# TYPE dynamo_component_requests_total counter
dynamo_component_requests_total{dynamo_endpoint="identity_1",model="identity"} 7
# HELP triton_dynamo_requests_total ours, appended to Dynamo's port
# TYPE triton_dynamo_requests_total counter
triton_dynamo_requests_total{model="identity",outcome="success"} 7
# HELP nv_inference_count also appended
# TYPE nv_inference_count counter
nv_inference_count{model="identity",version="1"} 7
"""


def test_counters_without_total_are_re_exposed_untyped() -> None:
    families = {f.name: f for f in untyped_counters(TRITON_TEXT + DYNAMO_TEXT)}
    assert families["nv_inference_request_success"].type == "unknown"
    # under Triton's own name (the text parser alone would have called the samples ..._total)
    assert [s.name for s in families["nv_inference_request_success"].samples] == ["nv_inference_request_success"]
    assert families["nv_inference_pending_request_count"].type == "gauge"
    assert families["dynamo_component_requests"].type == "counter"


def test_without_families_drops_whole_families_by_prefix() -> None:
    kept = without_families(DYNAMO_TEXT, ("triton_dynamo_", "nv_"))
    assert "dynamo_component_requests_total{" in kept
    assert "triton_dynamo_" not in kept and "nv_" not in kept


def test_scrape_target_is_valid_openmetrics_with_everything_once() -> None:
    metrics = WorkerMetrics()
    metrics.declare("identity")
    metrics.model("identity").latency.observe(0.0004, "0af7651916cd43dd8448eb211c80319c")
    text = openmetrics(scrape_registry(metrics, lambda: TRITON_TEXT, lambda: DYNAMO_TEXT)).decode()
    families = {f.name: f for f in parse_openmetrics(text)}  # raises on anything Prometheus would refuse
    assert {
        "triton_dynamo_request_duration_seconds",
        "nv_inference_request_success",
        "dynamo_component_requests",
    } <= set(families)
    assert text.count("# TYPE triton_dynamo_requests counter") == 1  # not again from Dynamo's port
    assert text.count("nv_inference_count") == 0  # Triton's families come from Triton, not Dynamo's copy
    exemplars = [s.exemplar for s in families["triton_dynamo_request_duration_seconds"].samples if s.exemplar]
    assert [e.labels["trace_id"] for e in exemplars] == ["0af7651916cd43dd8448eb211c80319c"]


def test_a_failing_source_leaves_the_rest_of_the_scrape() -> None:
    def broken() -> str:
        raise ConnectionRefusedError("system port down")

    text = openmetrics(scrape_registry(WorkerMetrics(), lambda: TRITON_TEXT, broken)).decode()
    assert "nv_inference_request_success" in text and "dynamo_component" not in text


def test_histogram_buckets_counts_and_sums_like_prometheus() -> None:
    metrics = WorkerMetrics()
    stats = metrics.model("m")
    for value in (0.0001, 0.00011, 0.003, 20.0):  # on a bound, just above one, in the middle, past the last
        stats.latency.observe(value)
    family = next(f for f in metrics.collect() if f.name == "triton_dynamo_request_duration_seconds")
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    assert (buckets["0.0001"], buckets["0.00025"], buckets["0.005"], buckets["10.0"], buckets["+Inf"]) == (
        1,
        2,
        3,
        3,
        4,
    )
    count = next(s.value for s in family.samples if s.name.endswith("_count"))
    total = next(s.value for s in family.samples if s.name.endswith("_sum"))
    assert count == 4 and abs(total - 20.00321) < 1e-9
