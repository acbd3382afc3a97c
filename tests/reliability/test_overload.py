# SPDX-License-Identifier: Apache-2.0
"""Four times the load the stack holds, open loop: no crash, memory bounded, an explicit error for every refused
request (never a hang), and bounded latency for the admitted ones.

The model is ``slow`` at 100 ms per request (2 instances per worker: 40 requests/s for two workers), so that four
times its capacity costs the machine little CPU: what is measured is the stack's handling of excess work, not a
client, frontend and workers starving each other on two cores (at 20 ms, 800 requests/s offered, they did: the
admitted requests then waited in the frontend's and workers' own queues). Each worker admits 14 requests in flight
(``--max-inflight``: its 2 instances and 12 waiting), hands the excess to the other worker, which is as full, and the
request is refused at once with UNAVAILABLE; an admitted request waits at most 12 x 100 ms / 2 instances = 0.6 s,
plus its own 100 ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from ..e2e.processes import StackProcess, start_stack, worker_counter
from ..reliability_figures import record_figure
from .load import SLOW_STACK_ARGS, offer
from .memory import rss_bytes, stack_pids

DELAY_MS = 100
CAPACITY_RPS = 40  # 2 workers x 2 instances x 1000 / DELAY_MS


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    stack = start_stack(tmp_path_factory.mktemp("slow-stack"), workers=2, extra_args=SLOW_STACK_ARGS)
    yield stack
    stack.stop()


def test_four_times_capacity(slow_stack: StackProcess) -> None:
    seconds = 60.0
    pids = stack_pids(slow_stack)
    rss_before = [rss_bytes(pid) for pid in pids]
    before = sum(rss_before)
    delay = {"DELAY_MS": np.array([DELAY_MS], np.int32)}
    handed_before = worker_counter(slow_stack, "triton_dynamo_handed_requests")
    results = asyncio.run(offer(slow_stack.grpc_url, "slow", 4 * CAPACITY_RPS, seconds, extra=delay))
    handed = worker_counter(slow_stack, "triton_dynamo_handed_requests") - handed_before
    rss_after = [rss_bytes(pid) for pid in pids]
    after = sum(rss_after)
    served = sorted(latency for latency, error in results if not error)
    refused = [error for _, error in results if error]
    timeouts = [e for e in refused if "Deadline" in e or "DEADLINE" in e]
    explicit = [e for e in refused if "[UNAVAILABLE]" in e]
    p99 = served[int(len(served) * 0.99)] if served else float("nan")
    record_figure(
        "overload",
        f"4x capacity ({4 * CAPACITY_RPS} requests/s offered to 'slow' at {DELAY_MS} ms a request) for {seconds:.0f} s",
        {
            "offered": len(results),
            "served": len(served),
            "served per s": round(len(served) / seconds, 1),
            "refused with an explicit error": len(explicit),
            "handed to the other worker at its limit": round(handed),
            "timed out": len(timeouts),
            "p50 of served ms": round(1000 * served[len(served) // 2], 1),
            "p99 of served ms": round(1000 * p99, 1),
            "stack RSS before MB": round(before / 2**20),
            "after MB": round(after / 2**20),
            "frontend, workers before -> after MB": ", ".join(
                f"{b // 2**20}->{a // 2**20}" for b, a in zip(rss_before, rss_after, strict=True)
            ),
        },
    )
    assert slow_stack.proc.poll() is None and all(rss_bytes(pid) > 0 for pid in pids)  # nothing crashed
    assert timeouts == [] and len(explicit) == len(refused), sorted(set(refused))[:3]  # no hang, every refusal says so
    assert len(served) > 0.8 * CAPACITY_RPS * seconds  # the stack kept serving near its capacity
    assert p99 < 1.0  # admitted requests wait at most 0.6 s and their own 0.1 s, plus the way there
    assert after < before + 300 * 2**20  # memory bounded
