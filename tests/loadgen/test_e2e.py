# SPDX-License-Identifier: Apache-2.0
"""Real Locust runs against the real stack (frontend, two workers, Triton): counts that match the server's, checks
that catch wrong answers, a step ramp's knee, and master + worker with merged HDR histograms."""

from __future__ import annotations

import csv
import json
import re
import threading
from pathlib import Path

import pytest

from tests.e2e.processes import StackProcess, free_ports
from triton_dynamo.loadgen.cli import loadtest

from .locust_runs import frontend_requests, poll_while, start_locust

SAMPLE_MIX = "identity:2,identity_fp32:1,add_sub:1,string_ops:1,repeat:1,classifier:1,echo_all:1"
CLIENT_REQUESTS = r'^triton_dynamo_client_requests_total\{kind="unary",model="identity",outcome="success"\} [1-9]'


def assert_consistent(summary: dict, served: dict) -> None:
    """Per model, the summary's requests are what the frontend counted; per endpoint, HDR and Locust agree."""
    assert summary["models"], "no requests"
    for model, counts in summary["models"].items():
        assert counts["requests"] == served[model], model
    for name, endpoint in summary["endpoints"].items():
        latency = endpoint["latency_us"]
        assert latency["count"] == endpoint["successes"] > 0, name
        assert 0 < latency["p50_us"] <= latency["p90_us"] <= latency["p99_us"] <= latency["p99_9_us"], name
        assert endpoint["locust"]["requests"] == endpoint["requests"], name
        assert endpoint["locust"]["failures"] == endpoint["failures"], name


def run_loadtest_cli(argv: list[str], metrics_port: int, patterns: list[str]) -> tuple[int, str]:
    """``triton-dynamo loadtest ARGV`` (in a thread), and the client metrics scraped while it ran once they matched
    ``patterns``."""
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(code=loadtest(argv)))
    thread.start()
    scraped = poll_while(thread.is_alive, metrics_port, patterns)
    thread.join(timeout=120)
    assert not thread.is_alive()
    return result["code"], scraped


def test_headless_run_of_every_sample_model_matches_the_servers_counts(
    file_stack: StackProcess, tmp_path: Path
) -> None:
    (metrics_port,) = free_ports(1)
    before = frontend_requests(file_stack.metrics_port)
    argv = ["--url", file_stack.grpc_url, "--users", "6", "--spawn-rate", "6", "--duration-s", "8"]
    argv += ["--out-dir", str(tmp_path), "--models", SAMPLE_MIX, "--variable-dims", "repeat.VALUES=3", "--check"]
    argv += ["--client-metrics-port", str(metrics_port), "--", "--only-summary"]
    repeat_bucket = 'triton_dynamo_client_request_duration_seconds_bucket{kind="stream",le="0.0001",model="repeat"}'
    classifier_bucket = (
        'triton_dynamo_client_request_duration_seconds_bucket{kind="unary",le="10.0",model="classifier"}'
    )
    # Scraped once every pattern matched: the first scrape that showed two models could still lack identity.
    patterns = [re.escape(repeat_bucket), re.escape(classifier_bucket), CLIENT_REQUESTS]
    code, scraped = run_loadtest_cli(argv, metrics_port, patterns)
    served = frontend_requests(file_stack.metrics_port) - before

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 0 and summary["overall"]["failures"] == 0, summary["failures_by_reason"]
    assert sorted(summary["endpoints"]) == sorted(
        f"{m.split(':')[0]}/{'stream' if m.startswith('repeat') else 'unary'}" for m in SAMPLE_MIX.split(",")
    )
    assert_consistent(summary, served)
    assert summary["overall"]["requests"] > 100 and summary["overall"]["throughput_rps"] > 10
    assert summary["users_max"] == 6 and summary["shape"] == {"name": "constant"}

    with open(tmp_path / "stats_stats.csv", newline="") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    assert rows["identity/unary"]["Type"] == "grpc"
    assert int(rows["repeat/stream"]["Request Count"]) == summary["endpoints"]["repeat/stream"]["requests"]
    assert "string_ops/unary" in (tmp_path / "report.html").read_text()
    # the client metrics, under the names the dashboards query, were served while the test ran
    assert re.search(CLIENT_REQUESTS, scraped, re.M), scraped


