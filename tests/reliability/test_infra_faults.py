# SPDX-License-Identifier: Apache-2.0
"""etcd and NATS restarted under load, with etcd discovery and each request plane (NATS, TCP): what fails, for how
long, and recovery by itself.

Dynamo's processes may exit when etcd goes away; the supervisor of ``up`` restarts them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from triton_dynamo.client.kserve import to_infer_inputs

from ..e2e.processes import Service, StackProcess, start_etcd, start_nats, start_stack
from ..reliability_figures import record_figure
from .load import SteadyLoad, failures

RECOVERY_BOUND_S = 60.0


@pytest.fixture(scope="module", params=["nats", "tcp"])
def infra(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[StackProcess, Service, Service, str]]:
    plane = request.param
    workdir = tmp_path_factory.mktemp(f"infra-{plane}")
    etcd, nats = start_etcd(workdir), start_nats(workdir)
    env = {"ETCD_ENDPOINTS": f"http://127.0.0.1:{etcd.port}", "NATS_SERVER": f"nats://127.0.0.1:{nats.port}"}
    stack = start_stack(
        workdir / "stack",
        workers=2,
        env=env,
        extra_args=("--discovery", "etcd", "--request-plane", plane, "--model-name", "identity"),
    )
    yield stack, etcd, nats, plane
    stack.stop()
    nats.stop()
    etcd.stop()


def serving_again(stack: StackProcess, since: float, bound_s: float) -> float:
    """Seconds from ``since`` until 20 requests in a row succeed (raises after ``bound_s``)."""
    client = grpcclient.InferenceServerClient(stack.grpc_url)
    inputs = to_infer_inputs({"INPUT0": np.array([5], np.int32)})
    streak = 0
    try:
        while time.monotonic() - since < bound_s:
            try:
                client.infer("identity", inputs, client_timeout=10)
                streak += 1
                if streak >= 20:
                    return time.monotonic() - since
            except Exception:
                streak = 0
                time.sleep(0.1)
    finally:
        client.close()
    raise AssertionError(f"not serving again {bound_s:.0f} s after the fault: {stack.lines[-6:]}")


CASES = [
    ("etcd", 2.0),
    ("nats", 2.0),
    pytest.param("etcd", 40.0, marks=pytest.mark.long),
    pytest.param("nats", 40.0, marks=pytest.mark.long),
]


@pytest.mark.parametrize(("which", "down_s"), CASES)
def test_restart_under_load_recovers_by_itself(infra, which: str, down_s: float) -> None:
    stack, etcd, nats, plane = infra
    service = {"etcd": etcd, "nats": nats}[which]
    load = SteadyLoad(stack.grpc_url, threads=4, timeout_s=15).start()
    time.sleep(2)
    seen = len(stack.lines)
    faulted = time.monotonic()
    service.restart(down_s=down_s)  # back up (listening) when this returns
    restored = time.monotonic()
    serving_at = restored + serving_again(stack, restored, RECOVERY_BOUND_S)  # raises if not within the bound
    time.sleep(2)
    outcomes = load.stop()
    restarts = [line for line in stack.lines[seen:] if "exited with" in line]
    late_revokes = [line for line in stack.lines[seen:] if "once etcd was back" in line]
    after = [o for o in outcomes if o.sent_s >= faulted]
    failed = failures(after)
    recovered_s = max((o.done_s for o in failed), default=faulted) - faulted
    record_figure(
        "faults",
        f"restart {which} (down {down_s:.0f} s) under load, etcd + {plane.upper()} mode",
        {
            "requests after the fault": len(after),
            "failed": len(failed),
            "failures seen until s after the fault": round(recovered_s, 2),
            "Dynamo processes that exited and were restarted": len(restarts),
            "dead workers' leases revoked once etcd was back": len(late_revokes),
        },
    )
    # Once serving again, it stays so: no failure among the steady load's requests sent after that.
    late = [o for o in failed if o.sent_s > serving_at]
    assert late == [], [o.error for o in late][:3]
