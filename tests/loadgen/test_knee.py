# SPDX-License-Identifier: Apache-2.0
"""The knee of a step ramp, as defined in triton_dynamo.loadgen.knee."""

from __future__ import annotations

import pytest

from triton_dynamo.loadgen.knee import StepWindow, find_knee, step_throughputs


def test_the_knee_is_the_last_step_before_throughput_stops_rising() -> None:
    knee = find_knee([(4, 400.0), (8, 780.0), (12, 1000.0), (16, 1030.0), (20, 1100.0)], min_gain=0.05)
    assert knee["found"]
    assert (knee["users"], knee["throughput_rps"], knee["next_users"], knee["next_throughput_rps"]) == (
        12,
        1000.0,
        16,
        1030.0,
    )


def test_a_drop_after_the_peak_is_a_knee_too() -> None:
    knee = find_knee([(1, 100.0), (2, 200.0), (3, 150.0)], min_gain=0.05)
    assert knee["found"] and knee["users"] == 2


def test_no_knee_while_every_step_raises_throughput() -> None:
    knee = find_knee([(1, 100.0), (2, 106.0), (3, 112.0)], min_gain=0.05)
    assert not knee["found"] and "ramp higher" in knee["reason"]
    assert find_knee([(1, 100.0), (2, 106.0), (3, 112.0)], min_gain=0.1)["users"] == 1


def test_gain_is_measured_against_the_best_earlier_step() -> None:
    # 3 users beat 2 users by 10 %, but not the best step (1 user) by 5 %
    knee = find_knee([(1, 300.0), (2, 310.0), (3, 341.0)], min_gain=0.05)
    assert knee["users"] == 1 and knee["next_users"] == 2


@pytest.mark.parametrize("points", [[], [(4, 100.0)], [(4, None), (8, 100.0)]])
def test_fewer_than_two_measured_steps_give_no_knee(points: list) -> None:
    knee = find_knee(points, min_gain=0.05)
    assert not knee["found"] and "fewer than two" in knee["reason"]


def test_unmeasured_steps_are_skipped() -> None:
    knee = find_knee([(4, 100.0), (8, None), (12, 101.0)], min_gain=0.05)
    assert knee["found"] and knee["users"] == 4 and knee["next_users"] == 12


def test_step_throughputs_use_each_window() -> None:
    steps = [StepWindow(0, 2, 100.0, 101.5, 105.0), StepWindow(1, 4, 105.0, 106.5, 106.0)]
    asked = []

    def rate(start_s: float, end_s: float) -> float:
        asked.append((start_s, end_s))
        return 50.0

    results = step_throughputs(steps, rate)
    assert asked == [(101.5, 105.0)]  # the second window is empty: not measured
    assert results[0] == {"step": 1, "users": 2, "started_s": 100.0, "window_s": 3.5, "throughput_rps": 50.0}
    assert results[1]["throughput_rps"] is None and results[1]["window_s"] == 0.0
