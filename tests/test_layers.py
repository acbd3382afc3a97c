# SPDX-License-Identifier: Apache-2.0
"""The package's layers (pyproject.toml, [tool.importlinter]): the contracts hold, breaking one is caught, and the
processes without Triton do not load the binding at run time either."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINT_IMPORTS, str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(package_parent)},
    )


def test_the_contracts_hold() -> None:
    done = lint_imports(ROOT / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout or "broken" not in done.stdout.split("Contracts:")[-1], done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("client/kserve.py", "from ..triton import _capi", "Processes without Triton never import the binding"),
        ("triton/types.py", "from ..worker import config", "The binding imports nothing above it"),
        ("telemetry/spans.py", "from ..triton import infer", "Telemetry reads the binding's plain request types"),
    ],
)
def test_an_import_across_a_layer_is_caught(tmp_path: Path, module: str, line: str, contract: str) -> None:
    shutil.copytree(ROOT / "src" / "triton_dynamo", tmp_path / "triton_dynamo", ignore=shutil.ignore_patterns("*.so"))
    target = tmp_path / "triton_dynamo" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0, done.stdout
    assert f"{contract}" in done.stdout and "BROKEN" in done.stdout, done.stdout


def test_processes_without_triton_do_not_load_the_binding() -> None:
    code = (
        "import sys\n"
        "import triton_dynamo.client.cli, triton_dynamo.client.kserve, triton_dynamo.loadgen.wire\n"
        "import triton_dynamo.control.service, triton_dynamo.stack.launcher\n"
        "print(sorted(m for m in sys.modules if m.startswith('triton_dynamo.triton')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stdout
