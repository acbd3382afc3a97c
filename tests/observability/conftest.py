# SPDX-License-Identifier: Apache-2.0
"""One observed stack for the observability tests: etcd, NATS (with its monitoring port and the exporter's stand-in),
``triton-dynamo up`` in etcd + NATS mode with tracing on, a real Prometheus scraping all of it every second with the
repository's rule files, and a known batch of requests sent through the frontend.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from triton_dynamo.client.kserve import KServeClient, to_infer_inputs

from ..e2e.processes import Service, StackProcess, binary, free_ports, start_etcd, start_stack, wait_for_port
from ..telemetry.otlp import OtlpReceiver
from .nats_exporter_shim import NatsExporterShim
from .prom import Prometheus, start_prometheus

SCRAPE_INTERVAL_S = 1.0


def start_nats_monitored(workdir: Path) -> tuple[Service, int]:
    """nats-server with JetStream and its HTTP monitoring port (``-m``), which the exporter reads."""
    port, monitor = free_ports(2)
    log = workdir / "nats.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                binary("nats-server"),
                "-a",
                "127.0.0.1",
                "-p",
                str(port),
                "-m",
                str(monitor),
                "-js",
                "-sd",
                str(workdir / "nats-data"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_for_port(port, 30, proc)
    wait_for_port(monitor, 30, proc)
    return Service(proc, log, port), monitor


@dataclass
class Observed:
    """The running pieces, and what the test sent."""

    stack: StackProcess
    prometheus: Prometheus
    otlp: OtlpReceiver
    etcd: Service
    nats: Service
    sent: Traffic
    at: float = 0.0  # when every request had been scraped and the rules evaluated after it: query at this time
    baseline: float = 0.0  # when Prometheus had scraped every target once, before any request


@dataclass
class Traffic:
    """Requests sent, by what the workers should count."""

    requests: dict[str, int] = field(default_factory=dict)  # model -> requests that reached a worker
    invalid: dict[str, int] = field(default_factory=dict)  # model -> of which refused as invalid_argument
    responses: dict[str, int] = field(default_factory=dict)  # model -> responses sent
    inferences: dict[str, int] = field(default_factory=dict)  # model -> batch elements Triton ran
    streams: int = 0  # ModelStreamInfer requests
    unknown_model: int = 0  # requests for a model nobody serves (the frontend answers NOT_FOUND)
    started: float = 0.0
    finished: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def successes(self) -> int:
        return self.total - sum(self.invalid.values())

    def count(self, model: str, *, responses: int = 1, inferences: int = 1, invalid: bool = False) -> None:
        self.requests[model] = self.requests.get(model, 0) + 1
        if invalid:
            self.invalid[model] = self.invalid.get(model, 0) + 1
            return
        self.responses[model] = self.responses.get(model, 0) + responses
        self.inferences[model] = self.inferences.get(model, 0) + inferences


def touch_etcd(port: int) -> None:
    """One key written to etcd (through its JSON gateway), as a worker registering would: etcd's disk panels show
    write latencies, which exist only when something was written while Prometheus watched (the stack registered its
    workers before Prometheus started)."""
    body = json.dumps({"key": base64.b64encode(b"/observability-test/touch").decode(), "value": "MQ=="}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v3/kv/put", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def send_traffic(url: str, sent: Traffic, per_model: int = 50) -> None:
    """A known mix: unary and batched requests, bad inputs, streams to the decoupled model, an unknown model.

    ``per_model`` requests of each model: a python-backend model's first request in a worker takes 50 to 100+ ms on
    a busy 2-core machine, and with too few requests these cold starts alone (one per model and worker) would be
    enough of them to burn the latency SLO (6% of requests over 100 ms for the slow-burn alert).
    """
    sent.started = time.time()
    rng = np.random.default_rng(7)
    client = grpcclient.InferenceServerClient(url)
    try:
        for i in range(per_model):
            client.infer("identity", to_infer_inputs({"INPUT0": np.arange(i + 1, dtype=np.int32)}))
            sent.count("identity")
        for _ in range(4):  # FP32 where the model wants INT32: the worker refuses it as invalid_argument
            with pytest.raises(InferenceServerException, match="INVALID_ARGUMENT"):
                client.infer("identity", to_infer_inputs({"INPUT0": np.ones(3, dtype=np.float32)}))
            sent.count("identity", invalid=True)
        for _ in range(per_model):
            a, b = rng.standard_normal((2, 3, 4)).astype(np.float32)
            client.infer("add_sub", to_infer_inputs({"INPUT0": a, "INPUT1": b}))
            sent.count("add_sub", inferences=3)
        for _ in range(per_model):
            features = rng.standard_normal((5, 64)).astype(np.float32)
            client.infer("classifier", to_infer_inputs({"FEATURES": features}))
            sent.count("classifier", inferences=5)
        for _ in range(per_model):
            client.infer("string_ops", to_infer_inputs({"TEXT": np.array([b"hello", b"world"], dtype=object)}))
            sent.count("string_ops")
        for _ in range(2):
            with pytest.raises(InferenceServerException, match=r"NOT_FOUND|not found"):
                client.infer("no_such_model", to_infer_inputs({"INPUT0": np.ones(3, dtype=np.int32)}))
            sent.unknown_model += 1
    finally:
        client.close()
    with KServeClient(url) as streams:
        for _ in range(per_model):
            responses = streams.stream("repeat", {"VALUES": np.array([1, 2, 3], dtype=np.int32)})
            assert len(responses) == 3
            sent.count("repeat", responses=3)
            sent.streams += 1
    sent.finished = time.time()


def wait_for_scrapes(prometheus: Prometheus, sent: Traffic, timeout_s: float = 60) -> float:
    """A time at which Prometheus has every request in the workers' and the frontend's counters, has evaluated its
    rules at least twice since, and every target answered its last few scrapes (a scrape that timed out on a busy
    machine would make up == 0 at that instant, and the down alerts' expressions true)."""
    deadline = time.monotonic() + timeout_s
    expected = {
        "sum(triton_dynamo_requests_total)": sent.total,
        'sum(dynamo_frontend_requests_total{endpoint="tensor"})': sent.total,
        "sum(triton_dynamo_request_duration_seconds_count)": sent.total,
    }
    steady = f"min(min_over_time(up[{round(4 * SCRAPE_INTERVAL_S)}s]))"
    seen: dict[str, float] = {}
    counted = False
    while time.monotonic() < deadline:
        now = time.time()
        seen = {expr: _scalar(prometheus, expr, now) for expr in [*expected, steady]}
        if not counted and all(seen[expr] == n for expr, n in expected.items()):
            counted = True
            time.sleep(3 * SCRAPE_INTERVAL_S)  # rules evaluated after the last increment
            continue
        if counted and seen[steady] == 1:
            return now
        time.sleep(0.5)
    raise TimeoutError(f"Prometheus never saw the requests sent, or its scrapes kept failing: {expected}, last {seen}")


def _scalar(prometheus: Prometheus, expr: str, at: float) -> float:
    result = prometheus.query(expr, at)
    return float(result[0]["value"][1]) if result else -1


@pytest.fixture(scope="package")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    workdir = tmp_path_factory.mktemp("observability")
    otlp = OtlpReceiver()
    etcd = start_etcd(workdir)
    nats, monitor_port = start_nats_monitored(workdir)
    shim = NatsExporterShim(f"http://127.0.0.1:{monitor_port}")
    stack = prometheus = None
    try:
        env = {
            "ETCD_ENDPOINTS": f"http://127.0.0.1:{etcd.port}",
            "NATS_SERVER": f"nats://127.0.0.1:{nats.port}",
            # Workers trace (and put trace ids on latency buckets as exemplars) when an OTLP endpoint is set.
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": otlp.endpoint,
        }
        stack = start_stack(
            workdir / "stack",
            workers=2,
            extra_args=("--discovery", "etcd", "--request-plane", "nats"),
            env=env,
        )
        (prometheus_port,) = free_ports(1)
        prometheus = start_prometheus(
            workdir,
            prometheus_port,
            frontend=f"127.0.0.1:{stack.metrics_port}",
            workers=[f"127.0.0.1:{p}" for p in stack.worker_metrics_ports],
            extra_jobs={"etcd": [f"127.0.0.1:{etcd.port}"], "nats": [shim.target]},
            scrape_interval_s=SCRAPE_INTERVAL_S,
        )
        wait_for_targets(prometheus)
        baseline = time.time()
        touch_etcd(etcd.port)
        sent = Traffic()
        send_traffic(stack.grpc_url, sent)
        observed = Observed(stack, prometheus, otlp, etcd, nats, sent, baseline=baseline)
        observed.at = wait_for_scrapes(prometheus, sent)
        yield observed
    finally:
        if prometheus is not None:
            prometheus.stop()
        if stack is not None:
            stack.stop()
        shim.stop()
        nats.stop()
        etcd.stop()
        otlp.stop()


def wait_for_targets(prometheus: Prometheus, timeout_s: float = 30) -> None:
    """Until every scrape target has answered at least once."""
    deadline = time.monotonic() + timeout_s
    targets: list = []
    while time.monotonic() < deadline:
        targets = prometheus.api("/api/v1/targets")["activeTargets"]
        if targets and all(t["health"] == "up" for t in targets):
            return
        time.sleep(0.3)
    raise TimeoutError(f"scrape targets not all up: {[(t['scrapeUrl'], t['health'], t['lastError']) for t in targets]}")
