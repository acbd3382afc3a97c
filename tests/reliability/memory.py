# SPDX-License-Identifier: Apache-2.0
"""Resident memory, file descriptors and threads of the stack's processes, read from /proc."""

from __future__ import annotations

import os
import re

from ..e2e.processes import StackProcess


def stack_pids(stack: StackProcess) -> list[int]:
    """The frontend's and the workers' current pids."""
    names = {m.group(1) for line in stack.lines if (m := re.search(r"(frontend|worker-\d+) started", line))}
    return [stack.pid_of(name) for name in sorted(names)]


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        return 0
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))
