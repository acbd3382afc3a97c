# SPDX-License-Identifier: Apache-2.0
"""The fleet's model set: how a worker's startup list changes with it (a pure table), and its stores: a file under a
lock, and a real etcd through its JSON gateway with compare-and-swap."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.e2e.processes import start_etcd
from triton_dynamo.errors import TritonDynamoError
from triton_dynamo.worker.model_set import Change, EtcdStore, FileStore, ModelSet, model_set_store

LOADED = Change("loaded")
OVERRIDE = Change("loaded", config='{"max_batch_size": 4}')
UNLOADED = Change("unloaded")


@pytest.mark.parametrize(
    ("startup", "changes", "plain", "overrides"),
    [
        (["a", "b"], {}, ["a", "b"], {}),
        (["a", "b"], {"b": UNLOADED}, ["a"], {}),
        (["a"], {"c": LOADED}, ["a", "c"], {}),
        (["a"], {"a": OVERRIDE}, [], {"a": OVERRIDE.config}),
        (["a"], {"a": UNLOADED, "b": LOADED}, ["b"], {}),
        ([], {"x": UNLOADED}, [], {}),
    ],
)
def test_a_workers_models_are_its_own_list_with_the_fleets_changes(
    startup: list, changes: dict, plain: list, overrides: dict
) -> None:
    assert ModelSet(changes).apply(startup) == (plain, overrides)


def test_a_set_survives_its_json_and_forgets_a_change_given_none() -> None:
    models = ModelSet({"a": OVERRIDE, "b": UNLOADED})
    assert ModelSet.from_json(models.to_json()) == models
    assert models.with_change("a", None) == ModelSet({"b": UNLOADED})


def test_a_broken_record_is_a_clear_error() -> None:
    with pytest.raises(TritonDynamoError, match="stored model set is not valid"):
        ModelSet.from_json('{"a": {"state": "loaded", "colour": "red"}}')


def test_the_file_store_returns_what_each_change_replaced(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "set.json")
    assert store.read() == ModelSet()
    assert store.set("a", LOADED) is None
    assert store.set("a", UNLOADED) == LOADED
    assert FileStore(tmp_path / "set.json").read() == ModelSet({"a": UNLOADED})


def test_concurrent_changes_to_the_file_store_are_all_kept(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "set.json")
    threads = [threading.Thread(target=store.set, args=(f"m{i}", LOADED)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(store.read().changes) == {f"m{i}" for i in range(16)}


def test_the_file_store_sits_beside_dynamos_folder_not_in_it(tmp_path: Path) -> None:
    store = model_set_store("file", "ns", "worker", env={"DYN_FILE_KV": str(tmp_path / "discovery")})
    assert isinstance(store, FileStore)
    assert store.path == tmp_path / "discovery.triton-dynamo" / "ns.worker.models.json"


def test_etcd_keeps_concurrent_changes_by_compare_and_swap(tmp_path: Path) -> None:
    etcd = start_etcd(tmp_path)
    try:
        url = f"http://127.0.0.1:{etcd.port}"
        store = model_set_store("etcd", "ns", "worker", env={"ETCD_ENDPOINTS": url})
        assert isinstance(store, EtcdStore)
        assert store.read() == ModelSet()
        threads = [threading.Thread(target=store.set, args=(f"m{i}", LOADED)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert set(store.read().changes) == {f"m{i}" for i in range(8)}
        assert store.set("m0", OVERRIDE) == LOADED
        assert EtcdStore(url, "triton-dynamo/models/ns/worker").read().changes["m0"] == OVERRIDE
    finally:
        etcd.stop()


def test_etcd_out_of_reach_is_unavailable() -> None:
    store = EtcdStore("http://127.0.0.1:9", "k", timeout_s=1)
    with pytest.raises(TritonDynamoError) as info:
        store.read()
    assert info.value.status.name == "UNAVAILABLE"
