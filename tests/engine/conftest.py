# SPDX-License-Identifier: Apache-2.0
"""The Compose stack on a local Docker engine (scripts/compose-engine.sh prepares the engine and the images).

One stack for the whole module, under its own project name and on free host ports, so that nothing else on the
machine is touched; it is taken down (containers, networks, volumes) whatever the tests did.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..compose.tools import compose_command
from ..e2e.processes import free_ports

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "compose-engine.sh"
PROJECT = "triton-dynamo-enginetest"
CORE_FILES = ("compose.yaml", "compose.cpu.yaml", "tests/engine/compose.engine.yaml")
# Prometheus only, of the observability overlay: Grafana, Tempo and the collector have no stand-in here.
OBSERVABILITY_FILES = (*CORE_FILES, "compose.observability.yaml")
PUBLISHED = ("GRPC_PORT", "FRONTEND_GRPC_PORT", "FRONTEND_METRICS_PORT", "TLS_PROXY_PORT", "PROMETHEUS_PORT")
WORKER_METRICS = "http://127.0.0.1:8200/metrics"


@dataclass
class EngineStack:
    ports: dict[str, int]
    env: dict[str, str]

    def compose(self, *args: str, files=CORE_FILES, timeout_s: float = 300, check: bool = True):
        argv = [*compose_command(), "-p", PROJECT]
        for name in files:
            argv += ["-f", name]
        done = subprocess.run(
            [*argv, *args], cwd=REPO_ROOT, env=self.env, capture_output=True, text=True, timeout=timeout_s
        )
        if check and done.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)}: exit {done.returncode}\n{done.stderr[-3000:]}")
        return done

    def up(self, *args: str, files=CORE_FILES, timeout_s: float = 300) -> float:
        """``up -d --wait`` with nothing pulled or built (the images are ready); seconds it took."""
        started = time.monotonic()
        self.compose("up", "-d", "--wait", "--pull", "never", "--no-build", *args, files=files, timeout_s=timeout_s)
        return time.monotonic() - started

    def containers(self, service: str) -> list[str]:
        """Names of the service's running containers, by replica number."""
        out = self.compose("ps", "--format", "{{.Name}}", service).stdout.split()
        return sorted(out, key=lambda name: int(name.rsplit("-", 1)[1]))

    def docker(self, *args: str, timeout_s: float = 60, check: bool = True) -> str:
        done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout_s)
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: exit {done.returncode}\n{done.stderr[-2000:]}")
        return done.stdout

    def served(self, container: str) -> float:
        """Requests the worker in ``container`` has answered (its own counter, read inside the container)."""
        code = f"import urllib.request; print(urllib.request.urlopen('{WORKER_METRICS}', timeout=5).read().decode())"
        text = self.docker("exec", container, "python", "-c", code)
        pattern = r"^triton_dynamo_requests_total\{[^}]*\} (\S+)$"
        return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.M))

    def url(self, port_name: str) -> str:
        return f"127.0.0.1:{self.ports[port_name]}"


def prepare_engine() -> None:
    """The engine and the images, unless scripts/compose-engine.sh already prepared them for this run."""
    if os.environ.get("TRITON_DYNAMO_SKIP_ENGINE") == "1":
        pytest.skip("TRITON_DYNAMO_SKIP_ENGINE=1: the Compose stack on a Docker engine is not run")
    if os.environ.get("TRITON_DYNAMO_ENGINE_PREPARED") == "1":
        return
    done = subprocess.run(["bash", str(SCRIPT), "prepare"], capture_output=True, text=True, timeout=1500)
    if done.returncode != 0:
        pytest.fail(
            f"scripts/compose-engine.sh prepare failed (exit {done.returncode}); it needs root or a running Docker "
            f"engine (TRITON_DYNAMO_SKIP_ENGINE=1 leaves these tests out):\n{done.stderr[-4000:]}"
        )


@pytest.fixture(scope="session")
def engine_stack() -> Iterator[EngineStack]:
    prepare_engine()
    ports = dict(zip(PUBLISHED, free_ports(len(PUBLISHED)), strict=True))
    env = {**os.environ, **{name: str(port) for name, port in ports.items()}}
    stack = EngineStack(ports=ports, env=env)
    stack.compose("down", "-v", "--remove-orphans", files=OBSERVABILITY_FILES, timeout_s=120)
    try:
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", "--timeout", "60", files=OBSERVABILITY_FILES, timeout_s=300)
        if os.environ.get("TRITON_DYNAMO_ENGINE_PREPARED") != "1":
            subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=120)
