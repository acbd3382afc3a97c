# SPDX-License-Identifier: Apache-2.0
"""Load shapes as schedules: users and spawn rate over time, and when each ends."""

from __future__ import annotations

import argparse

from triton_dynamo.loadgen.config import LoadConfig
from triton_dynamo.loadgen.shapes import ConstantSchedule, SpikeSchedule, StepSchedule, schedule_for


def test_constant_runs_for_its_run_time_or_forever() -> None:
    assert [ConstantSchedule(8, 2, 10).tick(t) for t in (0, 9.9, 10)] == [(8, 2), (8, 2), None]
    assert ConstantSchedule(8, 2).tick(1e9) == (8, 2)


def test_step_adds_users_every_step_up_to_the_maximum() -> None:
    ramp = StepSchedule(step_users=4, step_s=3, max_users=10, spawn_rate=8)
    assert ramp.step_count == 3 and ramp.end_s == 9
    assert [ramp.tick(t) for t in (0, 2.9, 3, 6, 8.9, 9)] == [(4, 8), (4, 8), (8, 8), (10, 8), (10, 8), None]
    assert [ramp.spawn_s(i) for i in range(3)] == [0.5, 0.5, 0.25]
    assert StepSchedule(4, 3, 10, 8, run_time_s=4).end_s == 4


def test_spike_jumps_within_a_second_and_comes_back() -> None:
    spike = SpikeSchedule(base_users=2, spike_users=20, at_s=5, duration_s=3, spawn_rate=1)
    assert spike.end_s == 13  # as long after the spike as before it
    assert [spike.tick(t) for t in (0, 4.9, 5, 7.9, 8, 12.9, 13)] == [
        (2, 1),
        (2, 1),
        (20, 18.0),
        (20, 18.0),
        (2, 18.0),
        (2, 18.0),
        None,
    ]
    assert SpikeSchedule(2, 20, 5, 3, 1, run_time_s=6).end_s == 6


def test_the_shape_option_picks_the_schedule_with_locusts_options() -> None:
    options = argparse.Namespace(num_users=3, spawn_rate=6.0, run_time=20)
    assert schedule_for(LoadConfig(), options) == ConstantSchedule(3, 6.0, 20)
    step = schedule_for(LoadConfig(shape="step", step_users=2, step_s=4, step_max_users=6), options)
    assert step == StepSchedule(2, 4, 6, 6.0, 20)
    spike = schedule_for(LoadConfig(shape="spike", spike_users=30), argparse.Namespace(num_users=None))
    assert (spike.base_users, spike.spike_users, spike.spawn_rate, spike.run_time_s) == (1, 30, 1.0, None)
