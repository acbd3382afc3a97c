# SPDX-License-Identifier: Apache-2.0
"""The dashboards, recording rules and alerts against a real stack scraped by a real Prometheus.

Every PromQL expression of every dashboard panel must return data, except those listed in ``NO_DATA_HERE`` (with the
reason), every recording rule must record data, every alert expression must be empty while the stack is healthy, and
the counters must equal the requests the test sent. All queries are evaluated at one instant, ``observed.at``, just
after the traffic was scraped, so the checks do not depend on how long they take.
"""

from __future__ import annotations

import math
import re
import warnings

import pytest

from .conftest import Observed
from .prom import (
    LABEL_VALUES,
    RULES_DIR,
    PanelQuery,
    has_data,
    load_dashboards,
    panel_queries,
    substitute,
    variable_queries,
)

# Grafana's variables as the test sets them: $model a model the test sent every kind of request to (valid and
# invalid); $instance every worker; $__rate_interval (see variables()) a window that covers all the test's traffic.
VARIABLES = {"model": "identity", "instance": ".*", "__interval": "15s", "__range": "5m"}


def variables(observed: Observed) -> dict[str, str]:
    """VARIABLES and a $__rate_interval from before the traffic to the query time (at least 1 min): on a slow machine
    the traffic may take longer than a minute, and a quantile of a window without requests is NaN."""
    window = max(60, math.ceil(observed.at - observed.sent.started) + 15)
    return {**VARIABLES, "__rate_interval": f"{window}s"}


GPU = "nv_gpu_* and nv_energy_consumption exist only on hosts with NVIDIA GPUs; Triton reports none on this CPU host"
DCGM = "DCGM_* come from NVIDIA's DCGM exporter (Compose profile gpu), which needs a GPU; none here"
LOCUST = "triton_dynamo_client_* come from the load generator (Locust), which this test does not run"
COLLECTOR = (
    "otelcol_* come from the OpenTelemetry collector, which does not run here (the test's OTLP receiver is not one)"
)
TEMPO = "tempo_* come from Tempo, which does not run here"

# (dashboard uid, panel title, refId) -> why that query has no data in this test. Anything else must have data.
NO_DATA_HERE = {
    ("triton-dynamo-internals", "GPU utilization", "A"): GPU,
    ("triton-dynamo-internals", "GPU memory", "A"): GPU,
    ("triton-dynamo-internals", "GPU memory", "B"): GPU,
    ("triton-dynamo-internals", "GPU power", "A"): GPU,
    ("triton-dynamo-internals", "GPU power", "B"): GPU,
    ("triton-dynamo-internals", "GPU energy", "A"): GPU,
    ("triton-dynamo-internals", "GPU activity (DCGM)", "A"): DCGM,
    ("triton-dynamo-internals", "GPU activity (DCGM)", "B"): DCGM,
    ("triton-dynamo-internals", "GPU memory and power (DCGM)", "A"): DCGM,
    ("triton-dynamo-internals", "GPU memory and power (DCGM)", "B"): DCGM,
    ("triton-dynamo-model", "Client-observed vs server latency (p99)", "A"): LOCUST,
    ("triton-dynamo-model", "Load generator: requests by outcome", "A"): LOCUST,
    ("triton-dynamo-infrastructure", "Collector spans", "A"): COLLECTOR,
    ("triton-dynamo-infrastructure", "Collector spans", "B"): COLLECTOR,
    ("triton-dynamo-infrastructure", "Collector spans", "C"): COLLECTOR,
    ("triton-dynamo-infrastructure", "Collector spans", "D"): COLLECTOR,
    ("triton-dynamo-infrastructure", "Collector export queue", "A"): COLLECTOR,
    ("triton-dynamo-infrastructure", "Tempo spans received", "A"): TEMPO,
}

DASHBOARDS = load_dashboards()
QUERIES = [q for board in DASHBOARDS.values() for q in panel_queries(board)]


def test_every_scrape_target_is_up(observed: Observed) -> None:
    jobs = observed.prometheus.by_label("min by (job) (up)", "job", observed.at)
    assert jobs == {"frontend": 1, "worker": 1, "etcd": 1, "nats": 1, "prometheus": 1}, jobs
    assert observed.prometheus.value('count(up{job="worker"})', observed.at) == 2


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.dashboard}:{q.panel}:{q.ref}")
def test_dashboard_query(observed: Observed, query: PanelQuery) -> None:
    expr = substitute(query.expr, variables(observed))
    result = observed.prometheus.query(expr, observed.at)  # raises on invalid PromQL, excluded queries included
    if query.key in NO_DATA_HERE:
        assert not result, f"{query} has data now: drop it from NO_DATA_HERE ({NO_DATA_HERE[query.key]})"
    else:
        assert has_data(result), f"no data: {query}\nevaluated as {expr}\ngot {result}"


