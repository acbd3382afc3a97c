# SPDX-License-Identifier: Apache-2.0
"""The knee of a step ramp: the load beyond which more users no longer buy more throughput.

Definition. Step k (k = 1..K) runs u_k users. Its throughput X_k is the number of successful requests completed per
second within its measurement window, which starts when the step's added users have all been spawned plus
``--settle-s`` seconds and ends when the next step starts (or the test ends). A step *raises throughput* when
X_k >= (1 + g) * max(X_1 .. X_{k-1}), with g = ``--knee-min-gain`` (default 0.05, i.e. 5 %). The knee is the step just
before the first step (k >= 2) that does not raise throughput: its users u and throughput X are reported, with the
step that failed to improve. When every step raised throughput, there is no knee ("found": false): the ramp never
reached saturation and should go higher. Steps whose window holds no whole 100 ms are left out.

Example:
    >>> knee = find_knee([(1, 100.0), (2, 190.0), (3, 195.0), (4, 198.0)], min_gain=0.05)
    >>> knee["found"], knee["users"], knee["throughput_rps"], knee["next_users"]
    (True, 2, 190.0, 3)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StepWindow:
    """One step of a ramp as it ran: users, and its measurement window in wall-clock seconds."""

    index: int
    users: int
    started_s: float
    measure_from_s: float
    ended_s: float


def step_throughputs(steps: Sequence[StepWindow], rate: Callable[[float, float], float | None]) -> list[dict[str, Any]]:
    """Each step with its throughput, from ``rate(start_s, end_s)`` (successes per second in the window)."""
    results = []
    for step in steps:
        throughput = rate(step.measure_from_s, step.ended_s) if step.ended_s > step.measure_from_s else None
        results.append(
            {
                "step": step.index + 1,
                "users": step.users,
                "started_s": round(step.started_s, 3),
                "window_s": round(max(step.ended_s - step.measure_from_s, 0.0), 3),
                "throughput_rps": None if throughput is None else round(throughput, 2),
            }
        )
    return results


def find_knee(points: Sequence[tuple[int, float | None]], min_gain: float) -> dict[str, Any]:
    """The knee of ``points`` ((users, throughput) per step, in step order; None throughputs are skipped)."""
    measured = [(users, rps) for users, rps in points if rps is not None]
    result: dict[str, Any] = {"min_gain": min_gain, "steps_measured": len(measured)}
    if len(measured) < 2:
        return {**result, "found": False, "reason": "fewer than two steps were measured"}
    best_users, best = measured[0]
    for users, rps in measured[1:]:
        if rps < (1.0 + min_gain) * best:
            return {
                **result,
                "found": True,
                "users": best_users,
                "throughput_rps": round(best, 2),
                "next_users": users,
                "next_throughput_rps": round(rps, 2),
                "reason": f"{users} users gave {rps:.1f} req/s, less than {min_gain:.0%} above {best:.1f} req/s "
                f"at {best_users} users",
            }
        best_users, best = users, rps
    return {
        **result,
        "found": False,
        "reason": f"throughput still rose at the last step ({best_users} users, {best:.1f} req/s): ramp higher",
    }
