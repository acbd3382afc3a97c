# SPDX-License-Identifier: Apache-2.0
"""The benchmarks' native identity backend (benchmarks/native_identity/identity.c), in a real in-process Triton.

The stack benchmark's headline figures come from this model, so it must answer exactly what it was sent, for the
sizes measured and for several inputs at once, and report statistics as Triton's own backends do (the worker's
queue and compute histograms come from those trace activities).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Run in a child: Triton allows one server per process, and the test session already has one.
CHILD = r"""
import asyncio, json, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, sys.argv[1])
from _common import native_identity_repo
from triton_dynamo.triton import InferenceRequest, Options, Server

async def main():
    repo = native_identity_repo(Path(sys.argv[2]))
    server = Server(Options(model_repository=repo, startup_models=["identity_fp32"], log_info=False))
    await asyncio.to_thread(server.start, wait_until_ready=True, timeout_s=120)
    model = server.model("identity_fp32")
    report = {"config_backend": model.config()["backend"], "sizes": {}}
    for size in (0, 16, 150528):
        data = np.random.default_rng(size).standard_normal(size).astype(np.float32)
        request = InferenceRequest(inputs={"INPUT0": data}, request_id=f"r{size}", trace=True)
        responses = [r async for r in model.async_infer(request)]
        out = responses[0].outputs["OUTPUT0"]
        stamps = request.timestamps
        report["sizes"][str(size)] = {
            "responses": len(responses),
            "equal": bool(out.dtype == data.dtype and np.array_equal(out, data)),
            "request_id": responses[0].request_id,
            "queue_ns": stamps.queue_ns,
            "compute_infer_ns": stamps.compute_infer_ns,
        }
    try:
        [r async for r in model.async_infer(InferenceRequest(inputs={"OTHER": np.ones(2, np.float32)}))]
        report["unknown_input"] = "accepted"
    except Exception as exc:
        report["unknown_input"] = str(exc)
    await asyncio.to_thread(server.stop)
    print(json.dumps(report))

asyncio.run(main())
"""


def test_native_identity_echoes_and_reports_statistics(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT / "benchmarks"), str(tmp_path / "repo")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["config_backend"] == "td_identity"
    for size, case in report["sizes"].items():
        assert case["responses"] == 1, size
        assert case["equal"], f"{size} elements came back different"
        assert case["request_id"] == f"r{size}"
        assert case["queue_ns"] is not None and case["queue_ns"] >= 0, size
        assert case["compute_infer_ns"] is not None and case["compute_infer_ns"] >= 0, size
    # Triton checks inputs against the config before the backend runs: the error names the input.
    assert "OTHER" in report["unknown_input"]
