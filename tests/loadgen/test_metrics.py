# SPDX-License-Identifier: Apache-2.0
"""Client metrics for Prometheus: the exact names, labels and buckets the dashboards query, served over HTTP."""

from __future__ import annotations

import socket
import urllib.request

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.processes import free_ports
from triton_dynamo.loadgen.metrics import DURATION_BUCKETS_S, ClientMetrics


def _samples(metrics: ClientMetrics) -> dict:
    """{(sample name, frozenset of labels): value} of everything the registry exposes."""
    families = text_string_to_metric_families(generate_latest(metrics.registry).decode())
    return {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}


def _key(name: str, **labels: str) -> tuple[str, frozenset]:
    return name, frozenset(labels.items())


def test_requests_and_durations_by_model_kind_and_outcome() -> None:
    metrics = ClientMetrics()
    metrics.observe("identity", "unary", 0.0003, success=True)
    metrics.observe("identity", "unary", 0.002, success=True)
    metrics.observe("identity", "unary", 0.5, success=False)
    metrics.observe("repeat", "stream", 0.04, success=True)
    samples = _samples(metrics)
    total = "triton_dynamo_client_requests_total"
    assert samples[_key(total, model="identity", kind="unary", outcome="success")] == 2
    assert samples[_key(total, model="identity", kind="unary", outcome="failure")] == 1
    assert samples[_key(total, model="repeat", kind="stream", outcome="success")] == 1
    bucket = "triton_dynamo_client_request_duration_seconds_bucket"
    bounds = {dict(labels)["le"] for name, labels in samples if name == bucket}
    assert sorted(float(le) for le in bounds - {"+Inf"}) == [float(b) for b in DURATION_BUCKETS_S]
    assert samples[_key(bucket, model="identity", kind="unary", le="0.0005")] == 1
    assert samples[_key(bucket, model="identity", kind="unary", le="0.0025")] == 2
    assert samples[_key(bucket, model="identity", kind="unary", le="+Inf")] == 3
    assert samples[_key("triton_dynamo_client_request_duration_seconds_count", model="identity", kind="unary")] == 3
    assert any(name == "process_cpu_seconds_total" for name, _ in samples)


def test_served_on_its_port_or_the_next_free_one() -> None:
    (port,) = free_ports(1, consecutive=True)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        metrics = ClientMetrics()
        assert metrics.serve(port, host="127.0.0.1") is None  # a master's port is exact
        served = metrics.serve(port, host="127.0.0.1", next_free=True)  # a worker moves on
    assert served is not None and served > port
    metrics.observe("identity", "unary", 0.001, success=True)
    with urllib.request.urlopen(f"http://127.0.0.1:{served}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'triton_dynamo_client_requests_total{kind="unary",model="identity",outcome="success"} 1.0' in text
    assert ClientMetrics().serve(0) is None
