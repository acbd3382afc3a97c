# SPDX-License-Identifier: Apache-2.0
"""Process supervision with real processes: restart with backoff, exit hooks, and nothing left behind."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from triton_dynamo.stack.supervisor import Backoff, ProcessSpec, Supervisor

# A child that starts a grandchild in the same process group and writes the grandchild's pid.
PARENT = """
import subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
open(sys.argv[1], "w").write(str(grandchild.pid))
time.sleep(300)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_backoff_doubles_and_caps() -> None:
    backoff = Backoff(initial_s=0.5, max_s=4)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 5, 9)] == [0.5, 1, 2, 4, 4, 4]


async def test_killed_child_is_restarted_after_the_exit_hook(tmp_path: Path) -> None:
    events, exits = [], []

    async def on_exit(child, code):
        exits.append((child.spec.name, code))

    spec = ProcessSpec("sleeper", [sys.executable, "-c", "import time; time.sleep(300)"], {}, tmp_path / "s.log")
    supervisor = Supervisor([spec], backoff=Backoff(initial_s=0.1), on_event=events.append, on_exit=on_exit)
    await supervisor.start()
    first = supervisor.children["sleeper"].pid
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while supervisor.children["sleeper"].pid in (first, None) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    second = supervisor.children["sleeper"].pid
    await supervisor.stop(timeout_s=5)
    assert second != first and supervisor.children["sleeper"].restarts == 1
    assert exits == [("sleeper", -signal.SIGKILL)]
    assert any("exited with signal 9" in e and "restarting in 0.1 s" in e for e in events)
    assert not alive(first) and not alive(second)


async def test_a_child_that_keeps_failing_is_given_up(tmp_path: Path) -> None:
    spec = ProcessSpec("crasher", [sys.executable, "-c", "raise SystemExit(3)"], {}, tmp_path / "c.log")
    events: list[str] = []
    supervisor = Supervisor([spec], backoff=Backoff(initial_s=0.01), on_event=events.append, max_consecutive_failures=3)
    await supervisor.start()
    await asyncio.wait_for(supervisor.failed.wait(), 10)
    await supervisor.stop(timeout_s=2)
    assert supervisor.children["crasher"].exits == [3, 3, 3]
    assert any("3 times in a row; giving up" in e for e in events)


async def test_stop_leaves_no_grandchild_behind(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    spec = ProcessSpec("parent", [sys.executable, "-c", PARENT, str(pid_file)], {}, tmp_path / "p.log")
    supervisor = Supervisor([spec])
    await supervisor.start()
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    grandchild = int(pid_file.read_text())
    parent = supervisor.children["parent"].pid
    assert alive(grandchild)
    await supervisor.stop(timeout_s=5)
    await asyncio.sleep(0.2)
    assert not alive(parent) and not alive(grandchild)


@pytest.mark.parametrize("waves", [[["b"], ["a"]]])
async def test_stop_goes_in_waves(tmp_path: Path, waves) -> None:
    # Each child records when it got SIGTERM; "b" must be told before "a".
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (open(sys.argv[1], 'w').write(str(time.time())), sys.exit(0)))\n"
        "time.sleep(300)\n"
    )
    specs = [ProcessSpec(n, [sys.executable, "-c", script, str(tmp_path / n)], {}, tmp_path / f"{n}.log") for n in "ab"]
    supervisor = Supervisor(specs)
    await supervisor.start()
    await asyncio.sleep(1.0)  # let both install their handler
    await supervisor.stop(timeout_s=10, waves=waves)
    assert float((tmp_path / "b").read_text()) <= float((tmp_path / "a").read_text())


async def test_a_crashed_childs_own_children_go_with_it(tmp_path: Path) -> None:
    """A worker killed outright leaves its python backend stubs behind; the supervisor ends them before restarting."""
    pid_file = tmp_path / "grandchild.pid"
    spec = ProcessSpec("parent", [sys.executable, "-c", PARENT, str(pid_file)], {}, tmp_path / "p.log")
    supervisor = Supervisor([spec], backoff=Backoff(initial_s=0.1))
    await supervisor.start()
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    orphan = int(pid_file.read_text())
    pid_file.unlink()
    os.kill(supervisor.children["parent"].pid, signal.SIGKILL)
    while not pid_file.exists() and time.monotonic() < deadline + 10:  # the restarted parent's own grandchild
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    assert not alive(orphan)
    await supervisor.stop(timeout_s=5)
