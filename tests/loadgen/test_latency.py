# SPDX-License-Identifier: Apache-2.0
"""HDR latency per endpoint: percentiles in microseconds, and workers' deltas merged on the master exactly."""

from __future__ import annotations

import numpy as np
import pytest

from triton_dynamo.loadgen.latency import (
    HIGHEST_US,
    MAX_REASONS,
    OTHER_REASON,
    RATE_BUCKET_S,
    LatencyRecorder,
    histogram_summary,
    new_histogram,
    percentile_key,
)


def test_percentiles_are_microseconds_within_a_thousandth() -> None:
    recorder = LatencyRecorder()
    samples_us = np.random.default_rng(0).lognormal(mean=7.0, sigma=0.8, size=20000)
    for value in samples_us:
        recorder.record_success("identity/unary", value, at_s=100.0)
    got = recorder.endpoints["identity/unary"].percentiles_us()
    assert got["count"] == 20000
    for percentile in (50, 90, 99, 99.9):
        exact = np.percentile(np.round(samples_us), percentile, method="inverted_cdf")
        assert got[percentile_key(percentile)] == pytest.approx(exact, rel=2e-3), percentile
    assert got["p50_us"] <= got["p90_us"] <= got["p99_us"] <= got["p99_9_us"] <= got["max_us"]


def test_merged_worker_deltas_equal_one_process_recording_everything() -> None:
    rng = np.random.default_rng(1)
    single, master = LatencyRecorder(), LatencyRecorder()
    workers = [LatencyRecorder(), LatencyRecorder(), LatencyRecorder()]
    for report in range(4):  # several reports from each worker, each a delta
        for i, worker in enumerate(workers):
            for value in rng.integers(50, 50_000, size=500):
                name = f"m{i % 2}/unary"
                worker.record_success(name, value, at_s=10.0 + report)
                single.record_success(name, value, at_s=10.0 + report)
            worker.record_failure("m0/unary", "UNAVAILABLE: worker gone")
            single.record_failure("m0/unary", "UNAVAILABLE: worker gone")
            master.merge(worker.take_delta())
            assert worker.endpoints == {}  # a delta starts afresh
    for name in single.endpoints:
        assert master.endpoints[name].histogram.equals(single.endpoints[name].histogram), name
        assert master.endpoints[name].percentiles_us() == single.endpoints[name].percentiles_us()
        assert master.endpoints[name].successes == single.endpoints[name].successes
    assert master.endpoints["m0/unary"].reasons == {"UNAVAILABLE: worker gone": 12}
    assert master.completions == single.completions
    assert master.overall().percentiles_us() == single.overall().percentiles_us()
    # worker 1 reported m0 failures only: its empty histogram must not drag the minimum to 0
    assert master.endpoints["m0/unary"].percentiles_us()["min_us"] >= 50


def test_a_delta_survives_the_wire_format() -> None:
    import msgpack  # what Locust's worker reports are made of

    worker = LatencyRecorder()
    worker.record_success("repeat/stream", 1234, at_s=5.0)
    payload = msgpack.loads(msgpack.dumps(worker.take_delta()), raw=False, strict_map_key=False)
    master = LatencyRecorder()
    master.merge(payload)
    assert master.endpoints["repeat/stream"].percentiles_us()["p50_us"] == pytest.approx(1234, rel=1e-3)
    with pytest.raises(ValueError, match="version"):
        master.merge({**payload, "version": 99})


def test_out_of_range_values_are_clamped_and_reasons_bounded() -> None:
    recorder = LatencyRecorder()
    recorder.record_success("a/unary", 0.2, at_s=0.0)
    recorder.record_success("a/unary", HIGHEST_US * 10, at_s=0.0)
    summary = recorder.endpoints["a/unary"].percentiles_us()
    assert summary["min_us"] == 1 and summary["max_us"] >= HIGHEST_US * 0.999
    for i in range(MAX_REASONS + 5):
        recorder.record_failure("a/unary", f"reason {i}")
    reasons = recorder.endpoints["a/unary"].reasons
    assert len(reasons) == MAX_REASONS + 1 and reasons[OTHER_REASON] == 5


def test_completion_rate_counts_whole_buckets_in_the_window() -> None:
    recorder = LatencyRecorder()
    for i in range(100):  # 10 per bucket from 10.0 s to 11.0 s
        recorder.record_success("a/unary", 100, at_s=10.0 + i * RATE_BUCKET_S / 10 + 1e-6)
    assert recorder.completion_rate(10.0, 11.0) == pytest.approx(100.0)
    assert recorder.completion_rate(10.05, 10.95) == pytest.approx(80 / 0.8)
    assert recorder.completion_rate(10.01, 10.09) is None


def test_an_empty_histogram_has_no_percentiles() -> None:
    summary = histogram_summary(new_histogram())
    assert summary["count"] == 0 and summary["p99_9_us"] is None and summary["max_us"] is None
