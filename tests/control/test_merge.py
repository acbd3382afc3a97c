# SPDX-License-Identifier: Apache-2.0
"""Several workers' Triton answers merged into one server's: pure functions, tables of cases."""

from __future__ import annotations

import pytest

from triton_dynamo.control.merge import STACK_EXTENSIONS, merge_index, merge_statistics, server_metadata


def stats(name: str, version: str, count: int, ns: int, last: int, batch: int = 1) -> dict:
    phase = {"count": count, "ns": ns}
    return {
        "name": name,
        "version": version,
        "last_inference": last,
        "inference_count": count,
        "execution_count": count,
        "inference_stats": {"success": phase, "fail": {}, "queue": phase},
        "batch_stats": [{"batch_size": batch, "compute_infer": phase}],
    }


def test_counts_and_durations_add_up_and_the_latest_inference_wins() -> None:
    merged = merge_statistics(
        {
            "a": {"model_stats": [stats("m", "1", 3, 300, last=10)]},
            "b": {"model_stats": [stats("m", "1", 4, 100, last=7)]},
        }
    )
    [entry] = merged["model_stats"]
    assert (entry["name"], entry["version"]) == ("m", "1")
    assert entry["inference_count"] == entry["execution_count"] == 7
    assert entry["last_inference"] == 10
    assert entry["inference_stats"]["success"] == {"count": 7, "ns": 400}
    assert entry["inference_stats"]["fail"] == {}
    assert entry["batch_stats"] == [{"batch_size": 1, "compute_infer": {"count": 7, "ns": 400}}]


def test_batch_sizes_stay_apart_and_in_order() -> None:
    merged = merge_statistics(
        {
            "a": {"model_stats": [stats("m", "1", 1, 10, 1, batch=8)]},
            "b": {"model_stats": [stats("m", "1", 2, 20, 2, batch=2)]},
        }
    )
    assert [b["batch_size"] for b in merged["model_stats"][0]["batch_stats"]] == [2, 8]


@pytest.mark.parametrize(
    ("per_worker", "expected"),
    [
        # each worker serves other models: the union, ordered by name then version
        (
            {"a": [stats("z", "1", 1, 1, 1)], "b": [stats("b", "2", 1, 1, 1), stats("b", "10", 1, 1, 1)]},
            [("b", "2"), ("b", "10"), ("z", "1")],
        ),
        ({"a": [], "b": []}, []),
    ],
)
def test_models_known_to_some_workers_only(per_worker: dict, expected: list) -> None:
    merged = merge_statistics({w: {"model_stats": s} for w, s in per_worker.items()})
    assert [(e["name"], e["version"]) for e in merged["model_stats"]] == expected


def ready(name: str, version: str = "1") -> dict:
    return {"name": name, "version": version, "state": "READY", "reason": ""}


@pytest.mark.parametrize(
    ("per_worker", "expected"),
    [
        ({"a": [ready("m")], "b": [ready("m")]}, [{"name": "m", "version": "1", "state": "READY"}]),
        (
            {"a": [ready("m")], "b": [{"name": "m", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"}]},
            [
                {
                    "name": "m",
                    "version": "1",
                    "state": "READY",
                    "reason": "READY on 1 of 2 workers; worker b: UNAVAILABLE (unloaded)",
                }
            ],
        ),
        (
            {"a": [ready("m")], "b": []},
            [
                {
                    "name": "m",
                    "version": "1",
                    "state": "READY",
                    "reason": "READY on 1 of 2 workers; worker b: absent (not in its index)",
                }
            ],
        ),
        (
            {
                "a": [{"name": "m", "version": "1", "state": "UNAVAILABLE", "reason": "boom"}],
                "b": [{"name": "m", "version": "1", "state": "UNAVAILABLE", "reason": "boom"}],
            },
            [{"name": "m", "version": "1", "state": "UNAVAILABLE", "reason": "boom"}],
        ),
        # a model in the repository that no worker loaded: Triton lists it with its name alone
        ({"a": [{"name": "x"}], "b": [{"name": "x"}]}, [{"name": "x"}]),
        # unloaded on one worker, never loaded on the other (it restarted after the unload): unloaded, as one Triton
        (
            {"a": [{"name": "m"}], "b": [{"name": "m", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"}]},
            [{"name": "m", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"}],
        ),
        # ready on one worker, never loaded on the other
        (
            {"a": [{"name": "m"}], "b": [ready("m")]},
            [
                {
                    "name": "m",
                    "version": "1",
                    "state": "READY",
                    "reason": "READY on 1 of 2 workers; worker a: not loaded",
                }
            ],
        ),
        # two versions, each ready on one worker
        (
            {"a": [ready("m", "1")], "b": [ready("m", "2")]},
            [
                {
                    "name": "m",
                    "version": "1",
                    "state": "READY",
                    "reason": "READY on 1 of 2 workers; worker b: absent (not in its index)",
                },
                {
                    "name": "m",
                    "version": "2",
                    "state": "READY",
                    "reason": "READY on 1 of 2 workers; worker a: absent (not in its index)",
                },
            ],
        ),
    ],
)
def test_repository_index_of_the_fleet(per_worker: dict, expected: list) -> None:
    assert merge_index(per_worker) == expected


def test_server_metadata_names_us_and_gives_triton_version_and_shared_extensions() -> None:
    triton = {"name": "triton", "version": "2.51.0", "extensions": [*STACK_EXTENSIONS, "system_shared_memory"]}
    metadata = server_metadata({"a": triton, "b": triton}, "0.1.0")
    assert metadata == {"name": "triton-dynamo/0.1.0", "version": "2.51.0", "extensions": list(STACK_EXTENSIONS)}
    older = {**triton, "version": "2.50.0", "extensions": ["statistics"]}
    mixed = server_metadata({"a": triton, "b": older}, "0.1.0")
    assert mixed["version"] == "2.50.0,2.51.0" and mixed["extensions"] == ["statistics"]
