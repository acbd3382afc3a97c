# SPDX-License-Identifier: Apache-2.0
"""Scenarios of issue 16 on a real Docker engine, in order: up, scale up, scale down under load, a killed and a
crashed worker, etcd and NATS restarts under load, down. Each records its figures for docs/reliability.md.

They run as a sequence on one stack (each scenario starts from the scale it sets itself).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from triton_dynamo.client.kserve import to_infer_inputs

from ..compose.localrun import grpc_health
from ..compose.tools import read_dotenv
from ..e2e.processes import SAMPLE_MODELS
from ..reliability.load import SteadyLoad, downtime_s, failures
from ..reliability_figures import record_figure
from .conftest import OBSERVABILITY_FILES, PROJECT, REPO_ROOT, EngineStack

# The first test also sets the session's stack up: on a fresh machine that builds every image (about 3 minutes).
pytestmark = pytest.mark.timeout(1200)
TABLE = "engine"
THREADS = 4


def infer_identity(url: str, **client_args) -> list[int]:
    client = grpcclient.InferenceServerClient(url, **client_args)
    try:
        data = np.array([7, 8, 9], np.int32)
        result = client.infer("identity", to_infer_inputs({"INPUT0": data}), client_timeout=30)
        return result.as_numpy("OUTPUT0").tolist()
    finally:
        client.close()


def prometheus_query(stack: EngineStack, query: str) -> list[dict]:
    url = f"http://{stack.url('PROMETHEUS_PORT')}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)["data"]["result"]


def wait_for(what: str, check, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # not there yet: keep asking until the deadline
            last = exc
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout_s} s (last: {last!r})")


def health(stack: EngineStack) -> dict[str, tuple[str, str]]:
    """Container name: (service, health or state)."""
    rows = [json.loads(line) for line in stack.compose("ps", "--format", "json").stdout.splitlines() if line]
    return {row["Name"]: (row["Service"], row.get("Health") or row["State"]) for row in rows}


def all_healthy(stack: EngineStack) -> bool:
    return {state for _, state in health(stack).values()} == {"healthy"}


def quiet_since(load: SteadyLoad, since_s: float, quiet_s: float = 5.0) -> float | None:
    """The moment (monotonic) once ``quiet_s`` of load without a failure has passed after ``since_s``, else None."""
    now = time.monotonic()
    recent_failures = [o for o in load.snapshot() if not o.ok and o.done_s > now - quiet_s]
    return now if now - since_s > quiet_s and not recent_failures else None


def test_check_host_reads_this_engine(engine_stack: EngineStack) -> None:
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "check-host.sh"), "--cpu"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**engine_stack.env, "PATH": f"{Path(sys.executable).parent}:{engine_stack.env['PATH']}"},
    )
    engine = engine_stack.docker("version", "--format", "{{.Server.Version}}").strip()
    assert f"Docker Engine {engine}" in done.stdout, done.stdout
    assert "ok    Docker Compose" in done.stdout, done.stdout
    # an engine older than 25 is a warning, not a failure: the stack runs (this test's own engine is 20.10)
    assert done.returncode == 0, done.stdout


def test_up_every_service_healthy_and_serving(engine_stack: EngineStack) -> None:
    up_s = engine_stack.up()
    states = health(engine_stack)
    assert {state for _, state in states.values()} == {"healthy"}, states
    services = {service for service, _ in states.values()}
    assert services == {"etcd", "nats", "frontend", "worker", "control", "tls-proxy"}, states
    # inference on each published port: the proxy's plaintext port, the frontend's own, the proxy's TLS port
    cert = REPO_ROOT / "secrets" / "tls" / "server.crt"
    assert infer_identity(engine_stack.url("GRPC_PORT")) == [7, 8, 9]
    assert infer_identity(engine_stack.url("FRONTEND_GRPC_PORT")) == [7, 8, 9]
    tls = infer_identity(f"localhost:{engine_stack.ports['TLS_PROXY_PORT']}", ssl=True, root_certificates=str(cert))
    assert tls == [7, 8, 9]
    assert grpc_health(engine_stack.url("GRPC_PORT")) == "SERVING"  # a Kubernetes grpc probe's question
    listed = subprocess.run(
        [sys.executable, "-m", "triton_dynamo", "models", "--url", engine_stack.url("GRPC_PORT")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    ready = {line.split()[0] for line in listed.stdout.splitlines()[1:] if " READY " in line}
    assert ready == set(SAMPLE_MODELS), listed.stdout
    record_figure(
        TABLE,
        "up -d --wait (compose.yaml + compose.cpu.yaml), one worker",
        {"services healthy": len(states), "up took s": round(up_s, 1), "models READY": len(ready)},
    )


def test_scale_to_three_spreads_requests_and_prometheus_finds_each(engine_stack: EngineStack) -> None:
    up_s = engine_stack.up("--scale", "worker=3")
    workers = engine_stack.containers("worker")
    assert len(workers) == 3, workers
    before = {name: engine_stack.served(name) for name in workers}
    for _ in range(60):
        assert infer_identity(engine_stack.url("GRPC_PORT")) == [7, 8, 9]
    served = {name: engine_stack.served(name) - before[name] for name in workers}
    # round-robin: each of the three takes its share (a worker that joined late still gets some)
    assert all(count >= 5 for count in served.values()), served
    assert sum(served.values()) == 60, served
    engine_stack.up("--no-deps", "prometheus", files=OBSERVABILITY_FILES)
    targets = wait_for(
        "Prometheus scrapes three worker targets found by DNS",
        lambda: (
            len(prometheus_query(engine_stack, 'up{job="worker"} == 1')) == 3
            and prometheus_query(engine_stack, 'up{job="worker"} == 1')
        ),
        timeout_s=60,
    )
    record_figure(
        TABLE,
        "--scale worker=3, then 60 requests one after another",
        {
            "scale-up took s": round(up_s, 1),
            "requests per worker": "/".join(str(int(served[name])) for name in workers),
            "Prometheus worker targets up": len(targets),
        },
    )


def test_scale_down_under_load_fails_nothing(engine_stack: EngineStack) -> None:
    engine_stack.up("--scale", "worker=3")
    load = SteadyLoad(engine_stack.url("GRPC_PORT"), threads=THREADS).start()
    time.sleep(3)
    started = time.monotonic()
    engine_stack.up("--scale", "worker=1")
    scaled_s = time.monotonic() - started
    time.sleep(3)
    outcomes = load.stop()
    assert len(engine_stack.containers("worker")) == 1
    record_figure(
        TABLE,
        "--scale worker=3 to 1 under steady load (drain)",
        {"requests": len(outcomes), "failed": len(failures(outcomes)), "scale-down took s": round(scaled_s, 1)},
    )
    assert failures(outcomes) == [], [o.error for o in failures(outcomes)][:3]
    assert len(outcomes) > 50


def kill_under_load(engine_stack: EngineStack, kill) -> tuple[SteadyLoad, float, str, str]:
    """Two workers under load; ``kill(container)`` takes the second down. The load, when it was killed, the victim's
    name and its address on the stack's network."""
    engine_stack.up("--scale", "worker=2")
    victim = engine_stack.containers("worker")[1]
    address = engine_stack.docker(
        "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", victim
    ).strip()
    load = SteadyLoad(engine_stack.url("GRPC_PORT"), threads=THREADS).start()
    time.sleep(3)
    killed = time.monotonic()
    kill(victim)
    return load, killed, victim, address


