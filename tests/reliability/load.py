# SPDX-License-Identifier: Apache-2.0
"""Steady load from threads in the test: every request's send time, end time and outcome."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio

from triton_dynamo.client.kserve import to_infer_inputs

# The stack the overload and soak tests run: 'slow' only, each worker admitting 14 requests in flight; past that a
# worker hands a request to the other worker, and the request is refused at once with UNAVAILABLE when that one is
# full too. The bound is the worker's, not Triton's queue limit (model_repo/slow/config.pbtxt says why). 14: at 100 ms
# a request an admitted one waits at most 12 x 100 ms / 2 instances = 0.6 s (the overload test's p99 bound is 1 s).
# Dynamo's frontend picks a worker at random for each request (src/triton_dynamo/worker/peers.py says why). Before
# workers handed requests over, that coin toss sent runs of 10 to 15 requests to one worker at 70 % of capacity, and
# beside a CPU hog 2 to 5 of 8399 were refused in 2 of 7 CI soaks while the other worker had room.
SLOW_STACK_ARGS = ("--model-name", "slow", "--max-inflight", "14")


@contextlib.contextmanager
def cpu_hog(seconds: float) -> Iterator[subprocess.Popen]:
    """Another process keeping one core busy, as on a shared machine; it stops by itself after ``seconds``."""
    code = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
    hog = subprocess.Popen([sys.executable, "-c", code])
    try:
        yield hog
    finally:
        hog.kill()
        hog.wait()


def warm_up(url: str, model: str, requests: int = 20) -> None:
    """One request after another until each worker and model instance has served a few: the soak measures steady
    state, not the first requests' connection set-up."""
    client = grpcclient.InferenceServerClient(url)
    try:
        inputs = to_infer_inputs({"INPUT0": np.ones(4, np.float32)})
        for _ in range(requests):
            client.infer(model, inputs, client_timeout=10)
    finally:
        client.close()


@dataclass
class Outcome:
    sent_s: float  # monotonic
    done_s: float
    ok: bool
    error: str = ""


@dataclass
class SteadyLoad:
    """``threads`` clients each sending one request after another (identity, checked) until :meth:`stop`."""

    url: str
    threads: int = 4
    model: str = "identity"
    timeout_s: float = 30.0
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.threads)]

    def start(self) -> SteadyLoad:
        for worker in self._workers:
            worker.start()
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for worker in self._workers:
            worker.join(self.timeout_s + 5)
        return self.outcomes

    def _run(self, index: int) -> None:
        client = grpcclient.InferenceServerClient(self.url)
        data = np.array([index, 1, 2, 3], np.int32)
        inputs = to_infer_inputs({"INPUT0": data})
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                out = client.infer(self.model, inputs, client_timeout=self.timeout_s).as_numpy("OUTPUT0")
                ok, error = bool(np.array_equal(out, data)), ""
            except Exception as exc:
                ok, error = False, str(exc)[:200]
            with self._lock:
                self.outcomes.append(Outcome(sent, time.monotonic(), ok, error))
            if not ok:
                time.sleep(0.05)  # a refused connection fails at once; do not spin
        client.close()

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def inflight_at(self, moment_s: float) -> int:
        """Requests sent before ``moment_s`` and not done by then."""
        return sum(o.sent_s <= moment_s < o.done_s for o in self.snapshot())


def failures(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if not o.ok]


def downtime_s(outcomes: list[Outcome], after_s: float) -> float:
    """From ``after_s`` to the end of the last failed request sent after it (0 when none failed)."""
    failed = [o.done_s for o in outcomes if not o.ok and o.sent_s >= after_s]
    return max(failed) - after_s if failed else 0.0


async def offer(
    url: str, model: str, rate_rps: float, seconds: float, timeout_s: float = 15.0, extra: dict | None = None
) -> list[tuple[float, str]]:
    """Send at ``rate_rps`` for ``seconds`` whatever the answers: (latency, '' or the error) per request."""
    client = grpcaio.InferenceServerClient(url)
    data = np.ones(4, np.float32)
    results: list[tuple[float, str]] = []

    async def one() -> None:
        item = grpcaio.InferInput("INPUT0", [4], "FP32")
        item.set_data_from_numpy(data)
        items = [item]
        for name, array in (extra or {}).items():
            items.append(grpcaio.InferInput(name, list(array.shape), "INT32"))
            items[-1].set_data_from_numpy(array)
        start = time.monotonic()
        try:
            await client.infer(model, items, client_timeout=timeout_s)
            results.append((time.monotonic() - start, ""))
        except Exception as exc:
            results.append((time.monotonic() - start, str(exc)))

    # Only unfinished tasks are kept: a finished task holds its coroutine, and tens of thousands of them made the
    # collector pause this process long enough to send the next requests as a burst (refusals at 70 % of capacity).
    pending: set[asyncio.Task] = set()
    start, sent = time.monotonic(), 0
    while (now := time.monotonic()) - start < seconds:
        due = int((now - start) * rate_rps)
        for _ in range(due - sent):
            task = asyncio.create_task(one())
            pending.add(task)
            task.add_done_callback(pending.discard)
        sent = due
        await asyncio.sleep(0.005)
    await asyncio.gather(*pending)
    await client.close()
    return results
