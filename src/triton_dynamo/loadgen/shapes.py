# SPDX-License-Identifier: Apache-2.0
"""Load shapes as pure schedules: elapsed seconds -> (users, spawn rate), or None when the test is over.

``locust_user.SelectedShape`` (Locust's LoadTestShape) asks the schedule chosen by ``--shape`` at each tick.

- constant: ``-u`` users spawned at ``-r`` per second, for ``-t`` (forever without it).
- step: ``--step-users`` users, then ``--step-users`` more every ``--step-s`` seconds up to ``--step-max-users``; the
  last step lasts ``--step-s`` too, then the test ends (or at ``-t``, whichever comes first). The summary reports
  the knee (see :mod:`.knee`).
- spike: ``-u`` users; at ``--spike-at-s`` jump to ``--spike-users`` (all spawned within a second) for
  ``--spike-duration-s``, then back to ``-u``; the test ends ``max(--spike-at-s, --spike-duration-s)`` after the
  spike (or at ``-t``).

Example:
    >>> ramp = StepSchedule(step_users=2, step_s=5, max_users=5, spawn_rate=10)
    >>> [ramp.tick(t) for t in (0, 4.9, 5, 10, 15)]
    [(2, 10), (2, 10), (4, 10), (5, 10), None]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .config import LoadConfig

Tick = tuple[int, float]


@dataclass(frozen=True)
class ConstantSchedule:
    users: int
    spawn_rate: float
    run_time_s: float | None = None

    def tick(self, elapsed_s: float) -> Tick | None:
        if self.run_time_s is not None and elapsed_s >= self.run_time_s:
            return None
        return self.users, self.spawn_rate


@dataclass(frozen=True)
class StepSchedule:
    step_users: int
    step_s: float
    max_users: int
    spawn_rate: float
    run_time_s: float | None = None

    @property
    def step_count(self) -> int:
        return math.ceil(self.max_users / self.step_users)

    @property
    def end_s(self) -> float:
        planned = self.step_count * self.step_s
        return planned if self.run_time_s is None else min(planned, self.run_time_s)

    def users_at_step(self, index: int) -> int:
        return min(self.step_users * (index + 1), self.max_users)

    def step_at(self, elapsed_s: float) -> int:
        return min(int(elapsed_s // self.step_s), self.step_count - 1)

    def tick(self, elapsed_s: float) -> Tick | None:
        if elapsed_s >= self.end_s:
            return None
        return self.users_at_step(self.step_at(elapsed_s)), self.spawn_rate

    def spawn_s(self, index: int) -> float:
        """How long step ``index`` takes to spawn its added users."""
        added = self.users_at_step(index) - (self.users_at_step(index - 1) if index else 0)
        return added / self.spawn_rate if self.spawn_rate > 0 else 0.0


@dataclass(frozen=True)
class SpikeSchedule:
    base_users: int
    spike_users: int
    at_s: float
    duration_s: float
    spawn_rate: float
    run_time_s: float | None = None

    @property
    def end_s(self) -> float:
        planned = self.at_s + self.duration_s + max(self.at_s, self.duration_s)
        return planned if self.run_time_s is None else min(planned, self.run_time_s)

    def tick(self, elapsed_s: float) -> Tick | None:
        if elapsed_s >= self.end_s:
            return None
        # the jump and the drop happen within a second: that is what makes it a spike
        fast = float(max(abs(self.spike_users - self.base_users), 1))
        if elapsed_s < self.at_s:
            return self.base_users, self.spawn_rate
        if elapsed_s < self.at_s + self.duration_s:
            return self.spike_users, fast
        return self.base_users, fast


def schedule_for(config: LoadConfig, options: Any) -> ConstantSchedule | StepSchedule | SpikeSchedule:
    """The schedule of ``--shape``, with Locust's ``-u``, ``-r`` and ``-t`` where the shape uses them."""
    users = int(getattr(options, "num_users", None) or 1)
    spawn_rate = float(getattr(options, "spawn_rate", None) or 1)
    run_time_s = getattr(options, "run_time", None) or None
    if config.shape == "step":
        return StepSchedule(config.step_users, config.step_s, config.step_max_users, spawn_rate, run_time_s)
    if config.shape == "spike":
        return SpikeSchedule(
            users, config.spike_users, config.spike_at_s, config.spike_duration_s, spawn_rate, run_time_s
        )
    return ConstantSchedule(users, spawn_rate, run_time_s)