def check_kill(load: SteadyLoad, killed: float, address: str, case: str, figures: dict) -> None:
    """The issue's bound: no request fails that was sent once the frontend knew (a failure had come back, so the
    frontend had put the worker out of routing), so at most the requests in flight fail; nothing fails once the dead
    worker's registration has expired (WORKER_LEASE_TTL_S after the kill, with 2 s for etcd to notice and the
    frontend to hear of it); and the load recovers without a hand (5 s without a failure, within 60 s).

    One way remains for this to fail: Dynamo's frontend lets a held-out worker back into routing at its next
    reconcile, which comes FRONTEND_UNREACHABLE_WORKER_HOLD_S after the previous one, not after the failure. With
    Dynamo's default (5 s) and with 10 s, that fell inside the lease in three of eight runs here, and the dead worker
    got requests again (5 to 7 failed over 3.1 to 3.9 s). With 600 s it falls there once in about 200 kills (.env)."""
    wait_for("5 s of load without a failure", lambda: quiet_since(load, killed), timeout_s=60)
    outcomes = load.stop()
    in_flight = load.inflight_at(killed)
    failed = failures(outcomes)
    known_s = min((o.done_s for o in failed), default=killed)  # the frontend learnt of the death
    late = [o for o in failed if o.sent_s > known_s]
    expired_s = killed + float(read_dotenv()["WORKER_LEASE_TTL_S"]) + 2.0
    routed_to_dead = [o for o in failed if f"TCP connection to {address}:" in o.error]
    record_figure(
        TABLE,
        case,
        {
            "requests": len(outcomes),
            "failed": len(failed),
            "in flight at the kill": in_flight,
            "failed requests sent after the kill": sum(o.sent_s > killed for o in failed),
            "failed requests sent after the first failure": len(late),
            "routed to the dead worker": len(routed_to_dead),
            "failing for s": round(downtime_s(outcomes, killed), 2),
            **figures,
        },
    )

    def shown(outcomes) -> list:
        return [(round(o.sent_s - killed, 3), round(o.done_s - killed, 3), o.error[:120]) for o in outcomes]

    after = [o for o in failed if o.sent_s > expired_s]
    assert after == [], shown(after)
    # This is the count bound. The load keeps THREADS requests in flight, one per client thread, which sends
    # its next only once the last has come back; a thread's failure comes back no earlier than the first one, so
    # with none sent after that failing, each thread lost at most the one request it had in flight. (The count
    # recorded at the kill itself is THREADS less the threads that were between two requests at that instant.)
    assert late == [], f"sent after the frontend knew the worker was dead (s after the kill): {shown(late)}"


