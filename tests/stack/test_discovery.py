# SPDX-License-Identifier: Apache-2.0
"""Revoking a dead worker's etcd lease against a real etcd: revoked, unknown, and etcd away (to be retried)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from tests.e2e.processes import free_ports, start_etcd
from triton_dynamo.stack.discovery import revoke_etcd_lease


def grant_lease_with_key(endpoint: str, ttl_s: int) -> int:
    def post(path: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"{endpoint}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.load(answer)

    lease = int(post("/v3/lease/grant", {"TTL": ttl_s})["ID"])
    post("/v3/kv/put", {"key": "dGVzdC1rZXk=", "value": "dg==", "lease": str(lease)})  # test-key -> v
    return lease


def key_count(endpoint: str) -> int:
    request = urllib.request.Request(
        f"{endpoint}/v3/kv/range", data=json.dumps({"key": "dGVzdC1rZXk="}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        return int(json.load(answer).get("count", 0))


def test_revoking_a_lease_removes_its_keys_and_a_second_time_finds_nothing(tmp_path: Path) -> None:
    etcd = start_etcd(tmp_path)
    try:
        endpoint = f"http://127.0.0.1:{etcd.port}"
        lease = grant_lease_with_key(endpoint, ttl_s=60)
        assert key_count(endpoint) == 1
        assert revoke_etcd_lease(endpoint, lease) is True
        assert key_count(endpoint) == 0
        assert revoke_etcd_lease(endpoint, lease) is False  # unknown now: nothing to retry
    finally:
        etcd.stop()


def test_etcd_away_answers_none_so_the_caller_retries() -> None:
    (port,) = free_ports(1)  # nothing listens there
    assert revoke_etcd_lease(f"http://127.0.0.1:{port}", 0x1234, timeout_s=1.0) is None
