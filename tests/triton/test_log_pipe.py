# SPDX-License-Identifier: Apache-2.0
"""Triton's log pipe never waits for Python: verbose logging under load (which hung a process for good when Python
drained the pipe) completes, and text beyond the buffer is dropped and counted rather than blocking Triton."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import MODEL_REPO
from triton_dynamo.triton._capi import shim_path

CHILD = """
import asyncio, logging, sys, time
import numpy as np
from triton_dynamo.triton import Options, Server
logging.basicConfig(level=logging.DEBUG, filename=sys.argv[2], format="%(name)s %(message)s")

async def main():
    server = Server(Options(model_repository=sys.argv[1], startup_models=["identity"], log_verbose=1))
    await asyncio.to_thread(server.start, wait_until_ready=True, timeout_s=120)
    model, gate = server.model("identity"), asyncio.Semaphore(64)

    async def one():
        async with gate:
            [r async for r in model.async_infer({"INPUT0": np.arange(16, dtype=np.int32)})]

    await asyncio.gather(*(one() for _ in range(3000)))
    print("served 3000", flush=True)
    await asyncio.to_thread(server.stop)

asyncio.run(main())
"""


def test_verbose_logging_under_load_completes(tmp_path: Path) -> None:
    # Before the shim drained the pipe, this hung on its first run: the event loop's thread held the GIL inside
    # TRITONSERVER_ServerInferAsync, waiting for Triton's logger, whose holder waited for room in the pipe.
    log = tmp_path / "worker.log"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(MODEL_REPO), str(log)], capture_output=True, text=True, timeout=150
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "served 3000" in done.stdout
    verbose = [line for line in log.read_text().splitlines() if line.startswith("triton_dynamo.triton.tritonserver")]
    assert len(verbose) > 3000  # Triton's verbose lines did reach Python logging


def test_text_beyond_the_buffer_is_dropped_and_counted() -> None:
    shim = ctypes.CDLL(str(shim_path()))
    shim.td_log_start.restype = ctypes.c_void_p
    shim.td_log_start.argtypes = (ctypes.c_int, ctypes.c_size_t)
    shim.td_log_take.restype = ctypes.c_size_t
    shim.td_log_take.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint64))
    read_end, write_end = os.pipe()
    log = shim.td_log_start(read_end, 16)
    assert log
    os.write(write_end, b"0123456789abcdefOVERFLOW")  # 24 bytes into 16: Triton's write returns at once
    time.sleep(0.2)
    out, dropped = ctypes.create_string_buffer(64), ctypes.c_uint64()
    size = shim.td_log_take(log, out, 64, ctypes.byref(dropped))
    assert out.raw[:size] == b"0123456789abcdef"
    assert dropped.value == 8
    os.write(write_end, b"wrap around")  # the ring starts over where the last take left it
    time.sleep(0.2)
    size = shim.td_log_take(log, out, 64, ctypes.byref(dropped))
    assert (out.raw[:size], dropped.value) == (b"wrap around", 0)