def test_docker_kill_fails_only_what_reached_the_dead_worker(engine_stack: EngineStack) -> None:
    load, killed, victim, address = kill_under_load(engine_stack, lambda name: engine_stack.docker("kill", name))
    time.sleep(2)
    state = engine_stack.docker("inspect", "--format", "{{.State.Status}} {{.RestartCount}}", victim).split()
    # Docker counts `docker kill` as a manual stop: the restart policy leaves the container down (by design)...
    assert state == ["exited", "0"], state
    # ...and `up` brings the fleet back to its scale
    back_s = engine_stack.up("--scale", "worker=2")
    before = engine_stack.served(victim)
    wait_for("the restarted worker takes traffic", lambda: engine_stack.served(victim) > before + 5, timeout_s=60)
    check_kill(
        load,
        killed,
        address,
        "docker kill one of two workers under steady load",
        {"restart policy": "left it down (a manual stop)", "back with up --scale in s": round(back_s, 1)},
    )


def test_a_crashed_worker_is_restarted_by_its_policy(engine_stack: EngineStack) -> None:
    def crash(name: str) -> None:
        # SIGKILL to the worker's own process (under init): a crash or an OOM kill, which the policy answers
        pid = engine_stack.docker("inspect", "--format", "{{.State.Pid}}", name).strip()
        child = subprocess.run(["pgrep", "-P", pid], capture_output=True, text=True).stdout.split()[0]
        subprocess.run(["kill", "-9", child], check=True)

    load, killed, victim, address = kill_under_load(engine_stack, crash)
    wait_for(
        "the restart policy restarts the crashed worker",
        lambda: int(engine_stack.docker("inspect", "--format", "{{.RestartCount}}", victim)) >= 1,
        timeout_s=60,
    )
    wait_for("the restarted worker is healthy", lambda: all_healthy(engine_stack), timeout_s=120)
    before = engine_stack.served(victim)
    wait_for("the restarted worker takes traffic", lambda: engine_stack.served(victim) > before + 5, timeout_s=60)
    back_s = time.monotonic() - killed
    check_kill(
        load,
        killed,
        address,
        "SIGKILL of one worker's process (a crash) under steady load",
        {"restart policy": "restarted it", "serving again after s": round(back_s, 1)},
    )


@pytest.mark.parametrize("service", ["etcd", "nats"])
def test_restart_under_load_recovers_by_itself(engine_stack: EngineStack, service: str) -> None:
    engine_stack.up("--scale", "worker=2")
    load = SteadyLoad(engine_stack.url("GRPC_PORT"), threads=THREADS).start()
    time.sleep(3)
    restarted = time.monotonic()
    engine_stack.compose("restart", service, timeout_s=120)
    restart_s = time.monotonic() - restarted
    # recovered: every container healthy again and 5 s of load without a failure, nobody's hand on it
    wait_for("every container healthy", lambda: all_healthy(engine_stack), timeout_s=120)
    quiet_from = wait_for("5 s of load without a failure", lambda: quiet_since(load, restarted), timeout_s=120)
    outcomes = load.stop()
    record_figure(
        TABLE,
        f"docker compose restart {service} under steady load (two workers)",
        {
            "requests": len(outcomes),
            "failed": len(failures(outcomes)),
            "failing for s": round(downtime_s(outcomes, restarted), 2),
            "restart took s": round(restart_s, 1),
            "serving cleanly again after s": round(quiet_from - restarted, 1),
        },
    )
    assert [o for o in outcomes if o.ok and o.sent_s > restarted], "nothing served after the restart"


def test_down_leaves_nothing(engine_stack: EngineStack) -> None:
    engine_stack.compose("down", "-v", "--timeout", "60", files=OBSERVABILITY_FILES, timeout_s=300)
    label = f"label=com.docker.compose.project={PROJECT}"
    left = {
        "containers": engine_stack.docker("ps", "-a", "-q", "--filter", label).split(),
        "networks": engine_stack.docker("network", "ls", "-q", "--filter", label).split(),
        "volumes": engine_stack.docker("volume", "ls", "-q", "--filter", label).split(),
    }
    record_figure(TABLE, "docker compose down -v", {k + " left": len(v) for k, v in left.items()})
    assert left == {"containers": [], "networks": [], "volumes": []}, left
