# SPDX-License-Identifier: Apache-2.0
"""The JSON summary: counts and throughput per endpoint, model and overall, failures by reason, steps and knee."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from triton_dynamo.loadgen.knee import StepWindow
from triton_dynamo.loadgen.latency import LatencyRecorder
from triton_dynamo.loadgen.summary import build_summary, format_table, write_summary


def _recorder() -> LatencyRecorder:
    recorder = LatencyRecorder()
    for i in range(90):
        recorder.record_success("identity/unary", 1000 + i, at_s=1000.0 + i / 10)
    for i in range(10):
        recorder.record_success("repeat/stream", 5000 + i, at_s=1000.0 + i)
    recorder.record_failure("repeat/stream", "INTERNAL: boom")
    recorder.record_failure("repeat/stream", "INTERNAL: boom")
    recorder.record_failure("repeat/unary", "wrong answer from repeat: x")
    return recorder


def test_counts_throughput_and_percentiles(tmp_path: Path) -> None:
    summary = build_summary(_recorder(), started_s=1000.0, ended_s=1010.0, shape={"name": "constant"}, users_max=4)
    assert summary["duration_s"] == 10.0 and summary["users_max"] == 4
    assert summary["overall"]["requests"] == 103 and summary["overall"]["failures"] == 3
    assert summary["overall"]["throughput_rps"] == 10.0
    assert summary["models"] == {
        "identity": {"requests": 90, "successes": 90, "failures": 0},
        "repeat": {"requests": 13, "successes": 10, "failures": 3},
    }
    stream = summary["endpoints"]["repeat/stream"]
    assert (stream["model"], stream["kind"], stream["requests"]) == ("repeat", "stream", 12)
    assert stream["failures_by_reason"] == {"INTERNAL: boom": 2}
    assert stream["latency_us"]["p50_us"] == pytest.approx(5004, abs=5)
    assert summary["failures_by_reason"] == {"INTERNAL: boom": 2, "wrong answer from repeat: x": 1}
    assert "steps" not in summary and "knee" not in summary
    path = write_summary(tmp_path / "out" / "summary.json", summary)
    assert json.loads(path.read_text()) == summary
    table = format_table(summary)
    assert table[0].split()[:2] == ["endpoint", "reqs"] and table[-1].startswith("total")


def test_a_step_ramp_has_steps_and_a_knee() -> None:
    recorder = LatencyRecorder()
    # 100/s with 1 user, 200/s with 2, 205/s with 3: the knee is at 2 users
    for step, rate in enumerate((100, 200, 205)):
        for i in range(rate * 4):
            recorder.record_success("identity/unary", 1000, at_s=100.0 + 4 * step + i / rate + 1e-6)
    steps = [StepWindow(k, k + 1, 100.0 + 4 * k, 100.0 + 4 * k + 1, 104.0 + 4 * k) for k in range(3)]
    summary = build_summary(
        recorder, started_s=100.0, ended_s=112.0, shape={"name": "step"}, steps=steps, knee_min_gain=0.05
    )
    assert [s["throughput_rps"] for s in summary["steps"]] == pytest.approx([100, 200, 205], rel=0.02)
    knee = summary["knee"]
    assert knee["found"] and knee["users"] == 2 and knee["next_users"] == 3
    assert format_table(summary)[-1].startswith("knee: 2 users")
