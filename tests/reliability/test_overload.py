"""Four times the load the stack holds, open loop: no crash, memory bounded, an explicit error for every refused
request (never a hang), and bounded latency for the admitted ones.

The model is ``slow`` (20 ms per request, 2 instances per worker: 200 requests/s for two workers) so that four times
its capacity is within what a client on the same two cores can offer. Triton's queue limit in its config (32 per
worker) refuses the excess at once with UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ..e2e.processes import StackProcess, start_stack
from ..reliability_figures import record_figure
from .load import offer
from .memory import rss_bytes, stack_pids

CAPACITY_RPS = 200  # 2 workers x 2 instances x 1000 / 20 ms


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    stack = start_stack(tmp_path_factory.mktemp("slow-stack"), workers=2, extra_args=("--model-name", "slow"))
    yield stack
    stack.stop()


def test_four_times_capacity(slow_stack: StackProcess, long_run: bool) -> None:
    seconds = 60.0
    pids = stack_pids(slow_stack)
    before = sum(rss_bytes(pid) for pid in pids)
    results = asyncio.run(offer(slow_stack.grpc_url, "slow", 4 * CAPACITY_RPS, seconds))
    after = sum(rss_bytes(pid) for pid in pids)
    served = sorted(latency for latency, error in results if not error)
    refused = [error for _, error in results if error]
    timeouts = [e for e in refused if "Deadline" in e or "DEADLINE" in e]
    explicit = [e for e in refused if "Exceeds maximum queue size" in e or "[UNAVAILABLE]" in e]
    p99 = served[int(len(served) * 0.99)] if served else float("nan")
    record_figure(
        "overload",
        f"4x capacity ({4 * CAPACITY_RPS} requests/s offered to 'slow') for {seconds:.0f} s",
        {
            "offered": len(results),
            "served": len(served),
            "served per s": round(len(served) / seconds, 1),
            "refused with an explicit error": len(explicit),
            "timed out": len(timeouts),
            "p50 of served ms": round(1000 * served[len(served) // 2], 1),
            "p99 of served ms": round(1000 * p99, 1),
            "stack RSS before MB": round(before / 2**20),
            "after MB": round(after / 2**20),
        },
    )
    assert slow_stack.proc.poll() is None and all(rss_bytes(pid) > 0 for pid in pids)  # nothing crashed
    assert timeouts == [] and len(explicit) == len(refused), sorted(set(refused))[:3]  # no hang, every refusal says so
    assert len(served) > 0.6 * CAPACITY_RPS * seconds  # the stack kept serving near its capacity
    assert p99 < 1.0  # admitted requests wait at most a full queue: 32 x 20 ms / 2 instances, plus the way there
    assert after < before + 300 * 2**20  # memory bounded