def test_no_data_list_names_real_queries() -> None:
    keys = {q.key for q in QUERIES}
    assert set(NO_DATA_HERE) <= keys, set(NO_DATA_HERE) - keys


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_template_variables_have_values(observed: Observed, uid: str) -> None:
    for query in variable_queries(DASHBOARDS[uid]):
        match = LABEL_VALUES.match(query)
        assert match, f"{uid}: variable query {query!r} is not label_values(...)"
        values = observed.prometheus.api(
            f"/api/v1/label/{match['label']}/values",
            **{"match[]": match["match"], "start": observed.sent.started - 60, "end": observed.at},
        )
        assert values, f"{uid}: {query} has no values"
        if match["label"] == "model":
            assert set(observed.sent.requests) <= set(values), values


def test_latency_panels_carry_exemplars(observed: Observed) -> None:
    """Every panel target that asks Grafana for exemplars gets some: trace ids on the workers' latency buckets."""
    with_exemplars = [q for q in QUERIES if q.exemplar and q.key not in NO_DATA_HERE]
    assert len(with_exemplars) >= 5
    for query in with_exemplars:
        expr = substitute(query.expr, variables(observed))
        found = observed.prometheus.exemplars(expr, observed.sent.started - 1, observed.at)
        trace_ids = {e["labels"].get("trace_id") for series in found for e in series["exemplars"]}
        assert trace_ids, f"no exemplars for {query}"
        assert all(t and re.fullmatch(r"[0-9a-f]{32}", t) for t in trace_ids), trace_ids
    # An exemplar leads to a trace that was exported: what Grafana's link to Tempo opens.
    found = observed.prometheus.exemplars(
        "triton_dynamo_request_duration_seconds_bucket", observed.sent.started - 1, observed.at
    )
    exemplar_ids = {e["labels"]["trace_id"] for series in found for e in series["exemplars"]}
    observed.otlp.wait_for(lambda spans: exemplar_ids & {s.trace_id for s in spans}, timeout_s=30)


def _rules(observed: Observed) -> list[dict]:
    groups = observed.prometheus.api("/api/v1/rules")["groups"]
    return [rule | {"group": g["name"], "file": g["file"]} for g in groups for rule in g["rules"]]


def test_prometheus_loaded_every_rule_file(observed: Observed) -> None:
    files = {r["file"] for r in _rules(observed)}
    assert {p.name for p in RULES_DIR.glob("*.yml")} == {f.rsplit("/", 1)[-1] for f in files}


def test_recording_rules_record_data(observed: Observed) -> None:
    failures = []
    for rule in _rules(observed):
        if rule["type"] != "recording":
            continue
        if rule["health"] != "ok":
            failures.append(f"{rule['name']}: health {rule['health']} {rule.get('lastError')}")
            continue
        selector = rule["name"] + "{" + ",".join(f'{k}="{v}"' for k, v in rule.get("labels", {}).items()) + "}"
        recorded = observed.prometheus.query(selector, observed.at)
        if not has_data(recorded):
            failures.append(f"{selector}: nothing recorded ({recorded})")
        if not has_data(observed.prometheus.query(rule["query"], observed.at)):
            failures.append(f"{rule['name']}: its expression has no data: {rule['query']}")
    assert not failures, "\n".join(failures)


# The latency-burn alerts' thresholds: fraction of requests over 100 ms (burn rate x 1% budget).
LATENCY_BURN_THRESHOLDS = {"TritonDynamoLatencyBudgetBurnFast": 0.144, "TritonDynamoLatencyBudgetBurnSlow": 0.06}
# The alert's ratio of rates equals the measured fraction when the histogram's series start at zero (they do: the
# worker declares them, and Prometheus scrapes them before the first request); allow for rounding only.
BURN_TOLERANCE = 0.005


def measured_slow_fraction(observed: Observed) -> dict[str, float]:
    """model -> fraction of the test's requests that took over 100 ms in the worker, from the raw histogram counts
    (at ``at`` less at ``baseline``), independently of the recording rules."""
    prom = observed.prometheus
    slow = "sum by (model) (triton_dynamo_request_duration_seconds_count) - sum by (model) "
    slow += '(triton_dynamo_request_duration_seconds_bucket{le="0.1"})'
    total = "sum by (model) (triton_dynamo_request_duration_seconds_count)"
    slow_at, slow_before = prom.by_label(slow, "model", observed.at), prom.by_label(slow, "model", observed.baseline)
    total_at, total_before = (
        prom.by_label(total, "model", observed.at),
        prom.by_label(total, "model", observed.baseline),
    )
    return {
        model: (slow_at[model] - slow_before.get(model, 0)) / (total_at[model] - total_before.get(model, 0))
        for model in observed.sent.requests
    }


