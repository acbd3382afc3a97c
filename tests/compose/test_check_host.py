# SPDX-License-Identifier: Apache-2.0
"""scripts/check-host.sh: what it says where the tools are missing (here, on a PATH without them); where an engine
runs, tests/engine/ checks what it says of it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .tools import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "check-host.sh"


def run_check(*args: str, path: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/bin/bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env={"PATH": path}
    )


def test_missing_docker_compose_and_driver_each_fail_by_name(tmp_path: Path) -> None:
    # a PATH with the shell tools the script uses but no docker, docker-compose or nvidia-smi
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sort", "head", "printf", "grep"):
        (bin_dir / tool).symlink_to(subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip())
    done = run_check(path=str(bin_dir))
    assert done.returncode == 1, done.stdout
    lines = done.stdout.splitlines()
    assert any(line.startswith("FAIL") and "no docker CLI" in line for line in lines), lines
    assert any(line.startswith("FAIL") and "Docker Compose" in line for line in lines), lines
    assert any(line.startswith("FAIL") and "no nvidia-smi" in line for line in lines), lines
    cpu = run_check("--cpu", path=str(bin_dir))
    assert cpu.returncode == 1
    assert "nvidia" not in cpu.stdout.lower(), cpu.stdout
