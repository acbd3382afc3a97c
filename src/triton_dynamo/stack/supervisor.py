# SPDX-License-Identifier: Apache-2.0
"""Child processes kept running: started in their own process group, restarted with backoff when they exit
unexpectedly, and stopped with SIGTERM (then SIGKILL) so that nothing is left behind, grandchildren included.

Example:
    >>> spec = ProcessSpec("worker-0", ["python", "-m", "triton_dynamo", "worker"], env={}, log_path=Path("w0.log"))
    >>> supervisor = Supervisor([spec])   # doctest: +SKIP
    >>> await supervisor.start()          # doctest: +SKIP
    >>> await supervisor.stop()           # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the supervisor dies, even by SIGKILL, so no child is orphaned."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass(frozen=True)
class Backoff:
    """Restart delays: ``initial_s`` doubling up to ``max_s``; a run longer than ``stable_s`` resets it."""

    initial_s: float = 0.5
    max_s: float = 30.0
    stable_s: float = 60.0

    def delay(self, consecutive_failures: int) -> float:
        return min(self.max_s, self.initial_s * 2 ** max(0, consecutive_failures - 1))


@dataclass
class ProcessSpec:
    """One child: its name, command line, environment (added to ours) and log file."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    restart: bool = True


@dataclass
class Child:
    """The live state of one supervised child."""

    spec: ProcessSpec
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restarts: int = 0
    consecutive_failures: int = 0
    exits: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


class Supervisor:
    """Starts, watches, restarts and stops a set of child processes."""

    def __init__(
        self,
        specs: Sequence[ProcessSpec],
        *,
        backoff: Backoff | None = None,
        on_event: Callable[[str], None] | None = None,
        on_exit: Callable[[Child, int], Awaitable[None]] | None = None,
        max_consecutive_failures: int = 0,
    ) -> None:
        """``on_event`` hears every start, exit and restart; ``on_exit`` runs after a child exits unexpectedly and
        before it is restarted; with ``max_consecutive_failures`` > 0, a child that
        keeps failing that many times in a row is given up (and :attr:`failed` says which)."""
        self.children = {spec.name: Child(spec) for spec in specs}
        self.backoff = backoff or Backoff()
        self.on_event = on_event or (lambda message: logger.info("%s", message))
        self.on_exit = on_exit
        self.max_consecutive_failures = max_consecutive_failures
        self.failed: asyncio.Event = asyncio.Event()
        self._watchers: dict[str, asyncio.Task] = {}
        self._stopping = False

    async def start(self) -> None:
        for child in self.children.values():
            await self._spawn(child)
            self._watchers[child.spec.name] = asyncio.create_task(self._watch(child), name=f"watch {child.spec.name}")

    async def _spawn(self, child: Child) -> None:
        spec = child.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(spec.log_path, "ab") as log:
            child.process = await asyncio.create_subprocess_exec(
                *spec.argv,
                env={**os.environ, **spec.env},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        child.started_at = time.monotonic()
        self.on_event(f"{spec.name} started (pid {child.process.pid}, log {spec.log_path})")

    async def _watch(self, child: Child) -> None:
        while True:
            code = await child.process.wait()
            child.exits.append(code)
            # What it started may outlive it (a crashed worker's python backend stubs): its process group goes too.
            _signal_group(child.process.pid, signal.SIGKILL)
            if self._stopping:
                return
            if self.on_exit is not None:
                try:
                    await self.on_exit(child, code)
                except Exception:
                    logger.exception("after %s exited", child.spec.name)
            ran_s = time.monotonic() - child.started_at
            child.consecutive_failures = 1 if ran_s > self.backoff.stable_s else child.consecutive_failures + 1
            how = f"signal {-code}" if code < 0 else f"code {code}"
            if not child.spec.restart:
                self.on_event(f"{child.spec.name} exited with {how} after {ran_s:.1f} s; not restarted")
                return
            if self.max_consecutive_failures and child.consecutive_failures >= self.max_consecutive_failures:
                self.on_event(
                    f"{child.spec.name} exited with {how} {child.consecutive_failures} times in a row; "
                    f"giving up (see {child.spec.log_path})"
                )
                self.failed.set()
                return
            delay = self.backoff.delay(child.consecutive_failures)
            self.on_event(
                f"{child.spec.name} exited with {how} after {ran_s:.1f} s; restarting in {delay:.1f} s "
                f"(restart {child.restarts + 1})"
            )
            await asyncio.sleep(delay)
            if self._stopping:
                return
            child.restarts += 1
            await self._spawn(child)

    async def restart(self, name: str) -> None:
        """Stop one child (SIGTERM, as in a rolling restart); its watcher starts it again."""
        child = self.children[name]
        if child.running:
            _signal_group(child.process.pid, signal.SIGTERM)

    async def stop(self, timeout_s: float = 15.0, waves: Sequence[Sequence[str]] = ()) -> None:
        """SIGTERM the children's process groups wave by wave (each wave together, then the rest), waiting up to
        ``timeout_s`` in all, then SIGKILL what is left. Safe to call twice."""
        self._stopping = True
        for task in self._watchers.values():
            task.cancel()
        listed = {name for wave in waves for name in wave}
        rest = [name for name in self.children if name not in listed]
        deadline = time.monotonic() + timeout_s
        for wave in [*waves, rest]:
            running = [self.children[name] for name in wave if self.children[name].running]
            for child in running:
                _signal_group(child.process.pid, signal.SIGTERM)
            if running:
                await asyncio.wait(
                    [asyncio.ensure_future(c.process.wait()) for c in running],
                    timeout=max(0.1, deadline - time.monotonic()),
                )
        for child in self.children.values():
            if child.process is not None:
                # The group may hold grandchildren (Triton's python backend stubs) even when the child is gone.
                _signal_group(child.process.pid, signal.SIGKILL)
                if child.running:
                    self.on_event(f"{child.spec.name} did not stop within {timeout_s:.0f} s; killed")
                    await child.process.wait()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
