# SPDX-License-Identifier: Apache-2.0
"""Forgetting a dead worker in discovery at once, rather than when its lease runs out.

A worker killed outright cannot unregister, and Dynamo keeps routing to it until its registration expires: 10 s in
the file store, the lease's TTL in etcd. Every request routed there meanwhile fails. The supervisor knows the moment
a worker dies, and the worker told it its instance id (Dynamo's connection id, which is the suffix of its keys in
the file store and the id of its lease in etcd), so it removes the records itself.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

logger = logging.getLogger(__name__)


def instance_id(ready_file: Path) -> int | None:
    """The Dynamo instance id a worker wrote to its ready file at start, or None."""
    try:
        return int(json.loads(ready_file.read_text())["instance_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget_in_file_store(store: Path, instance: int) -> int:
    """Delete the file-store records (instances, model cards) of ``instance``; returns how many were removed."""
    removed = 0
    for path in store.rglob("*"):
        if not path.is_file():
            continue
        suffix = urllib.parse.unquote(path.name).rsplit("/", 1)[-1]
        try:
            mine = int(suffix, 16) == instance
        except ValueError:
            continue
        if mine:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def revoke_etcd_lease(endpoints: str, instance: int, timeout_s: float = 2.0) -> bool | None:
    """Revoke the etcd lease ``instance`` (deleting every key attached to it) through etcd's v3 JSON gateway.

    True when revoked, False when etcd does not know the lease (expired, or revoked already), None when etcd cannot be
    reached: then the records outlive the worker, and the caller should try again once etcd is back (a restarted etcd
    restores its leases with their whole TTL, so a dead worker's records would stay routable that long).
    """
    endpoint = endpoints.split(",")[0].strip().rstrip("/")
    request = urllib.request.Request(
        f"{endpoint}/v3/lease/revoke",
        data=json.dumps({"ID": str(instance)}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return True
    except urllib.error.HTTPError as exc:  # an expired or unknown lease answers 404: nothing left to remove
        logger.debug("revoking lease %x at %s: %s", instance, endpoint, exc)
        return False
    except OSError as exc:
        logger.debug("etcd at %s unreachable for revoking lease %x: %s", endpoint, instance, exc)
        return None
