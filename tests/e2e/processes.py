# SPDX-License-Identifier: Apache-2.0
"""Real services for end-to-end tests, started on loopback ports: etcd, nats-server, and ``triton-dynamo up``."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_REPO = REPO_ROOT / "model_repo"
# every sample model of model_repo/, by name
SAMPLE_MODELS = sorted(p.name for p in MODEL_REPO.iterdir() if (p / "config.pbtxt").exists())
READY = re.compile(r"triton-dynamo ready: .* serving (?P<models>[^;]+);")


# Every port free_ports has given out in this process: never given again. Free is checked when a port is drawn, but
# nothing listens on it yet, so two draws for one stack (its ports, then its workers' run of ports) could pick the same
# port, and a CI run's `up` refused its overlapping ports.
_given: set[int] = set()


def free_ports(count: int, consecutive: bool = False) -> list[int]:
    """Ports free on 127.0.0.1 right now, below 32768 (Dynamo 1.6.1 reads DYN_SYSTEM_PORT as a signed 16-bit
    number) and away from the kernel's ephemeral range, none given out before in this process; ``consecutive``
    asks for a run of them."""
    rng = random.Random()
    for _ in range(1000):
        if consecutive:
            first = rng.randrange(20000, 32768 - count)
            ports = list(range(first, first + count))
        else:
            ports = sorted(set(rng.sample(range(20000, 32768), count)))
        if len(ports) == count and not _given.intersection(ports) and all(_is_free(p) for p in ports):
            _given.update(ports)
            return ports
    raise RuntimeError("no free ports")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before port {port} opened")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"port {port} not open after {timeout_s} s")


def binary(name: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None
    )
    if found is None:
        raise RuntimeError(f"{name} is not installed: scripts/test.sh installs it (Debian package)")
    return found


def stop_process(proc: subprocess.Popen, timeout_s: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Service:
    """One background process with its log; :meth:`restart` runs the same command again."""

    proc: subprocess.Popen
    log_path: Path
    port: int

    def restart(self, down_s: float = 0.0) -> None:
        args = self.proc.args
        self.stop()
        time.sleep(down_s)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        wait_for_port(self.port, 30, self.proc)

    def stop(self) -> None:
        stop_process(self.proc)


def start_etcd(workdir: Path) -> Service:
    client, peer = free_ports(2)
    log = workdir / "etcd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                binary("etcd"),
                "--name",
                "test",
                "--data-dir",
                str(workdir / "etcd-data"),
                "--listen-client-urls",
                f"http://127.0.0.1:{client}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{client}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-cluster",
                f"test=http://127.0.0.1:{peer}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_for_port(client, 30, proc)
    return Service(proc, log, client)


def start_nats(workdir: Path) -> Service:
    (port,) = free_ports(1)
    log = workdir / "nats.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(workdir / "nats-data")],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_for_port(port, 30, proc)
    return Service(proc, log, port)


@dataclass
class StackProcess:
    """``triton-dynamo up`` running as a user would run it; ``lines`` is what it printed."""

    proc: subprocess.Popen
    grpc_port: int
    metrics_port: int
    worker_ports: list[int]
    state_dir: Path
    worker_metrics_ports: list[int] = field(default_factory=list)
    control_port: int = 0
    frontend_port: int = 0  # the frontend's own port when the stack runs a one-port router in front of it
    lines: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    ready_after_s: float = 0.0

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def control_url(self) -> str:
        return f"127.0.0.1:{self.control_port}"

    @property
    def proxied(self) -> bool:
        """Whether a router serves every Triton RPC on the KServe port (``up --proxy auto`` where one is here)."""
        return any("every Triton RPC there" in line for line in self.lines if "triton-dynamo ready" in line)

    def worker_pids(self) -> dict[int, int]:
        """worker index -> pid, from the supervisor's 'worker-N started (pid P' lines (latest wins)."""
        pids = {}
        for line in list(self.lines):
            match = re.search(r"worker-(\d+) started \(pid (\d+)", line)
            if match:
                pids[int(match.group(1))] = int(match.group(2))
        return pids

    def pid_of(self, name: str) -> int:
        """The pid of the supervised process ``name`` (frontend, worker-N), from the supervisor's latest line."""
        pids = [int(m.group(1)) for line in list(self.lines) if (m := re.search(rf"{name} started \(pid (\d+)", line))]
        if not pids:
            raise LookupError(f"{name} never started")
        return pids[-1]

    def wait_whole(self, timeout_s: float = 90) -> None:
        """Until every worker of the current generation has registered all its models again."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            whole = True
            for index in range(len(self.worker_ports)):
                try:
                    state = json.loads((self.state_dir / f"worker-{index}.ready").read_text())
                except (OSError, ValueError):
                    whole = False
                    break
                if state.get("pid") != self.pid_of(f"worker-{index}") or "models" not in state:
                    whole = False
                    break
            if whole:
                return
            time.sleep(0.1)
        raise TimeoutError(f"the stack was not whole again within {timeout_s} s: {self.lines[-5:]}")

    def wait_for_line(self, pattern: str, timeout_s: float, after: int = 0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines)[after:]:
                if re.search(pattern, line):
                    return line
            if self.proc.poll() is not None:
                raise RuntimeError(f"triton-dynamo up exited with {self.proc.returncode}: {self.lines[-5:]}")
            time.sleep(0.05)
        raise TimeoutError(f"no line matching {pattern!r} within {timeout_s} s; got: {self.lines[-5:]}")

    def stop(self, timeout_s: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def start_stack(
    state_dir: Path,
    *,
    workers: int = 2,
    extra_args: tuple[str, ...] = (),
    env: dict | None = None,
    timeout_s: float = 120,
) -> StackProcess:
    grpc_port, metrics_port, control_port, frontend_port = free_ports(4)
    worker_ports = free_ports(workers, consecutive=True)
    metrics_ports = free_ports(workers, consecutive=True)
    argv = [
        sys.executable,
        "-m",
        "triton_dynamo",
        "up",
        "--workers",
        str(workers),
        "--model-repository",
        str(MODEL_REPO),
        "--grpc-port",
        str(grpc_port),
        "--metrics-port",
        str(metrics_port),
        "--control-port",
        str(control_port),
        "--frontend-port",
        str(frontend_port),
        "--worker-system-port",
        str(worker_ports[0]),
        "--worker-metrics-port",
        str(metrics_ports[0]),
        "--state-dir",
        str(state_dir),
        *extra_args,
    ]
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "DYN_TCP_RPC_HOST": "127.0.0.1", **(env or {})},
        start_new_session=True,
    )
    stack = StackProcess(
        proc,
        grpc_port,
        metrics_port,
        worker_ports,
        state_dir,
        worker_metrics_ports=metrics_ports,
        control_port=control_port,
        frontend_port=frontend_port,
    )
    threading.Thread(target=_collect, args=(proc, stack.lines), daemon=True).start()
    try:
        line = stack.wait_for_line("triton-dynamo ready", timeout_s)
    except TimeoutError:
        stack.stop()
        raise
    stack.ready_after_s = time.monotonic() - started
    stack.models = [m.strip() for m in READY.search(line).group("models").split(",")]
    return stack


def _collect(proc: subprocess.Popen, lines: list[str]) -> None:
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))


def worker_counter(stack: StackProcess, family: str) -> float:
    """The sum over every worker of the stack of one counter family of ours (all its series)."""
    total = 0.0
    for port in stack.worker_metrics_ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        total += sum(float(m.group(1)) for m in re.finditer(rf"^{family}_total(?:{{[^}}]*}})? (\S+)$", text, re.M))
    return total
