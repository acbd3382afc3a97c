# SPDX-License-Identifier: Apache-2.0
"""Child traces, which may outlive their request: Triton spawns a child of a request's trace for each step of an
ensemble (and, where the backend does it, for a BLS request), with the binding's callbacks and the request's state as
user pointer; a child released after that state is freed would read freed memory. The binding's callbacks now leave
children alone (they only delete them): traced requests to an ensemble complete with the root's timestamps, and the
shim counts the children it released. (The python backend of Triton 2.51 spawns no child trace for its BLS requests:
counted here, none came.)"""

from __future__ import annotations

import asyncio
import ctypes
import json

import numpy as np

from triton_dynamo.triton import InferenceRequest, Server
from triton_dynamo.triton._capi import shim_path

ENSEMBLE = "identity_ensemble"
ENSEMBLE_CONFIG = {
    "platform": "ensemble",
    "max_batch_size": 0,
    "input": [{"name": "INPUT0", "data_type": "TYPE_INT32", "dims": [-1]}],
    "output": [{"name": "OUTPUT0", "data_type": "TYPE_INT32", "dims": [-1]}],
    "ensemble_scheduling": {
        "step": [
            {
                "model_name": "identity",
                "model_version": -1,
                "input_map": {"INPUT0": "INPUT0"},
                "output_map": {"OUTPUT0": "OUTPUT0"},
            }
        ]
    },
}


def children_released() -> int:
    count = ctypes.CDLL(str(shim_path())).td_trace_children_released
    count.restype = ctypes.c_uint64
    return count()


async def test_traced_ensemble_requests_complete_and_their_child_traces_are_left_alone(triton_server: Server) -> None:
    before = children_released()
    files = {"file:1/.keep": b""}  # an ensemble's version directory holds nothing
    await asyncio.to_thread(triton_server.load, ENSEMBLE, config=json.dumps(ENSEMBLE_CONFIG), files=files)
    try:
        model, gate = triton_server.model(ENSEMBLE), asyncio.Semaphore(16)

        async def one(i: int) -> InferenceRequest:
            request = InferenceRequest(inputs={"INPUT0": np.array([i, i + 1], np.int32)}, trace=True)
            async with gate:
                [response] = [r async for r in model.async_infer(request)]
            assert response.outputs["OUTPUT0"].tolist() == [i, i + 1]
            return request

        requests = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(300))), 120)
        assert all(r.timestamps.request_start_ns and r.timestamps.request_end_ns for r in requests)
        # one child per request (the ensemble's one step), each released without touching the request's state
        assert children_released() - before == 300
    finally:
        await asyncio.to_thread(triton_server.unload, ENSEMBLE)
