# SPDX-License-Identifier: Apache-2.0
"""Models that do not load: the worker serves the others and says which failed and why; with none loadable, it
exits with a clear message and a non-zero status."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..e2e.processes import MODEL_REPO
from ..reliability_figures import record_figure

BROKEN_MODEL = """
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("weights file is corrupt (raised on purpose by the test)")

    def execute(self, requests):
        return []
"""


def repository(root: Path, with_identity: bool) -> Path:
    repo = root / "repo"
    if with_identity:
        shutil.copytree(MODEL_REPO / "identity", repo / "identity", symlinks=True)
    (repo / "broken" / "1").mkdir(parents=True)
    (repo / "broken" / "1" / "model.py").write_text(BROKEN_MODEL)
    config = (MODEL_REPO / "identity" / "config.pbtxt").read_text().replace('"identity"', '"broken"')
    (repo / "broken" / "config.pbtxt").write_text(config)
    return repo


def worker(root: Path, repo: Path) -> subprocess.Popen:
    env = {**os.environ, "DYN_TCP_RPC_HOST": "127.0.0.1", "DYN_FILE_KV": str(root / "kv")}
    args = [
        sys.executable,
        "-m",
        "triton_dynamo",
        "worker",
        "--discovery-backend",
        "file",
        "--model-repository",
        str(repo),
        "--ready-file",
        str(root / "ready.json"),
    ]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_broken_model_is_named_and_the_others_served(tmp_path: Path) -> None:
    proc = worker(tmp_path, repository(tmp_path, with_identity=True))
    ready = tmp_path / "ready.json"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if ready.exists() and "models" in json.loads(ready.read_text()):
            break
        time.sleep(0.2)
    served = json.loads(ready.read_text()).get("models") if ready.exists() else None
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    line = next((line for line in output.splitlines() if "model 'broken' is not served" in line), "")
    record_figure(
        "model_failures",
        "a repository with one model that fails to load",
        {
            "served": served,
            "worker says": line.split("triton_dynamo.worker.service: ", 1)[-1][:200],
            "exit status after SIGTERM": proc.returncode,
        },
    )
    assert served == ["identity"]
    assert "weights file is corrupt" in line
    assert proc.returncode == 0


def test_no_loadable_model_exits_with_a_clear_message(tmp_path: Path) -> None:
    proc = worker(tmp_path, repository(tmp_path, with_identity=False))
    output, _ = proc.communicate(timeout=90)
    final = [line for line in output.splitlines() if "ERROR triton_dynamo.cli" in line]
    record_figure(
        "model_failures",
        "a repository with no model that loads",
        {
            "exit status": proc.returncode,
            "worker says": final[-1].split("triton_dynamo.cli: ", 1)[-1][:200] if final else "",
        },
    )
    assert proc.returncode == 2  # INVALID_ARGUMENT in the status table: the configuration cannot work
    assert final and "no model of" in final[-1] and "loaded" in final[-1]
    assert "model 'broken' is not served" in output and "weights file is corrupt" in output
