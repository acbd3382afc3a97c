# SPDX-License-Identifier: Apache-2.0
"""A worker at its admission limit hands the request to another worker, through Dynamo, on a real stack.

Two workers, each admitting one request (``--max-inflight 1``), 'slow' at 600 ms: the fleet holds two requests at
once. Dynamo's frontend picks a worker at random for each request (worker/peers.py says why), so two requests sent
together land on one worker half the time; both must still be served. Three sent together: whichever way they land,
one worker hands one over, and exactly one is refused, with a message that names both limits.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from triton_dynamo.client.kserve import to_infer_inputs

from .processes import StackProcess, start_stack, worker_counter

DELAY_MS = 600


@pytest.fixture(scope="module")
def tight_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    stack = start_stack(
        tmp_path_factory.mktemp("handover-stack"), workers=2, extra_args=("--model-name", "slow", "--max-inflight", "1")
    )
    yield stack
    stack.stop()


def together(url: str, count: int) -> list[str]:
    """``count`` requests sent at once: '' for each one served with its own data, else its error."""

    def one(index: int) -> str:
        client = grpcclient.InferenceServerClient(url)
        data = np.full(4, index, np.float32)
        inputs = to_infer_inputs({"INPUT0": data, "DELAY_MS": np.array([DELAY_MS], np.int32)})
        try:
            out = client.infer("slow", inputs, client_timeout=30).as_numpy("OUTPUT0")
            return "" if np.array_equal(out, data) else f"wrong answer {out}"
        except Exception as exc:
            return str(exc)
        finally:
            client.close()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_two_at_once_are_both_served_wherever_the_frontend_sends_them(tight_stack: StackProcess) -> None:
    for _ in range(6):
        assert together(tight_stack.grpc_url, 2) == ["", ""]


def test_three_at_once_one_is_handed_over_and_one_refused_naming_both_limits(tight_stack: StackProcess) -> None:
    before = worker_counter(tight_stack, "triton_dynamo_handed_requests")
    outcomes = together(tight_stack.grpc_url, 3)
    assert sorted(outcomes)[:2] == ["", ""], outcomes
    refused = sorted(outcomes)[2]
    assert "[UNAVAILABLE] worker is at its limit of 1 requests in flight" in refused
    assert re.search(r"handed to worker [0-9a-f]+, which could not take it either: worker is at its limit", refused)
    assert worker_counter(tight_stack, "triton_dynamo_handed_requests") >= before + 1
