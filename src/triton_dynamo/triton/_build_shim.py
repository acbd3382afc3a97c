# SPDX-License-Identifier: Apache-2.0
"""Compiling the binding's C callbacks (``_shim.c``) into ``_tdshim.so``.

Used by the package build (``hatch_build.py``, so wheels and editable installs carry the library; nothing is
compiled at run time) and by tests that build small libraries of their own. Imports nothing from the package: the
build loads this file by path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("_shim.c")
LIBRARY_NAME = "_tdshim.so"


def compiler() -> str | None:
    """The C compiler to use: ``$CC``, else cc or gcc on PATH."""
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate):
            return candidate
    return None


def compile_shim(output: Path, source: Path = SOURCE) -> Path:
    """Build ``source`` into the shared library ``output`` (atomically: concurrent builds do not clash)."""
    cc = compiler()
    if cc is None:
        raise RuntimeError(f"no C compiler found (set CC, or install gcc) to build {source.name}")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=output.parent, suffix=".so", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        subprocess.run(
            [
                cc,
                "-O2",
                "-std=c11",
                "-D_GNU_SOURCE",
                "-fPIC",
                "-shared",
                "-fvisibility=hidden",
                "-Wall",
                "-Werror",
                "-o",
                str(tmp_path),
                str(source),
                "-lpthread",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        os.replace(tmp_path, output)
    except subprocess.CalledProcessError as exc:
        tmp_path.unlink(missing_ok=True)
        raise RuntimeError(f"building {source.name} failed:\n{exc.stderr}") from exc
    return output
