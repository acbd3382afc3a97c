# SPDX-License-Identifier: Apache-2.0
"""The images' install steps, run here: the `RUN uv build ...` step of each build stage of services/*/Dockerfile,
word for word but for the paths (/src, /dist, /opt/venv and the base image's python3 become a temporary folder and
this machine's Python), on the files .dockerignore lets into the build context.

This is what no engine can be asked here: that the wheel builds, that the lock installs with --no-deps (so the
override-dependencies hold: no aisimulate, the locked certifi) with nothing missing but aisimulate, and that the
programs the compose files run start from the result. The GPU stage runs on this machine's Python 3.11 where the
Triton image has 3.10: the commands are what is checked there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from .tools import REPO_ROOT, read_dotenv

STAGES = [
    ("services/frontend/Dockerfile", "build", False),
    ("services/worker/Dockerfile", "gpu-build", False),
    ("services/worker/Dockerfile", "cpu-build", True),
]
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)


def stage_instructions(dockerfile: Path, stage: str) -> list[tuple[str, str]]:
    """(instruction, arguments) of one stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    instructions, current = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word == "FROM":
            current = rest.split(" AS ")[-1].strip() if " AS " in rest else None
            continue
        if current == stage:
            instructions.append((word, rest))
    assert instructions, f"{dockerfile}: no stage {stage}"
    return instructions


def build_context(target: Path) -> None:
    """The files .dockerignore lets through (an allow-list), without compiled leftovers."""
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    allowed = [line.strip()[1:].rstrip("/") for line in lines if line.strip().startswith("!")]
    for name in allowed:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
        else:
            shutil.copy2(source, target / name)


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("dockerfile", "stage", "with_pytriton"), STAGES, ids=[f"{d}:{s}" for d, s, _ in STAGES])
def test_build_stage_installs_the_lock(tmp_path: Path, dockerfile: str, stage: str, with_pytriton: bool) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    version = subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.split()[1]
    if version != read_dotenv()["UV_VERSION"]:
        warnings.warn(f"uv {version} here, the images pin UV_VERSION={read_dotenv()['UV_VERSION']}", stacklevel=1)
    instructions = stage_instructions(REPO_ROOT / dockerfile, stage)
    env = {**os.environ, "UV_LINK_MODE": "hardlink"}  # a copy per stage is the images' business, not this test's
    env.pop("VIRTUAL_ENV", None)
    for word, rest in instructions:
        if word == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", rest):
                if key != "UV_LINK_MODE":
                    env[key] = value
    runs = [rest for word, rest in instructions if word == "RUN" and "uv build" in rest]
    assert len(runs) == 1, f"{dockerfile}:{stage}: one RUN builds and installs"
    src, dist, venv = tmp_path / "src", tmp_path / "dist", tmp_path / "venv"
    src.mkdir()
    build_context(src)
    command = runs[0]
    for container, here in (
        ("/opt/venv", str(venv)),
        ("/dist", str(dist)),
        ("/usr/local/bin/python3", BASE_PYTHON),
        ("/usr/bin/python3", BASE_PYTHON),
    ):
        command = command.replace(container, here)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=src, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    python = venv / "bin" / "python"
    # the lock, exactly: certifi as locked, no aisimulate; nothing else missing (but nvidia-pytriton, left out of
    # images where no Triton of the wheel runs)
    locked_certifi = re.search(r"^certifi==(\S+)", (dist / "requirements.txt").read_text(), re.MULTILINE).group(1)
    probe = "import importlib.metadata as m, importlib.util as u;"
    probe += " print(m.version('certifi'), u.find_spec('aisimulate'))"
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == [locked_certifi, "None"]
    check = subprocess.run([uv, "pip", "check", "--python", python], capture_output=True, text=True, env=env)
    unmet = [line for line in (check.stdout + check.stderr).splitlines() if " requires " in line]
    allowed = ("`aisimulate", "`nvidia-pytriton") if not with_pytriton else ("`aisimulate",)
    assert all(any(a in line for a in allowed) for line in unmet), check.stdout + check.stderr
    has_pytriton = subprocess.run([python, "-c", "import pytriton"], capture_output=True).returncode == 0
    assert has_pytriton == with_pytriton

    # what the compose files run from this image starts
    programs = [[str(venv / "bin" / "triton-dynamo"), "worker", "--help"]]
    if stage == "build":
        programs += [[str(python), "-m", "dynamo.frontend", "--help"], [str(venv / "bin" / "locust"), "--version"]]
    for argv in programs:
        ran = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, f"{argv}: {ran.stdout[-2000:]}{ran.stderr[-2000:]}"
