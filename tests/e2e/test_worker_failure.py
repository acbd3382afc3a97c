"""A worker killed with SIGKILL: the other keeps serving, and the supervisor of ``up`` brings the dead one back.

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

    client = grpcclient.InferenceServerClient(stack.grpc_url)
    inputs = to_infer_inputs({"INPUT0": np.array([3], np.int32)})
    results, streak, deadline = [], 0, time.monotonic() + 30
    try:
        while streak < 30 and time.monotonic() < deadline:
            try:
                assert client.infer("identity", inputs).as_numpy("OUTPUT0").tolist() == [3]
                results.append(True)
                streak += 1
            except Exception:
                results.append(False)
                streak = 0
    finally:
        client.close()
    # Requests that fail are the ones routed to the dead worker before discovery dropped it; then all succeed.
    assert streak >= 30, f"no run of 30 successes within 30 s after the kill; outcomes: {results}"

    stack.wait_for_line(r"worker-0 exited with signal 9 .* restarting", 10, after=seen)
    stack.wait_for_line(r"worker-0 started \(pid", 15, after=seen)
    assert stack.worker_pids()[0] != victim_pid
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        health = worker_health(f"http://127.0.0.1:{stack.worker_ports[0]}/health")
        if health and health.get("status") == "ready" and len(health.get("endpoints", {})) == len(stack.models):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the restarted worker did not become healthy within 90 s")
