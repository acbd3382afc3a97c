# SPDX-License-Identifier: Apache-2.0
"""Error responses free what Triton allocates for them: ``TRITONSERVER_InferenceResponseError`` makes a new error at
each call (r24.10), ours to delete. Measured as the process's malloc'd bytes (glibc's mallinfo2) over thousands of
error responses, in a process of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import MODEL_REPO

REFUSING_MODEL = """
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse(error=pb_utils.TritonError("refused by the model")) for _ in requests]
"""

CHILD = """
import asyncio, ctypes, gc, sys
import numpy as np
from triton_dynamo.triton import Options, Server, TritonError

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2

async def main():
    server = Server(Options(model_repository=sys.argv[1], log_info=False, log_warn=False, log_error=False))
    await asyncio.to_thread(server.start, wait_until_ready=True, timeout_s=120)
    model, errors = server.model("refusing"), 0
    inputs = {"INPUT0": np.ones(4, np.float32)}

    async def one():
        nonlocal errors
        try:
            [r async for r in model.async_infer(inputs)]
        except TritonError as exc:
            errors += "refused by the model" in exc.message

    async def run(count):
        for _ in range(count // 100):  # in batches, so that Python's own garbage does not pile up meanwhile
            await asyncio.gather(*(one() for _ in range(100)))
        gc.collect()

    await run(2000)
    before = libc.mallinfo2().uordblks
    await run(5000)
    grown = libc.mallinfo2().uordblks - before
    print(f"{errors} {grown / 5000:.1f}", flush=True)
    await asyncio.to_thread(server.stop)

asyncio.run(main())
"""


def test_error_responses_leak_nothing(tmp_path: Path) -> None:
    model = tmp_path / "refusing"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.py").write_text(REFUSING_MODEL)
    config = (MODEL_REPO / "identity_fp32" / "config.pbtxt").read_text()
    (model / "config.pbtxt").write_text(config.replace('name: "identity_fp32"', 'name: "refusing"'))
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    errors, bytes_per_error = done.stdout.split()
    assert int(errors) == 7000  # every request got the model's error
    # 243 bytes per error response before the binding deleted Triton's error; a few bytes of noise now
    assert float(bytes_per_error) < 50, bytes_per_error
