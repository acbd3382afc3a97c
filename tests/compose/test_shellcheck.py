# SPDX-License-Identifier: Apache-2.0
"""shellcheck on every shell script of the repository: files named *.sh and files whose first line runs a shell."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .tools import REPO_ROOT

SHEBANG = (b"#!/bin/sh", b"#!/bin/bash", b"#!/usr/bin/env bash", b"#!/usr/bin/env sh", b"#!/bin/dash")


def shell_scripts() -> list[str]:
    """Tracked files and new files git does not ignore, that are shell scripts."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    scripts = []
    for name in sorted({n.decode() for n in listed if n}):
        path = REPO_ROOT / name
        if not path.is_file():
            continue
        if name.endswith(".sh"):
            scripts.append(name)
            continue
        with open(path, "rb") as f:
            first = f.readline(100)
        if first.startswith(SHEBANG):
            scripts.append(name)
    return scripts


SCRIPTS = shell_scripts()


def test_the_repository_has_shell_scripts() -> None:
    assert {".ci/run", "scripts/test.sh", "services/nghttpx/make-dev-cert.sh"} <= set(SCRIPTS)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (scripts/test.sh does)")
@pytest.mark.parametrize("script", SCRIPTS)
def test_shellcheck(script: str) -> None:
    done = subprocess.run(["shellcheck", "--external-sources", script], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
