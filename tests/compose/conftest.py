# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the Compose tests: the configurations Compose makes of the files, and one local run of the stack."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .tools import CORE, OBSERVABILITY, REPO_ROOT, ToolMissing, compose_config


@pytest.fixture(scope="session")
def configs() -> dict[tuple[str, ...], dict[str, Any]]:
    """``docker compose config`` of every documented combination of files, every profile on."""
    from .tools import COMBINATIONS

    try:
        return {files: compose_config(files) for files in COMBINATIONS}
    except ToolMissing as exc:
        pytest.fail(str(exc))


def _netns_available() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    return subprocess.run([unshare, "--net", "true"], capture_output=True).returncode == 0


def _ports_free(pairs: list[tuple[str, int]]) -> list[str]:
    taken = []
    for host, port in pairs:
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError as exc:
                taken.append(f"{host}:{port} ({exc.strerror})")
    return taken


@pytest.fixture(scope="session")
def local_run(configs, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The core stack's services (two workers) and Prometheus run once as local processes, with Compose's commands
    and environment (tests/compose/localrun.py says how); the checks' results."""
    workdir = tmp_path_factory.mktemp("compose-local-run")
    core, observed = workdir / "core.json", workdir / "observability.json"
    core.write_text(json.dumps(configs[(CORE,)]))
    observed.write_text(json.dumps(configs[(CORE, OBSERVABILITY)]))
    out = workdir / "results.json"
    argv = [sys.executable, "-m", "tests.compose.localrun", "--config", str(core)]
    argv += ["--prometheus-config", str(observed), "--workdir", str(workdir / "run"), "--out", str(out)]
    if _netns_available():
        # a network namespace of its own: Compose's ports, whatever else listens on this machine
        argv = ["unshare", "--net", "--", *argv, "--netns"]
    else:
        # The frontend binds 8001 and 8002 on every address (Dynamo 1.6.1 ignores --http-host for KServe).
        taken = _ports_free([("0.0.0.0", 8001), ("0.0.0.0", 8002), ("127.0.0.2", 2379), ("127.0.0.7", 9090)])
        if taken:
            pytest.skip(f"no network namespace here and Compose's ports are taken: {', '.join(taken)}")
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240, env=dict(os.environ))
    if not out.exists():
        pytest.fail(
            f"the local run wrote no results (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    results = json.loads(out.read_text())
    if results.get("error"):
        pytest.fail(f"the local run failed:\n{results['error']}\n{_logs(results)}")
    return results


def _logs(results: dict[str, Any]) -> str:
    return "\n".join(f"--- {name}\n{tail}" for name, tail in (results.get("logs") or {}).items())


def check_passed(results: dict[str, Any], name: str) -> Any:
    """The value of check ``name`` of the local run; fails with its error and the services' logs otherwise."""
    check = results["checks"].get(name)
    if check is None:
        pytest.fail(f"check {name} did not run (an earlier step failed): {_failed(results)}\n{_logs(results)}")
    if not check["ok"]:
        pytest.fail(f"{name}: {check['error']}\n{check.get('traceback', '')}\n{_logs(results)}")
    return check["value"]


def _failed(results: dict[str, Any]) -> str:
    return "; ".join(f"{n}: {c['error']}" for n, c in results["checks"].items() if not c["ok"]) or "none failed"


def repo_path(path: str) -> Path:
    return REPO_ROOT / path
