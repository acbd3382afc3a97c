# SPDX-License-Identifier: Apache-2.0
"""The Compose stack's own commands, run as local processes on loopback (tests/compose/localrun.py): etcd, NATS,
the frontend, two workers, the TLS proxy and Prometheus, then requests through the frontend and the proxy."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import check_passed

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize(
    "check",
    [
        "etcd_and_nats_healthy",
        "frontend_and_workers_healthy",
        "control_healthy",
        "tls_proxy_healthy",
        "prometheus_healthy",
        "locust_started",
        "locust_worker_started",
    ],
)
def test_services_become_healthy_in_compose_order(local_run: dict[str, Any], check: str) -> None:
    check_passed(local_run, check)


def test_every_service_ran_its_compose_healthcheck(local_run: dict[str, Any]) -> None:
    check_passed(local_run, "frontend_and_workers_healthy")
    # locust has none
    expected = {"etcd", "nats", "frontend", "worker-1", "worker-2", "control", "tls-proxy", "prometheus"}
    assert set(local_run["healthy"]) == expected
    notes = {n: s["healthcheck_note"] for n, s in local_run["services"].items() if s.get("healthcheck_note")}
    # Only etcd's healthcheck may be stood in for (etcdctl is Debian's etcd-client, not installed by default).
    assert set(notes) <= {"etcd"}, notes


def test_identity_through_the_frontend(local_run: dict[str, Any]) -> None:
    assert check_passed(local_run, "identity") == [1, 2, 3]


def test_decoupled_model_streams_through_the_frontend(local_run: dict[str, Any]) -> None:
    assert check_passed(local_run, "repeat_stream") == [[5, 0], [6, 1], [7, 2]]


def test_large_request_crosses_the_request_plane(local_run: dict[str, Any]) -> None:
    assert check_passed(local_run, "large_request") == 800_000


def test_requests_reach_both_worker_replicas(local_run: dict[str, Any]) -> None:
    served = check_passed(local_run, "both_workers_serve")
    assert set(served) == {"worker-1", "worker-2"}
    assert all(count > 0 for count in served.values()), served


def test_every_triton_rpc_on_the_proxys_one_port_plaintext_and_tls(local_run: dict[str, Any]) -> None:
    seen = check_passed(local_run, "one_port")
    assert seen["identity"] == [7]
    assert seen["server"] == seen["tls_server"] == "triton-dynamo"  # the control service answered, through nghttpx
    assert seen["health"] == "SERVING"  # gRPC's health check, from the control service too
    assert seen["unloaded"] == ["UNAVAILABLE", "unloaded"] and seen["ready_after_unload"] is False
    assert seen["ready_after_load"] is True
    assert seen["identity_successes"] > 0


def test_prometheus_scrapes_the_stack(local_run: dict[str, Any]) -> None:
    seen = check_passed(local_run, "prometheus")
    addresses = local_run["addresses"]
    assert seen["up"]["worker"] == sorted(f"{a}:8200" for a in addresses["worker"])
    assert seen["up"]["frontend"] == [f"{addresses['frontend'][0]}:8002"]
    assert f"{addresses['locust'][0]}:9646" in seen["up"]["locust"]
    assert seen["identity_requests"] > 0


def test_locust_web_ui_drives_load_through_the_frontend(local_run: dict[str, Any]) -> None:
    """The `load` profile's commands: the master's web UI starts users, its worker sends them, nothing fails."""
    swarm = check_passed(local_run, "locust_swarm")
    assert swarm["workers"] == 1 and swarm["requests"] >= 20 and swarm["failures"] == 0, swarm


def test_frontend_and_workers_stop_cleanly_on_sigterm(local_run: dict[str, Any]) -> None:
    """As on `docker compose stop`: SIGTERM, and each exits 0 well within its stop_grace_period."""
    check_passed(local_run, "frontend_and_workers_healthy")
    for name in ("worker-1", "worker-2", "frontend"):
        assert local_run["exit_codes"][name] == 0, f"{name}: {local_run['exit_codes']}\n{local_run['logs'][name]}"
        assert local_run["stop_s"][name] < 25, local_run["stop_s"]


def test_the_proxy_lets_a_call_in_flight_finish_when_compose_stops_it(local_run: dict[str, Any]) -> None:
    """compose.yaml's stop_signal (SIGQUIT, nghttpx's graceful shutdown): with Compose's default, SIGTERM, nghttpx
    drops the call (UNAVAILABLE, 'Socket closed')."""
    stopped = check_passed(local_run, "proxy_stops_gracefully")
    assert stopped["answer"] == [0.0, 1.0, 2.0, 3.0]
    assert stopped["exit_code"] == 0
    assert stopped["stopped_after_s"] < 20  # it exited by itself, before stop() would have killed it
