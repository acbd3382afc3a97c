# SPDX-License-Identifier: Apache-2.0
"""A worker killed with SIGKILL: the other keeps serving at once, and the supervisor of ``up`` brings it back.

Runs after the serving tests of the same stack (file order), and leaves the stack whole again.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import tritonclient.grpc as grpcclient

from triton_dynamo.client.kserve import to_infer_inputs
from triton_dynamo.stack.readiness import worker_health

from .processes import StackProcess


def test_killed_worker_leaves_the_others_serving_and_comes_back(stack: StackProcess) -> None:
    pids = stack.worker_pids()
    victim_pid = pids[0]
    seen = len(stack.lines)
    os.kill(victim_pid, signal.SIGKILL)

    killed_at = time.monotonic()
    client = grpcclient.InferenceServerClient(stack.grpc_url)
    inputs = to_infer_inputs({"INPUT0": np.array([3], np.int32)})
    failures: list[float] = []
    try:
        while time.monotonic() - killed_at < 5:
            sent_at = time.monotonic() - killed_at
            try:
                assert client.infer("identity", inputs).as_numpy("OUTPUT0").tolist() == [3]
            except Exception:
                failures.append(sent_at)
    finally:
        client.close()
    # The supervisor removes the dead worker's discovery records as soon as it sees it exit: requests routed to it
    # before that fail (over NATS only after the frontend's 10 s response timeout); every request sent from 2 s after
    # the kill on succeeds.
    assert all(t < 2.0 for t in failures), f"requests sent {failures} s after the kill failed"
    assert len(failures) <= 3, failures

    stack.wait_for_line(r"worker-0 exited with signal 9 .* restarting", 10, after=seen)
    stack.wait_for_line(r"worker-0 started \(pid", 15, after=seen)
    assert stack.worker_pids()[0] != victim_pid
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        health = worker_health(f"http://127.0.0.1:{stack.worker_ports[0]}/health")
        # one endpoint per model, and the control endpoint
        if health and health.get("status") == "ready" and len(health.get("endpoints", {})) == len(stack.models) + 1:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the restarted worker did not become healthy within 90 s")
