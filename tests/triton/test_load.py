# SPDX-License-Identifier: Apache-2.0
"""Loading and unloading on the session's Triton (explicit model control): Triton's load parameters, a config
override and a model given as files, which no other test loads."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from tests.conftest import MODEL_REPO
from triton_dynamo.triton import Server, TritonError

FILE_MODEL = "loaded_from_files"
IDENTITY_CONFIG = {
    "backend": "python",
    "max_batch_size": 0,
    "input": [{"name": "INPUT0", "data_type": "TYPE_INT32", "dims": [-1]}],
    "output": [{"name": "OUTPUT0", "data_type": "TYPE_INT32", "dims": [-1]}],
    "instance_group": [{"kind": "KIND_CPU", "count": 1}],
}


async def _echo(server: Server, name: str) -> np.ndarray:
    data = np.arange(5, dtype=np.int32)
    (response,) = [r async for r in server.model(name).async_infer({"INPUT0": data})]
    return response.outputs["OUTPUT0"]


async def test_a_model_given_as_files_loads_serves_and_unloads(triton_server: Server) -> None:
    files = {"file:1/model.py": (MODEL_REPO / "identity" / "1" / "model.py").read_bytes()}
    await asyncio.to_thread(triton_server.load, FILE_MODEL, config=json.dumps(IDENTITY_CONFIG), files=files)
    try:
        assert triton_server.model(FILE_MODEL).ready()
        assert (await _echo(triton_server, FILE_MODEL)).tolist() == [0, 1, 2, 3, 4]
    finally:
        await asyncio.to_thread(triton_server.unload, FILE_MODEL)
    assert not triton_server.model(FILE_MODEL).ready()


async def test_a_config_override_replaces_the_config_and_a_plain_load_keeps_it(triton_server: Server) -> None:
    override = {**IDENTITY_CONFIG, "instance_group": [{"kind": "KIND_CPU", "count": 2}]}
    await asyncio.to_thread(triton_server.load, "identity", config=json.dumps(override))
    try:
        assert triton_server.model("identity").config()["instance_group"][0]["count"] == 2
        assert (await _echo(triton_server, "identity")).tolist() == [0, 1, 2, 3, 4]
        # Triton reloads only what changed on disk: a plain load of the unchanged model keeps the override.
        await asyncio.to_thread(triton_server.load, "identity")
        assert triton_server.model("identity").config()["instance_group"][0]["count"] == 2
    finally:
        await asyncio.to_thread(triton_server.load, "identity", config=json.dumps(IDENTITY_CONFIG))
    assert triton_server.model("identity").config()["instance_group"][0]["count"] == 1


async def test_a_bad_config_override_is_refused_and_the_model_keeps_serving(triton_server: Server) -> None:
    with pytest.raises(TritonError) as info:
        await asyncio.to_thread(triton_server.load, "identity", config="{not json")
    # Triton's own answer (2.51): INTERNAL, "failed to load 'identity', failed to poll from model repository".
    assert "'identity'" in info.value.message
    assert (await _echo(triton_server, "identity")).tolist() == [0, 1, 2, 3, 4]


async def test_unloading_a_model_nobody_loaded_is_not_an_error_as_in_triton(triton_server: Server) -> None:
    # Triton's RepositoryModelUnload of an unknown name succeeds; its index does not list the name afterwards.
    await asyncio.to_thread(triton_server.unload, "never_loaded_here")
    assert "never_loaded_here" not in {e["name"] for e in triton_server.model_index()}