def check_burn_alert(name: str, result: list[dict], slow: dict[str, float]) -> None:
    """A latency-burn alert is quiet while the requests are fast, and fires when they were not (a 2-core machine
    busy with other work can push a few of the test's requests over 100 ms: then the alert is right to fire)."""
    threshold = LATENCY_BURN_THRESHOLDS[name]
    firing = {r["metric"]["model"] for r in result}
    for model, fraction in slow.items():
        if abs(fraction - threshold) < BURN_TOLERANCE:
            continue
        expected = fraction > threshold
        assert (model in firing) == expected, (
            f"{name}: {fraction:.1%} of {model}'s requests took over 100 ms (threshold {threshold:.1%}) "
            f"but the alert expression says {result}"
        )
        if expected:
            warnings.warn(
                f"{name} fires for {model}: {fraction:.1%} of its requests took over 100 ms on this busy machine",
                stacklevel=2,
            )


def diagnostics(observed: Observed) -> str:
    """Scrape health over the test, to tell a busy machine from a broken rule."""
    lines = []
    for expr in (
        "min by (job, instance) (min_over_time(up[5m])) < 1",
        "max by (job) (max_over_time(scrape_duration_seconds[5m]))",
    ):
        result = observed.prometheus.query(expr, observed.at)
        lines.append(f"{expr}: " + ", ".join(f"{r['metric']} {r['value'][1]}" for r in result))
    return "\n".join(lines)


def test_alerts_are_quiet_while_healthy(observed: Observed) -> None:
    alerts = [r for r in _rules(observed) if r["type"] == "alerting"]
    assert len(alerts) >= 8
    slow = measured_slow_fraction(observed)
    for rule in alerts:
        assert rule["health"] == "ok", rule
        result = observed.prometheus.query(rule["query"], observed.at)
        if rule["name"] in LATENCY_BURN_THRESHOLDS:
            check_burn_alert(rule["name"], result, slow)
            continue
        assert result == [], f"alert {rule['name']} would fire: {rule['query']} -> {result}\n{diagnostics(observed)}"
        # Nor was it pending or firing at that time (ALERTS holds the state of each evaluation).
        state = observed.prometheus.query(f'ALERTS{{alertname="{rule["name"]}"}}', observed.at)
        assert state == [], f"alert {rule['name']} was active: {state}\n{diagnostics(observed)}"
    # The alert expressions do see the series they watch (an alert on a misspelt metric would be quiet forever).
    watched = {
        'up{job="worker"}': 2,
        'up{job="frontend"}': 1,
        "dynamo_frontend_model_ready": len(observed.stack.models),
        "model:triton_dynamo_request_server_errors:ratio_rate5m": len(observed.sent.requests),
        "model:triton_dynamo_latency_slo_miss:ratio_rate5m": len(observed.sent.requests),
        "model:triton_dynamo_latency_slo_miss:ratio_rate1h": len(observed.sent.requests),
        "etcd_server_has_leader": 1,
        "gnatsd_varz_slow_consumers": 1,
    }
    for expr, at_least in watched.items():
        result = observed.prometheus.query(expr, observed.at)
        assert has_data(result) and len(result) >= at_least, (expr, result)


def test_worker_counters_equal_the_requests_sent(observed: Observed) -> None:
    prom, at, sent = observed.prometheus, observed.at, observed.sent
    assert prom.value("sum(triton_dynamo_requests_total)", at) == sent.total
    assert prom.by_label("sum by (model) (triton_dynamo_requests_total) > 0", "model", at) == sent.requests
    outcomes = prom.by_label("sum by (outcome) (triton_dynamo_requests_total) > 0", "outcome", at)
    assert outcomes == {"success": sent.successes, "invalid_argument": sum(sent.invalid.values())}
    assert prom.by_label("sum by (model) (triton_dynamo_responses_total) > 0", "model", at) == sent.responses
    assert prom.value("sum(triton_dynamo_request_duration_seconds_count)", at) == sent.total
    # Queue and compute are Triton's times: only requests that reached Triton (not those refused as invalid).
    assert prom.value("sum(triton_dynamo_compute_duration_seconds_count)", at) == sent.successes
    assert prom.value("sum(triton_dynamo_queue_duration_seconds_count)", at) == sent.successes
    assert prom.value("sum(triton_dynamo_inflight_requests)", at) == 0
    assert prom.value("sum(triton_dynamo_input_bytes_total)", at) > 0
    # Both workers served (round robin).
    per_worker = prom.query("sum by (instance) (triton_dynamo_requests_total)", at)
    assert len(per_worker) == 2 and all(float(w["value"][1]) > 0 for w in per_worker), per_worker


