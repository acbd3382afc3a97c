# SPDX-License-Identifier: Apache-2.0
"""The license pyproject.toml declares is the one in LICENSE, and every source file says so in its first lines."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TAG = "SPDX-License-Identifier: Apache-2.0"


def source_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    found = []
    for name in listed:
        path = ROOT / name
        if not path.is_file():
            continue
        source = path.suffix in (".py", ".sh", ".awk", ".c", ".h")
        if source or (path.suffix == "" and path.read_bytes().startswith(b"#!")):
            found.append(path)
    return found


def test_license_file_is_the_declared_apache_2() -> None:
    declared = re.search(r'^license = \{ text = "([^"]+)" \}$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert declared is not None and declared.group(1) == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_every_source_file_carries_the_spdx_identifier() -> None:
    files = source_files()
    assert len(files) > 100, len(files)
    missing = [str(p.relative_to(ROOT)) for p in files if TAG not in "".join(p.read_text().splitlines(True)[:2])]
    assert missing == [], missing
