# SPDX-License-Identifier: Apache-2.0
"""Servers of their own: loading and unloading models, a repository with a broken model, and stopping Triton with
requests in flight (in a subprocess, so that a crash or a hang cannot take the test session with it)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from tests.conftest import MODEL_REPO, REPO_ROOT
from triton_dynamo.triton import Options, Server, TritonError, infer


async def infer_identity(server: Server, model: str = "identity") -> np.ndarray:
    data = np.arange(6, dtype=np.int32)
    responses = [r async for r in server.model(model).async_infer({"INPUT0": data})]
    assert len(responses) == 1
    np.testing.assert_array_equal(responses[0].outputs["OUTPUT0"], data)
    return responses[0].outputs["OUTPUT0"]


async def upper(server: Server, *words: bytes) -> list[bytes]:
    text = np.array(list(words), dtype=object)
    responses = [r async for r in server.model("string_ops").async_infer({"TEXT": text})]
    assert len(responses) == 1
    return responses[0].outputs["UPPER"].tolist()


def index_entry(server: Server, name: str) -> dict:
    (entry,) = [e for e in server.model_index() if e["name"] == name]
    return entry


# --- load and unload ------------------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def own_server() -> AsyncIterator[Server]:
    """A second Triton in this process, with two models, for tests that change what is loaded."""
    server = Server(Options(model_repository=MODEL_REPO, startup_models=("string_ops", "identity")))
    await asyncio.to_thread(server.start, wait_until_ready=True, timeout_s=120)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def test_only_startup_models_are_loaded(own_server: Server) -> None:
    ready = {e["name"] for e in own_server.model_index(ready_only=True)}
    assert ready == {"string_ops", "identity"}
    assert not own_server.model("repeat").ready()
    assert "state" not in index_entry(own_server, "repeat")  # listed, never loaded


async def test_unload_and_load(own_server: Server, triton_server: Server) -> None:
    assert await upper(own_server, b"before") == [b"BEFORE"]

    await asyncio.to_thread(own_server.unload, "string_ops")
    assert not own_server.model("string_ops").ready()
    entry = index_entry(own_server, "string_ops")
    assert entry["state"] == "UNAVAILABLE"
    assert "unloaded" in entry.get("reason", "")
    with pytest.raises(TritonError) as info:
        await upper(own_server, b"during")
    assert info.value.code == TritonError.NOT_FOUND  # "... has no available versions"
    assert "string_ops" in info.value.message
    assert infer.pending_count() == 0
    await infer_identity(own_server)  # the other model serves on
    assert await upper(triton_server, b"session") == [b"SESSION"]  # and so does the session's server

    model = await asyncio.to_thread(own_server.load, "string_ops")
    assert model.name == "string_ops"
    assert model.ready()
    assert index_entry(own_server, "string_ops")["state"] == "READY"
    assert await upper(own_server, b"after", b"") == [b"AFTER", b""]


async def test_load_a_model_not_loaded_at_start(own_server: Server) -> None:
    await asyncio.to_thread(own_server.load, "identity_fp32")
    try:
        data = np.linspace(0, 1, 5, dtype=np.float32)
        responses = [r async for r in own_server.model("identity_fp32").async_infer({"INPUT0": data})]
        np.testing.assert_array_equal(responses[0].outputs["OUTPUT0"], data)
    finally:
        await asyncio.to_thread(own_server.unload, "identity_fp32")
    assert not own_server.model("identity_fp32").ready()


async def test_load_unknown_model_fails(own_server: Server) -> None:
    with pytest.raises(TritonError) as info:
        await asyncio.to_thread(own_server.load, "no_such_model")
    assert info.value.code == TritonError.INTERNAL  # Triton: "failed to poll from model repository"
    assert "no_such_model" in info.value.message
    await infer_identity(own_server)


# --- a repository with a broken model -------------------------------------------------------------------------------

BROKEN_MODEL = """
class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("broken on purpose: initialize refuses")

    def execute(self, requests):
        return []
"""


@pytest.fixture
def broken_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(MODEL_REPO / "identity", repo / "identity", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "broken" / "1").mkdir(parents=True)
    (repo / "broken" / "1" / "model.py").write_text(BROKEN_MODEL)
    (repo / "broken" / "config.pbtxt").write_text(
        textwrap.dedent(
            """\
            name: "broken"
            backend: "python"
            max_batch_size: 0
            input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ -1 ] } ]
            output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ -1 ] } ]
            instance_group [ { kind: KIND_CPU count: 1 } ]
            """
        )
    )
    return repo


async def test_repository_with_a_broken_model(broken_repo: Path) -> None:
    server = Server(Options(model_repository=broken_repo))
    await asyncio.to_thread(server.start)  # not ready: strict readiness and a model that did not load
    try:
        assert server.live()
        assert not server.ready()
        assert server.model("identity").ready()
        assert not server.model("broken").ready()
        entry = index_entry(server, "broken")
        assert entry["state"] == "UNAVAILABLE"
        assert "broken on purpose" in entry["reason"]
        assert index_entry(server, "identity")["state"] == "READY"
        await infer_identity(server)
        with pytest.raises(TritonError) as info:
            [r async for r in server.model("broken").async_infer({"INPUT0": np.arange(2, dtype=np.int32)})]
        assert info.value.code == TritonError.NOT_FOUND
        assert "'broken'" in info.value.message
        await infer_identity(server)
    finally:
        await asyncio.to_thread(server.stop)
    assert not server.live()


def test_wait_until_ready_gives_up(broken_repo: Path) -> None:
    server = Server(Options(model_repository=broken_repo))
    try:
        with pytest.raises(TritonError) as info:
            server.start(wait_until_ready=True, timeout_s=0.5)
        assert info.value.code == TritonError.UNAVAILABLE
        assert "not ready" in info.value.message
    finally:
        server.stop()


# --- stop with requests in flight -----------------------------------------------------------------------------------

# Starts a server, sends 20 slow streams (10 responses 50 ms apart, on 2 model instances: about 5 s of work) and 10
# identity requests, calls stop(timeout_s) from a thread while they run, sends 5 more requests once stop() began, and
# prints what became of every request, and which python backend stubs it started are still alive when it is done.
STOP_SCRIPT = r"""
import asyncio, json, os, sys, threading
import numpy as np
from triton_dynamo.triton import Options, Server, TritonError, infer

