# SPDX-License-Identifier: Apache-2.0
"""Several workers' Triton answers as the one answer of one Triton server: pure functions over Triton's own JSON
(the shape of ``inference.ModelStatisticsResponse`` and of the repository index), keyed by worker.

Example:
    >>> one = {"model_stats": [{"name": "m", "version": "1", "last_inference": 5, "inference_count": 2,
    ...     "inference_stats": {"success": {"count": 2, "ns": 30}}}]}
    >>> two = {"model_stats": [{"name": "m", "version": "1", "last_inference": 9, "inference_count": 1,
    ...     "inference_stats": {"success": {"count": 1, "ns": 12}}}]}
    >>> merged = merge_statistics({"a": one, "b": two})["model_stats"][0]
    >>> merged["inference_count"], merged["last_inference"], merged["inference_stats"]["success"]
    (3, 9, {'count': 3, 'ns': 42})
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Fields that are a moment, not an amount: the fleet's is the latest.
_LATEST = frozenset({"last_inference"})
# Lists of entries, each identified by these fields; entries with the same identity are merged.
_LIST_KEYS: dict[str, tuple[str, ...]] = {
    "model_stats": ("name", "version"),
    "batch_stats": ("batch_size",),
    "memory_usage": ("type", "id"),
}


def merge_statistics(per_worker: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Counts and durations summed over the workers, ``last_inference`` the latest, per model and version."""
    return _merge_dicts(list(per_worker.values()))


def _merge_dicts(items: list[Mapping[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(k for item in items for k in item):
        values = [item[key] for item in items if key in item]
        merged[key] = _merge_values(key, values)
    return merged


def _merge_values(key: str, values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, bool | str):
        return first  # identity fields (name, version, type): equal in every entry merged together
    if isinstance(first, int | float):
        return max(values) if key in _LATEST else sum(values)
    if isinstance(first, Mapping):
        return _merge_dicts(values)
    if isinstance(first, list):
        return _merge_lists(key, [entry for value in values for entry in value])
    return first


def _merge_lists(key: str, entries: Iterable[Any]) -> list[Any]:
    identity = _LIST_KEYS.get(key)
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for entry in entries:
        ident = (
            tuple(str(entry.get(f, "")) for f in identity) if identity and isinstance(entry, Mapping) else (id(entry),)
        )
        groups.setdefault(ident, []).append(entry)
    merged = []
    for group in groups.values():
        if not isinstance(group[0], Mapping):
            merged.append(group[0])
            continue
        entry = _merge_dicts(group)
        for field in identity or ():  # what identifies the entry (a batch size) is not an amount to add up
            if field in group[0]:
                entry[field] = group[0][field]
        merged.append(entry)
    if identity:
        merged.sort(key=lambda e: tuple(_sort_key(e.get(f)) for f in identity))
    return merged


def _sort_key(value: Any) -> tuple[int, Any]:
    text = str(value if value is not None else "")
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def merge_index(per_worker: Mapping[str, list[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """One repository index for the fleet: a model (and version) each worker reports the same way keeps Triton's
    state and reason; one whose state differs between workers is READY when any worker serves it, and its reason
    says which workers do not and why. A worker that lists a model by its name alone has never loaded it (Triton's
    way); once another worker reports a version, that worker counts as "not loaded" for it, and when no worker serves
    the version the state the others report stands alone (a model unloaded while one worker restarted is simply
    UNAVAILABLE, unloaded).

    Example:
        >>> merged = merge_index({"a": [{"name": "m", "version": "1", "state": "READY", "reason": ""}],
        ...                       "b": [{"name": "m", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"}]})
        >>> merged[0]["state"], merged[0]["reason"]
        ('READY', 'READY on 1 of 2 workers; worker b: UNAVAILABLE (unloaded)')
    """
    workers = list(per_worker)
    seen: dict[str, dict[str, dict[str, Mapping[str, Any]]]] = {}  # name -> version -> worker -> entry
    bare: dict[str, set[str]] = {}  # name -> the workers listing it by name alone
    for worker, entries in per_worker.items():
        for entry in entries:
            version = str(entry.get("version") or "")
            if version:
                seen.setdefault(entry["name"], {}).setdefault(version, {})[worker] = entry
            else:
                bare.setdefault(entry["name"], set()).add(worker)
    merged = [{"name": name} for name in bare if name not in seen]
    for name, versions in seen.items():
        for version, by_worker in versions.items():
            merged.append(_merge_version(name, version, by_worker, workers, bare.get(name, set())))
    merged.sort(key=lambda e: (e["name"], _sort_key(e.get("version", ""))))
    return merged


def _merge_version(
    name: str, version: str, by_worker: Mapping[str, Mapping[str, Any]], workers: list[str], never: set[str]
) -> dict[str, Any]:
    states = {w: (e.get("state", ""), e.get("reason", "")) for w, e in by_worker.items()}
    ready = [w for w in workers if states.get(w, ("", ""))[0] == "READY"]
    if len(set(states.values())) == 1 and (not ready or len(ready) == len(workers)):
        state, reason = next(iter(states.values()))
    else:
        state = "READY" if ready else next((s for s, _ in states.values() if s), "")
        others = []
        for worker in workers:
            if worker in ready:
                continue
            if worker in never:
                found_state, found_reason = "not loaded", ""
            else:
                found_state, found_reason = states.get(worker, ("absent", "not in its index"))
            others.append(
                f"worker {worker}: {found_state or 'not loaded'}" + (f" ({found_reason})" if found_reason else "")
            )
        reason = "; ".join([f"READY on {len(ready)} of {len(workers)} workers", *others])
    entry: dict[str, Any] = {"name": name, "version": version}
    if state:
        entry["state"] = state
    if reason:
        entry["reason"] = reason
    return entry


# The KServe/Triton protocol extensions this stack really supports through one endpoint; reported only where every
# worker's Triton supports them too.
STACK_EXTENSIONS = (
    "model_repository",
    "model_repository(unload_dependents)",
    "schedule_policy",
    "model_configuration",
    "classification",
    "sequence",
    "parameters",
    "statistics",
    "trace",
    "logging",
)


def server_metadata(per_worker: Mapping[str, Mapping[str, Any]], our_version: str) -> dict[str, Any]:
    """``name`` says what answers (triton-dynamo and its version); ``version`` is the workers' Triton version, as a
    Triton client reads it (several, comma-separated, while a rolling upgrade mixes them)."""
    versions = sorted({str(m.get("version", "")) for m in per_worker.values()})
    extensions = [e for e in STACK_EXTENSIONS if all(e in m.get("extensions", ()) for m in per_worker.values())]
    return {"name": f"triton-dynamo/{our_version}", "version": ",".join(versions), "extensions": extensions}