def test_the_check_counts_a_wrong_answer_as_a_failure(file_stack: StackProcess, tmp_path: Path) -> None:
    tensor = {"datatype": "INT32", "shape": [3], "data": [1, 2, 3]}
    wrong = {"datatype": "INT32", "shape": [3], "data": [1, 2, 4]}
    four = {"datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}
    lines = [
        {"model": "identity", "inputs": {"INPUT0": tensor}, "expected": {"OUTPUT0": wrong}},
        {
            "model": "add_sub",
            "inputs": {"INPUT0": four, "INPUT1": four},
            "expected": {"OUTPUT0": {**four, "data": [2, 4, 6, 8]}},
        },
    ]
    requests_file = tmp_path / "requests.jsonl"
    requests_file.write_text("\n".join(json.dumps(line) for line in lines))
    args = ["--headless", "-H", file_stack.grpc_url, "-u", "2", "-r", "2", "-t", "3s", "--only-summary"]
    args += ["--requests-file", str(requests_file), "--check", "--client-metrics-port", "0"]
    args += ["--csv", str(tmp_path / "stats")]
    proc = start_locust(args, tmp_path / "locust.log")
    assert proc.wait(timeout=60) == 1  # Locust's exit status when requests failed

    summary = json.loads((tmp_path / "stats_summary.json").read_text())  # next to the CSV files
    identity, add_sub = summary["endpoints"]["identity/unary"], summary["endpoints"]["add_sub/unary"]
    reason = "wrong answer from identity: OUTPUT0 differs from the sample's expected value"
    assert identity["requests"] > 0 and identity["failures_by_reason"] == {reason: identity["requests"]}
    assert add_sub["requests"] > 0 and add_sub["failures"] == 0
    assert reason in (tmp_path / "stats_failures.csv").read_text()
    assert "first wrong answer from identity" in (tmp_path / "locust.log").read_text()


def test_a_step_ramp_reports_its_knee(file_stack: StackProcess, tmp_path: Path) -> None:
    # 'slow' at 100 ms has a capacity set by its config, not by this machine's CPU (identity still scaled at 16 users
    # on a quiet CI machine; at 20 ms the stack's own few ms per request still blurred the knee): 2 workers x
    # 2 instances x 1000 / 100 ms = 40 req/s. Nothing is refused: this stack sets no admission limit and 'slow' has
    # no queue limit. Round-robin over two workers still leaves one with 3 of 4 requests at times (4 users gave
    # 75-78 % of capacity), hence a 10 % minimum gain. Since 'slow' lost its queue limit (and Triton's batcher its
    # 480 ms stalls), 8 users reached 91 % and throughput still rose by more than 10 % from 6 to 8: the ramp goes to
    # 10 users, past capacity.
    capacity_rps = 2 * 2 * 1000 / 100
    request = {"model": "slow", "inputs": {"INPUT0": {"datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}}}
    request["inputs"]["DELAY_MS"] = {"datatype": "INT32", "shape": [1], "data": [100]}
    (tmp_path / "slow.jsonl").write_text(json.dumps(request))
    argv = ["--url", file_stack.grpc_url, "--shape", "step", "--step-users", "2", "--step-s", "4"]
    argv += ["--step-max-users", "10", "--settle-s", "0.5", "--spawn-rate", "40", "--duration-s", "0"]
    argv += ["--knee-min-gain", "0.1", "--requests-file", str(tmp_path / "slow.jsonl"), "--out-dir", str(tmp_path)]
    argv += ["--client-metrics-port", "0", "--", "--only-summary"]
    assert loadtest(argv) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    steps, knee = summary["steps"], summary["knee"]
    assert [s["users"] for s in steps] == [2, 4, 6, 8, 10]
    assert all(s["throughput_rps"] > 0 and s["window_s"] >= 3.0 for s in steps), steps
    assert knee["found"] and knee["min_gain"] == 0.1, knee
    at_knee = next(s for s in steps if s["users"] == knee["users"])
    assert knee["throughput_rps"] == at_knee["throughput_rps"]
    assert capacity_rps / 2 < knee["throughput_rps"] <= capacity_rps * 1.1, knee
    after = next(s for s in steps if s["users"] == knee["next_users"])
    best_before = max(s["throughput_rps"] for s in steps[: steps.index(after)])
    assert after["throughput_rps"] < (1 + knee["min_gain"]) * best_before
    assert summary["duration_s"] == pytest.approx(20, abs=1.5)  # five steps of 4 s


def test_master_and_worker_merge_their_histograms(file_stack: StackProcess, tmp_path: Path) -> None:
    master_port, master_metrics, worker_metrics = free_ports(3)
    before = frontend_requests(file_stack.metrics_port)
    models = ["--models", "identity:2,repeat:1", "--variable-dims", "VALUES=2", "--check"]
    worker = start_locust(
        ["--worker", "--master-port", str(master_port), "--worker-client-metrics-port", str(worker_metrics), *models],
        tmp_path / "worker.log",
    )
    master_args = ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port)]
    master_args += ["--expect-workers", "1", "--headless", "-H", file_stack.grpc_url, "-u", "4", "-r", "4", "-t", "5s"]
    master_args += ["--client-metrics-port", str(master_metrics), "--summary-json", str(tmp_path / "summary.json")]
    master = start_locust([*master_args, "--only-summary", *models], tmp_path / "master.log")
    try:
        scraped = poll_while(lambda: master.poll() is None, worker_metrics, [CLIENT_REQUESTS])
        assert master.wait(timeout=60) == 0, (tmp_path / "master.log").read_text()[-3000:]
        assert worker.wait(timeout=30) == 0
    finally:
        for proc in (master, worker):
            if proc.poll() is None:
                proc.kill()
    served = frontend_requests(file_stack.metrics_port) - before
    summary = json.loads((tmp_path / "summary.json").read_text())
    # the master sent nothing itself: every count and percentile came from the worker's reports
    assert summary["overall"]["failures"] == 0 and set(summary["endpoints"]) == {"identity/unary", "repeat/stream"}
    assert_consistent(summary, served)
    assert scraped, "the worker served no client metrics"