def stub_children():
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"triton_python_backend_stub" in cmdline:
            pids.append(int(entry))
    return pids

async def collect(model, inputs):
    return [r async for r in model.async_infer(inputs)]

async def main(repository, timeout_s):
    server = Server(Options(model_repository=repository, startup_models=["repeat", "identity"]))
    await asyncio.to_thread(server.start, wait_until_ready=True)
    repeat, identity = server.model("repeat"), server.model("identity")
    slow = {"VALUES": np.arange(10, dtype=np.int32), "DELAY_MS": np.array([50], dtype=np.int32)}
    tasks = [asyncio.create_task(collect(repeat, dict(slow))) for _ in range(20)]
    tasks += [asyncio.create_task(collect(identity, {"INPUT0": np.arange(i + 1, dtype=np.int32)})) for i in range(10)]
    await asyncio.sleep(0.2)  # under way
    stopped = threading.Event()
    thread = threading.Thread(target=lambda: (server.stop(timeout_s=timeout_s), stopped.set()), name="stopper")
    thread.start()
    await asyncio.sleep(0.05)
    tasks += [asyncio.create_task(collect(identity, {"INPUT0": np.arange(3, dtype=np.int32)})) for _ in range(5)]
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
    await asyncio.to_thread(thread.join, 60)
    # Triton may release a request just after its last response, from its own thread: that release reaches the
    # binding through this loop, so give it a moment (a request never released still shows, 5 s later)
    for _ in range(500):
        if not infer.pending_count():
            break
        await asyncio.sleep(0.01)
    summary = {"requests": len(results), "completed": 0, "triton_errors": 0, "other": [], "codes": [],
               "stream_lengths": [], "stopped": stopped.is_set(), "pending": infer.pending_count()}
    for result in results:
        if isinstance(result, TritonError):
            summary["triton_errors"] += 1
            summary["codes"].append(result.code_name)
        elif isinstance(result, BaseException):
            summary["other"].append(f"{type(result).__name__}: {result}")
        else:
            summary["completed"] += 1
            summary["stream_lengths"].append(len(result))
    summary["stubs_left"] = stub_children()
    print("SUMMARY " + json.dumps(summary), flush=True)

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


def _kill_leftover_stubs(pids: list[int]) -> None:
    """Python backend stubs orphaned by the subprocess (ours, by pid) outlive it by a minute or so: end them."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"triton_python_backend_stub" not in f.read():
                    continue  # gone, and the pid reused
            os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


@pytest.mark.parametrize(
    ("timeout_s", "drains"),
    [(30, True), (1, False)],
    ids=["requests-finish-within-the-timeout", "timeout-expires-first"],
)
def test_stop_with_requests_in_flight(tmp_path: Path, timeout_s: int, drains: bool) -> None:
    script = tmp_path / "stop_in_flight.py"
    script.write_text(STOP_SCRIPT)
    out_path, err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    start = time.monotonic()
    # Files rather than pipes: stubs the subprocess leaves behind would hold a pipe open after it exits.
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(MODEL_REPO), str(timeout_s)],
            cwd=REPO_ROOT,
            env=dict(os.environ),
            stdout=out,
            stderr=err,
        )
        try:
            returncode = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"the subprocess hung (killed after {time.monotonic() - start:.0f} s)")
    stdout, stderr = out_path.read_text(), err_path.read_text()
    elapsed = time.monotonic() - start
    detail = f"exit {returncode} after {elapsed:.1f} s\nstdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-3000:]}"
    lines = [line for line in stdout.splitlines() if line.startswith("SUMMARY ")]
    summary = json.loads(lines[0].removeprefix("SUMMARY ")) if len(lines) == 1 else {}
    try:
        # negative: killed by a signal; 134: abort(), as when the server was freed under running models
        assert returncode == 0, detail
        assert summary, detail
        assert summary["requests"] == 35
        assert summary["other"] == [], detail  # every request completed or raised TritonError: nothing else
        assert summary["completed"] + summary["triton_errors"] == 35
        assert summary["stopped"]
        assert summary["pending"] == 0  # every request the binding handed to Triton was accounted for
        # sent after stop() began: refused by the binding, whose server is no longer running
        assert summary["triton_errors"] >= 5
        assert set(summary["codes"]) <= {"UNAVAILABLE", "CANCELLED", "INTERNAL"}, summary["codes"]
        # When the timeout expires first, Triton's python backend marks repeat's requests cancelled as it unloads,
        # and repeat then ends its stream early with a final flag: a short stream is the model's answer there.
        if drains:
            assert all(n in (1, 10) for n in summary["stream_lengths"]), summary["stream_lengths"]  # none cut short
            assert summary["completed"] == 30  # everything in flight was served before Triton stopped
            assert summary["stubs_left"] == []  # and the models were unloaded
    finally:
        _kill_leftover_stubs(summary.get("stubs_left", []))