def test_triton_counters_equal_the_requests_sent(observed: Observed) -> None:
    prom, at, sent = observed.prometheus, observed.at, observed.sent
    assert prom.value("sum(nv_inference_request_success)", at) == sent.successes
    assert prom.value("sum(nv_inference_request_failure)", at) == 0
    assert prom.by_label("sum by (model) (nv_inference_count) > 0", "model", at) == sent.inferences
    batch = prom.by_label("sum by (model) (nv_inference_count) / sum by (model) (nv_inference_exec_count)", "model", at)
    # Sent one at a time, so each execution runs one request: the mean batch is the clients' (the batcher would
    # only make it larger).
    for model in ("add_sub", "classifier", "identity"):
        client_batch = sent.inferences[model] / (sent.requests[model] - sent.invalid.get(model, 0))
        assert batch[model] == pytest.approx(client_batch), (model, batch)


def test_frontend_counters_equal_the_requests_sent(observed: Observed) -> None:
    prom, at, sent = observed.prometheus, observed.at, observed.sent
    tensor = '{endpoint="tensor"}'
    assert prom.value(f"sum(dynamo_frontend_requests_total{tensor})", at) == sent.total
    assert prom.by_label(f"sum by (model) (dynamo_frontend_requests_total{tensor}) > 0", "model", at) == sent.requests
    # Every worker error reaches the frontend as status=error, error_type=internal; requests for an unknown model
    # are answered NOT_FOUND before any metric counts them.
    statuses = prom.query(f"sum by (status, error_type) (dynamo_frontend_requests_total{tensor}) > 0", at)
    assert {(r["metric"]["status"], r["metric"].get("error_type", "")): float(r["value"][1]) for r in statuses} == {
        ("success", ""): sent.successes,
        ("error", "internal"): sum(sent.invalid.values()),
    }
    types = prom.by_label(f"sum by (request_type) (dynamo_frontend_requests_total{tensor})", "request_type", at)
    assert types == {"unary": sent.total - sent.streams, "stream": sent.streams}
    assert prom.value(f"sum(dynamo_frontend_requests_started_total{tensor})", at) == sent.total
    assert prom.value("sum(dynamo_frontend_inflight_requests)", at) == 0
    assert prom.value("min(dynamo_frontend_model_ready)", at) == 1


def test_dynamo_and_nats_saw_the_requests(observed: Observed) -> None:
    prom, at, sent = observed.prometheus, observed.at, observed.sent
    # the model endpoints (the control endpoint, which has no model label, also answers ModelReady through the proxy)
    assert prom.value('sum(dynamo_component_requests_total{model!=""})', at) == sent.total
    # With the NATS request plane every request crosses nats-server.
    assert prom.value("sum(gnatsd_varz_in_msgs)", at) >= sent.total
    assert prom.value("sum(gnatsd_varz_connections)", at) >= 3  # the frontend and two workers


def test_latency_quantiles_are_plausible(observed: Observed) -> None:
    window = variables(observed)["__rate_interval"]
    p99 = observed.prometheus.by_label(
        f"histogram_quantile(0.99, sum by (model, le) (rate(triton_dynamo_request_duration_seconds_bucket[{window}])))",
        "model",
        observed.at,
    )
    for model in observed.sent.requests:
        assert 0 < p99[model] <= 10, (model, p99)
    recorded = observed.prometheus.query(
        'model:triton_dynamo_request_duration_seconds:quantile_rate1m{quantile="0.99"}', observed.at
    )
    assert has_data(recorded) and all(math.isnan(v := float(r["value"][1])) or 0 < v <= 10 for r in recorded), recorded
    slo = observed.prometheus.by_label("model:triton_dynamo_latency_slo_miss:ratio_rate5m", "model", observed.at)
    assert all(not math.isnan(v) and 0 <= v <= 1 for m, v in slo.items() if m in observed.sent.requests), slo


def test_dashboard_annotations_are_valid_promql(observed: Observed) -> None:
    """The alert annotations: empty while healthy, but Prometheus must accept them."""
    for board in DASHBOARDS.values():
        for annotation in board["annotations"]["list"]:
            if "expr" in annotation:
                assert observed.prometheus.query(substitute(annotation["expr"], variables(observed)), observed.at) == []
