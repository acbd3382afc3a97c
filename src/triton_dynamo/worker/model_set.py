# SPDX-License-Identifier: Apache-2.0
"""Which models the fleet serves beyond what each worker starts with: the loads and unloads asked through
RepositoryModelLoad and RepositoryModelUnload, kept in the discovery store so that a worker that starts or restarts
later serves the same set.

The record holds changes, not the whole set: a worker starts with its own ``--model-name`` list (or the whole
repository), then applies each change on top. The last change of a model wins; a load carries Triton's config
override, if it had one, so a restarted worker loads the model as the others did.

Where it lives: beside Dynamo's own records, in etcd (``triton-dynamo/models/<namespace>/<component>`` through
etcd's v3 JSON gateway, the same one the launcher revokes leases with) or, with the file store, in a folder next to
``DYN_FILE_KV``'s (Dynamo's file store reads every folder in its own as a bucket of its records).

Example:
    >>> changes = ModelSet({"slow": Change("unloaded"), "extra": Change("loaded", config='{"max_batch_size": 0}')})
    >>> changes.apply(["identity", "slow"])
    (['identity'], {'extra': '{"max_batch_size": 0}'})
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import Status, TritonDynamoError

logger = logging.getLogger(__name__)

LOADED, UNLOADED = "loaded", "unloaded"


@dataclass(frozen=True)
class Change:
    """The last thing asked of one model: ``loaded`` (with Triton's config override, or None) or ``unloaded``."""

    state: str
    config: str | None = None


@dataclass(frozen=True)
class ModelSet:
    """Model name -> its last :class:`Change`."""

    changes: Mapping[str, Change] = field(default_factory=dict)

    def apply(self, startup: list[str]) -> tuple[list[str], dict[str, str]]:
        """What a worker serves: (models to load as they are on disk, models to load with a config override)."""
        plain = [name for name in startup if name not in self.changes]
        overrides: dict[str, str] = {}
        for name, change in sorted(self.changes.items()):
            if change.state != LOADED:
                continue
            if change.config is None:
                plain.append(name)
            else:
                overrides[name] = change.config
        return plain, overrides

    def with_change(self, name: str, change: Change | None) -> ModelSet:
        """This set with ``name``'s change replaced (None forgets it)."""
        changes = dict(self.changes)
        if change is None:
            changes.pop(name, None)
        else:
            changes[name] = change
        return ModelSet(changes)

    def to_json(self) -> str:
        return json.dumps({name: vars(change) for name, change in sorted(self.changes.items())})

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSet:
        try:
            raw = json.loads(text)
            return cls({name: Change(**entry) for name, entry in raw.items()})
        except (ValueError, TypeError, AttributeError) as exc:
            raise TritonDynamoError(f"the stored model set is not valid: {exc}", status=Status.INTERNAL) from exc


class ModelSetStore(Protocol):
    def read(self) -> ModelSet: ...

    def set(self, name: str, change: Change | None) -> Change | None:
        """Record ``change`` for ``name`` atomically; returns the change it replaced (to put back on failure)."""
        ...


class MemoryStore:
    """For discovery in memory (one process): nothing outlives it."""

    def __init__(self) -> None:
        self.models = ModelSet()

    def read(self) -> ModelSet:
        return self.models

    def set(self, name: str, change: Change | None) -> Change | None:
        previous = self.models.changes.get(name)
        self.models = self.models.with_change(name, change)
        return previous


class FileStore:
    """One JSON file, changed under an exclusive lock and replaced whole."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> ModelSet:
        try:
            return ModelSet.from_json(self.path.read_text())
        except FileNotFoundError:
            return ModelSet()

    def set(self, name: str, change: Change | None) -> Change | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            models = self.read()
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(models.with_change(name, change).to_json())
            tmp.replace(self.path)
        return models.changes.get(name)


class EtcdStore:
    """One etcd key, changed by compare-and-swap on its revision (several control services may write at once)."""

    def __init__(self, endpoints: str, key: str, *, timeout_s: float = 5.0) -> None:
        self.url = endpoints.split(",")[0].strip().rstrip("/")
        self.key = key
        self.timeout_s = timeout_s

    def read(self) -> ModelSet:
        return self._read()[0]

    def set(self, name: str, change: Change | None) -> Change | None:
        for _ in range(20):
            models, revision = self._read()
            key = _b64(self.key)
            compare = {"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}
            put = {"request_put": {"key": key, "value": _b64(models.with_change(name, change).to_json())}}
            if self._post("/v3/kv/txn", {"compare": [compare], "success": [put]}).get("succeeded"):
                return models.changes.get(name)
        raise TritonDynamoError(f"etcd key {self.key!r} kept changing: the model set was not recorded")

    def _read(self) -> tuple[ModelSet, int]:
        kvs = self._post("/v3/kv/range", {"key": _b64(self.key)}).get("kvs") or []
        if not kvs:
            return ModelSet(), 0
        return ModelSet.from_json(base64.b64decode(kvs[0]["value"])), int(kvs[0]["mod_revision"])

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as exc:
            hint = " (is etcd's JSON gateway off? set enable-grpc-gateway: true)" if exc.code == 404 else ""
            raise TritonDynamoError(
                f"etcd at {self.url} refused the model set's request: HTTP {exc.code}{hint}", status=Status.UNAVAILABLE
            ) from exc
        except (OSError, ValueError) as exc:
            raise TritonDynamoError(
                f"etcd at {self.url} did not answer for the model set: {exc}", status=Status.UNAVAILABLE
            ) from exc


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def model_set_store(
    discovery_backend: str, namespace: str, component: str, env: Mapping[str, str] | None = None
) -> ModelSetStore:
    """The store of ``namespace.component``'s model set, where its workers' discovery records are."""
    env = os.environ if env is None else env
    if discovery_backend == "etcd":
        endpoints = env.get("ETCD_ENDPOINTS") or "http://localhost:2379"
        return EtcdStore(endpoints, f"triton-dynamo/models/{namespace}/{component}")
    if discovery_backend == "file":
        # Without DYN_FILE_KV, one fixed folder on which the workers and the control service of this host agree.
        root = Path(env.get("DYN_FILE_KV") or Path(tempfile.gettempdir()) / "dynamo_store_kv")
        return FileStore(root.with_name(root.name + ".triton-dynamo") / f"{namespace}.{component}.models.json")
    return MemoryStore()
