# SPDX-License-Identifier: Apache-2.0
"""The GPU sample model (model_repo_gpu/gpu_matmul) in a real in-process Triton on this machine: it loads with its
instance placed by what the machine has, batches requests, and answers what config.pbtxt's reference computation says.

The reference below is written from config.pbtxt's description, not imported from model.py, so that a mistake in
either shows.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import numpy as np
import pytest_asyncio

from tests.conftest import REPO_ROOT
from triton_dynamo.triton import Options, Server
from triton_dynamo.triton.locate import has_nvidia_gpu

GPU_REPO = REPO_ROOT / "model_repo_gpu"
MODEL = "gpu_matmul"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gpu_repo_server() -> AsyncIterator[Server]:
    """A Triton of its own on model_repo_gpu (the session's server serves model_repo, which leaves this model out)."""
    server = Server(Options(model_repository=GPU_REPO, log_info=False))
    await asyncio.to_thread(server.start, wait_until_ready=True, timeout_s=120)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


def reference(config: dict, x: np.ndarray) -> np.ndarray:
    """config.pbtxt's computation, in float64 from the float32 weights (so it is the more exact of the two)."""
    params = {key: entry["string_value"] for key, entry in config["parameters"].items()}
    hidden, depth = int(params["HIDDEN"]), int(params["DEPTH"])
    features = x.shape[1]
    rng = np.random.default_rng(int(params["SEED"]))
    shapes = ((features, hidden), (hidden, hidden), (hidden, features))
    w_in, w_hidden, w_out = (rng.standard_normal(s, dtype=np.float32) * np.float32(1 / math.sqrt(s[0])) for s in shapes)
    h = np.tanh(x.astype(np.float64) @ w_in.astype(np.float64))
    w_hidden = w_hidden.astype(np.float64)
    for _ in range(depth):
        h = np.tanh(h @ w_hidden)
    return h @ w_out.astype(np.float64)


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(got - expected) / np.linalg.norm(expected))


async def test_instance_placed_by_what_the_machine_has(gpu_repo_server: Server) -> None:
    config = gpu_repo_server.model(MODEL).config()
    (group,) = config["instance_group"]
    assert group["kind"] == ("KIND_GPU" if has_nvidia_gpu() else "KIND_CPU")
    assert config["max_batch_size"] == 512 and "dynamic_batching" in config


async def test_batched_requests_match_the_reference(gpu_repo_server: Server) -> None:
    model = gpu_repo_server.model(MODEL)
    config = model.config()
    rng = np.random.default_rng()  # fresh inputs every run: the model must compute the function, not one answer
    batches = [rng.standard_normal((rows, 64), dtype=np.float32) for rows in (1, 3, 2)]

    async def infer(x: np.ndarray) -> np.ndarray:
        (response,) = [r async for r in model.async_infer({"X": x})]
        return response.outputs["Y"]

    before = model.statistics()["model_stats"][0]["execution_count"]
    outputs = await asyncio.gather(*(infer(x) for x in batches))  # sent together: Triton may batch them
    deadline = asyncio.get_running_loop().time() + 10
    after = model.statistics()["model_stats"][0]
    while int(after.get("inference_count", 0)) < 6 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)  # Triton counts on its own threads, a moment after the responses (CI read 1 of 6)
        after = model.statistics()["model_stats"][0]

    for x, y in zip(batches, outputs, strict=True):
        assert y.shape == x.shape and y.dtype == np.float32
        expected = reference(config, x)
        assert relative_error(y, expected) < 1e-4
        assert np.abs(y).max() > 1e-2  # not a chain that died out to zeros
    assert int(after["inference_count"]) >= 6
    assert 1 <= int(after["execution_count"]) - int(before) <= 3
