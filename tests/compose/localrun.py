# SPDX-License-Identifier: Apache-2.0
"""Runs services of the Compose stack as local processes, with the command lines and environment Compose gives them.

    python -m tests.compose.localrun --config core.json --prometheus-config observability.json --workdir DIR --out R

``--config`` and ``--prometheus-config`` are ``docker compose config --format json`` outputs (compose.yaml alone, and
with compose.observability.yaml for the prometheus service). Each service runs what its container would run: the
entrypoint and command, and the environment, that Compose computed, with only these substitutions:

- each service name (and network alias) stands for a loopback address of its own (etcd 127.0.0.2, nats 127.0.0.3,
  frontend 127.0.0.4, worker replicas 127.0.0.5 and .6, prometheus 127.0.0.7, tls-proxy 127.0.0.8, locust 127.0.0.9,
  locust-worker 127.0.0.10, control 127.0.0.11; services not started here from 127.0.0.50 up, where nothing
  listens), so the container ports stay as they are; 0.0.0.0, 127.0.0.1 and localhost in a service's own command,
  environment and configuration become its address, as inside its container;
- DYN_TCP_RPC_HOST is set to the replica's address (in a container, Dynamo picks the container's address itself);
- the program: etcd, nats-server, prometheus, nghttpx, wget are Debian's; python and triton-dynamo come from this
  repository's virtual environment (which, as the images' /opt/venv, goes first on PATH);
- mounts: configuration mounted from services/ is copied with the substitutions above, other bind mounts are used
  where they are, named volumes and tmpfs become empty folders, secrets the test's own files;
- Prometheus finds the worker replicas by DNS (one A record each) in Compose; here its configuration gets the
  replicas' addresses as static targets instead (``dns_sd_configs`` rewritten to ``static_configs``).

Services wait for each other as ``depends_on`` says, running the healthchecks Compose would run (with the same
substitutions; a healthcheck whose program is not installed here is replaced by the equivalent HTTP probe, and the
results say so). The checks' results are written as JSON to ``--out``; the pytest tests read them.

When run as root it should be started inside a fresh network namespace (``unshare --net``): the ports are then
those of Compose, whatever else runs on this machine. It brings the namespace's loopback up itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES_DIR = REPO_ROOT / "services"
VENV_BIN = Path(sys.executable).parent

# The services started here, in their compose files (locust and locust-worker: profile `load`), and the replicas.
CORE_SERVICES = ("etcd", "nats", "frontend", "worker", "control", "tls-proxy", "locust", "locust-worker")
WORKER_REPLICAS = 2
ADDRESSES = {
    "etcd": ["127.0.0.2"],
    "nats": ["127.0.0.3"],
    "frontend": ["127.0.0.4"],
    "worker": ["127.0.0.5", "127.0.0.6"],
    "prometheus": ["127.0.0.7"],
    "tls-proxy": ["127.0.0.8"],
    "locust": ["127.0.0.9"],
    "locust-worker": ["127.0.0.10"],
    "control": ["127.0.0.11"],
}
UNUSED_BASE = 50  # services not started here: 127.0.0.50 and up, where nothing listens

# Programs of the images -> programs here.
LOCAL_PROGRAMS = {
    "python": str(VENV_BIN / "python"),
    "python3": str(VENV_BIN / "python"),
    "triton-dynamo": str(VENV_BIN / "triton-dynamo"),
    "locust": str(VENV_BIN / "locust"),
}
DEBIAN_PROGRAMS = ("etcd", "etcdctl", "nats-server", "prometheus", "nghttpx", "wget")

DEADLINE_S = 170.0  # everything, start to stop


# ------------------------------------------------------------------------------------------------ substitutions


@dataclass
class Localizer:
    """Turns container addresses and paths into this machine's, for one replica of one service."""

    addresses: dict[str, list[str]]  # service name or alias -> addresses of its replicas
    own_address: str
    paths: dict[str, str] = field(default_factory=dict)  # container path -> host path

    def arguments(self, argv: list[str]) -> list[str]:
        """A command line: also a bare service name after a ``--...host`` flag (``--master-host locust``) becomes
        its address (elsewhere a bare word is no address: ``--discovery-backend etcd``)."""
        out = []
        for i, value in enumerate(argv):
            after_host_flag = i > 0 and re.fullmatch(r"-{1,2}[\w-]*host", argv[i - 1]) is not None
            out.append(self.addresses[value][0] if after_host_flag and value in self.addresses else self.text(value))
        return out

    def text(self, value: str) -> str:
        value = self._paths(value)
        value = re.sub(r"(?<![\w.])(?:0\.0\.0\.0|127\.0\.0\.1|localhost)(?![\w.])", self.own_address, value)
        names = sorted(self.addresses, key=len, reverse=True)
        # `frontend:8001`, and nghttpx's `frontend,8001`
        pattern = r"(?<![\w.-])(" + "|".join(map(re.escape, names)) + r")(?=[:,]\d)"
        return re.sub(pattern, lambda m: self.addresses[m.group(1)][0], value)

    def _paths(self, value: str) -> str:
        if not self.paths:
            return value
        targets = sorted(self.paths, key=len, reverse=True)
        pattern = r"(?<![\w./-])(" + "|".join(map(re.escape, targets)) + r")(?=[/\s\"';:,)\]]|$)"
        return re.sub(pattern, lambda m: self.paths[m.group(1)], value)


def service_addresses(config: dict[str, Any]) -> dict[str, list[str]]:
    """Every service name and network alias of ``config`` -> loopback addresses (see the module's docstring)."""
    addresses = {name: list(addrs) for name, addrs in ADDRESSES.items()}
    unused = UNUSED_BASE
    for name, service in sorted(config["services"].items()):
        if name not in addresses:
            addresses[name] = [f"127.0.0.{unused}"]
            unused += 1
        for network in (service.get("networks") or {}).values():
            for alias in (network or {}).get("aliases") or []:
                addresses.setdefault(alias, addresses[name])
    return addresses


def program(argv: list[str]) -> list[str]:
    """``argv`` with its program replaced by this machine's."""
    name = Path(argv[0]).name
    if name in LOCAL_PROGRAMS:
        return [LOCAL_PROGRAMS[name], *argv[1:]]
    if name in DEBIAN_PROGRAMS:
        found = shutil.which(name) or next(
            (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None
        )
        if found is None:
            raise FileNotFoundError(name)
        return [found, *argv[1:]]
    raise ValueError(f"no local program for {argv[0]!r}: add it to LOCAL_PROGRAMS or DEBIAN_PROGRAMS")


def render_tree(source: Path, target: Path, transform: Callable[[Path, str], str]) -> None:
    """Copy the file or folder ``source`` to ``target``, passing every text file through ``transform``."""
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for path in files:
        out = target if source.is_file() else target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(transform(path, path.read_text()))


def static_prometheus_config(text: str, addresses: dict[str, list[str]]) -> str:
    """prometheus.yml with each ``dns_sd_configs`` (A records of a service name) replaced by static targets: the
    addresses of that service's replicas here."""
    config = yaml.safe_load(text)
    for job in config.get("scrape_configs") or []:
        dns = job.pop("dns_sd_configs", None)
        if not dns:
            continue
        statics = job.setdefault("static_configs", [])
        for entry in dns:
            port = entry["port"]
            targets = [f"{addr}:{port}" for name in entry["names"] for addr in addresses.get(name, [])]
            statics.append({"targets": targets})
    return yaml.safe_dump(config, sort_keys=False)


# ------------------------------------------------------------------------------------------------ processes


@dataclass
class Replica:
    service: str
    index: int
    address: str
    spec: dict[str, Any]
    localizer: Localizer
    workdir: Path
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    healthcheck: list[str] | None = None
    healthcheck_note: str = ""

    @property
    def name(self) -> str:
        return self.service if self.index == 0 and self.service != "worker" else f"{self.service}-{self.index + 1}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "logs" / f"{self.name}.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def base_environment() -> dict[str, str]:
    """This process's environment without anything that configures Dynamo, Triton-Dynamo, OTel, etcd or NATS:
    a container starts with only its image's variables and Compose's."""
    prefixes = ("DYN_", "OTEL_", "TRITON_DYNAMO_", "ETCD_", "NATS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    return env


def prepare(
    service: str,
    spec: dict[str, Any],
    index: int,
    addresses: dict[str, list[str]],
    workdir: Path,
    secrets: dict[str, Path],
    top_secrets: dict[str, Any],
) -> Replica:
    address = addresses[service][index]
    replica = Replica(service, index, address, spec, Localizer(addresses, address), workdir)
    root = workdir / replica.name
    root.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    renders: list[tuple[Path, Path]] = []
    for volume in spec.get("volumes") or []:
        target = volume["target"]
        if volume["type"] == "bind":
            source = Path(volume["source"])
            if source.is_relative_to(SERVICES_DIR):
                host = root / "mounts" / target.lstrip("/")
                renders.append((source, host))
                paths[target] = str(host)
            else:
                paths[target] = str(source)
        elif volume["type"] == "volume":
            host = root / "volumes" / volume["source"]
            host.mkdir(parents=True, exist_ok=True)
            paths[target] = str(host)
        else:
            raise ValueError(f"{service}: mount type {volume['type']} is not handled here")
    for tmpfs in spec.get("tmpfs") or []:
        host = root / "tmpfs" / tmpfs.lstrip("/")
        host.mkdir(parents=True, exist_ok=True)
        paths[tmpfs] = str(host)
    for secret in spec.get("secrets") or []:
        target = secret.get("target") or f"/run/secrets/{secret['source']}"
        if not target.startswith("/"):
            target = f"/run/secrets/{target}"
        if secret["source"] not in secrets:
            raise ValueError(f"{service}: no test file for secret {secret['source']} ({top_secrets[secret['source']]})")
        paths[target] = str(secrets[secret["source"]])
    replica.localizer.paths = paths

    def transform(path: Path, text: str) -> str:
        if path.name == "prometheus.yml":
            text = static_prometheus_config(text, addresses)
        return replica.localizer.text(text)

    for source, host in renders:
        render_tree(source, host, transform)

    argv = [*(spec.get("entrypoint") or []), *(spec.get("command") or [])]
    if not argv:
        raise ValueError(f"{service}: compose gives no entrypoint or command: the image's default is not known here")
    replica.argv = program(replica.localizer.arguments(argv))
    env = base_environment()
    env.update({k: replica.localizer.text(str(v)) for k, v in (spec.get("environment") or {}).items() if v is not None})
    env["DYN_TCP_RPC_HOST"] = address
    replica.env = env
    check = (spec.get("healthcheck") or {}).get("test")
    if check and not (spec.get("healthcheck") or {}).get("disable"):
        if check[0] != "CMD":
            raise ValueError(f"{service}: healthcheck {check[0]} form: only CMD is run here")
        replica.healthcheck = replica.localizer.arguments(check[1:])
    return replica


def start(replica: Replica) -> None:
    replica.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(replica.log_path, "wb") as log:
        replica.proc = subprocess.Popen(
            replica.argv,
            env=replica.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=replica.workdir / replica.name,
            start_new_session=True,
        )


def stop(replica: Replica, timeout_s: float) -> int | None:
    proc = replica.proc
    if proc is None:
        return None
    if proc.poll() is None:
        # the service's stop_signal, as Compose sends it (SIGTERM unless it says otherwise)
        stop_signal = getattr(signal, replica.spec.get("stop_signal") or "SIGTERM")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, stop_signal)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # whatever the process left behind in its group (Triton's python backend stubs)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode


def flag_value(argv: list[str], flag: str) -> str:
    """The value of ``flag`` in ``argv`` (``--flag value`` or ``--flag=value``)."""
    for i, arg in enumerate(argv):
        if arg == flag:
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    raise ValueError(f"{flag} not in {argv}")


def http_ok(url: str, timeout_s: float = 3.0) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 200 <= response.status < 300, response.read().decode(errors="replace")
    except OSError as exc:
        return False, str(exc)


def run_healthcheck(replica: Replica) -> tuple[bool, str]:
    """The service's healthcheck as Compose would run it inside the container (0: healthy)."""
    argv = replica.healthcheck
    assert argv is not None
    try:
        local = program(argv)
    except FileNotFoundError:
        local = None
    if local is None and Path(argv[0]).name == "etcdctl":
        # etcdctl (Debian's etcd-client) is not installed: `endpoint health` is etcd's /health being true.
        endpoint = next(a.split("=", 1)[1] for a in argv if a.startswith("--endpoints="))
        replica.healthcheck_note = "etcdctl not installed: probed GET /health instead"
        ok, body = http_ok(f"{endpoint.split(',')[0]}/health")
        return ok and '"health":"true"' in body.replace(" ", ""), body
    if local is None:
        raise FileNotFoundError(f"{argv[0]} (healthcheck of {replica.service})")
    try:
        done = subprocess.run(local, env=replica.env, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False, "timed out"
    return done.returncode == 0, (done.stdout + done.stderr)[-500:]


def wait_healthy(replica: Replica, deadline: float) -> float:
    """Seconds until the replica's healthcheck passed; raises when the process died or time ran out."""
    started = time.monotonic()
    last = ""
    while time.monotonic() < deadline:
        if replica.proc is not None and replica.proc.poll() is not None:
            raise RuntimeError(f"{replica.name} exited with {replica.proc.returncode}:\n{replica.log_tail()}")
        ok, last = run_healthcheck(replica)
        if ok:
            return time.monotonic() - started
        time.sleep(0.5)
    raise TimeoutError(f"{replica.name} not healthy in time; last healthcheck output: {last}\n{replica.log_tail()}")


def wait_started(replica: Replica, settle_s: float = 0.5) -> None:
    time.sleep(settle_s)
    if replica.proc is not None and replica.proc.poll() is not None:
        raise RuntimeError(f"{replica.name} exited with {replica.proc.returncode}:\n{replica.log_tail()}")


# ------------------------------------------------------------------------------------------------ checks


def grpc_client(url: str, cert: Path | None = None):
    import tritonclient.grpc as grpcclient

    if cert is None:
        return grpcclient.InferenceServerClient(url)
    return grpcclient.InferenceServerClient(url, ssl=True, root_certificates=str(cert))


def infer_identity(client, values: list[int]) -> list[int]:
    import tritonclient.grpc as grpcclient

    tensor = grpcclient.InferInput("INPUT0", [len(values)], "INT32")
    tensor.set_data_from_numpy(np.array(values, dtype=np.int32))
    return client.infer("identity", [tensor], client_timeout=30).as_numpy("OUTPUT0").tolist()


def grpc_health(url: str) -> str:
    """The status gRPC's standard health check answers (as a Kubernetes grpc probe asks it), by name."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(url) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


def stream_repeat(client, values: list[int], timeout_s: float = 30.0) -> list[tuple[int, int]]:
    """(VALUE, INDEX) of every response of the decoupled model ``repeat``, over ModelStreamInfer."""
    import tritonclient.grpc as grpcclient

    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        tensor = grpcclient.InferInput("VALUES", [len(values)], "INT32")
        tensor.set_data_from_numpy(np.array(values, dtype=np.int32))
        client.async_stream_infer("repeat", [tensor], enable_empty_final_response=True)
        got = []
        while True:
            result, error = answers.get(timeout=timeout_s)
            if error is not None:
                raise RuntimeError(str(error))
            response = result.get_response()
            if response.outputs:
                got.append((int(result.as_numpy("VALUE")[0]), int(result.as_numpy("INDEX")[0])))
            final = response.parameters.get("triton_final_response")
            if final is not None and final.bool_param:
                return got
    finally:
        client.stop_stream()


def wait_model_ready(client, model: str, deadline: float) -> None:
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if client.is_model_ready(model):
                return
        except Exception as exc:
            last = exc
        time.sleep(0.5)
    raise TimeoutError(f"model {model} not ready through the frontend ({last})")


def metric_sum(text: str, name: str, labels: dict[str, str]) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``, in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, rest = line.partition("} ") if "{" in line else line.partition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(rest.split()[0])
    return total


def prometheus_query(base: str, query: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.loads(response.read())
    if body.get("status") != "success":
        raise RuntimeError(f"{query}: {body}")
    return body["data"]["result"]


# ------------------------------------------------------------------------------------------------ the run


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(args.workdir)
        self.deadline = time.monotonic() + DEADLINE_S
        self.results: dict[str, Any] = {"checks": {}, "services": {}}
        self.replicas: list[Replica] = []

    def check(self, name: str, fn: Callable[[], Any]) -> Any:
        started = time.monotonic()
        try:
            value = fn()
        except Exception as exc:
            self.results["checks"][name] = {
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=4),
                "seconds": round(time.monotonic() - started, 2),
            }
            return None
        self.results["checks"][name] = {"ok": True, "value": value, "seconds": round(time.monotonic() - started, 2)}
        return value

    def replica(self, name: str) -> Replica:
        return next(r for r in self.replicas if r.name == name)

    def main(self) -> None:
        core = json.loads(Path(self.args.config).read_text())
        observed = json.loads(Path(self.args.prometheus_config).read_text())
        addresses = service_addresses(observed)
        self.results["addresses"] = {k: v for k, v in addresses.items() if k in ADDRESSES}
        secrets = self.make_secrets(addresses["tls-proxy"][0])
        for service in CORE_SERVICES:
            replicas = WORKER_REPLICAS if service == "worker" else 1
            for index in range(replicas):
                self.replicas.append(
                    prepare(
                        service,
                        core["services"][service],
                        index,
                        addresses,
                        self.workdir,
                        secrets,
                        core.get("secrets") or {},
                    )
                )
        self.replicas.append(
            prepare(
                "prometheus",
                observed["services"]["prometheus"],
                0,
                addresses,
                self.workdir,
                secrets,
                observed.get("secrets") or {},
            )
        )
        for r in self.replicas:
            self.results["services"][r.name] = {"argv": r.argv, "address": r.address, "healthcheck": r.healthcheck}
        try:
            self.bring_up()
            if all(c["ok"] for c in self.results["checks"].values()):
                self.run_checks(addresses)
        finally:
            self.tear_down()

    def make_secrets(self, proxy_address: str) -> dict[str, Path]:
        """The TLS proxy's certificate and key, made by services/nghttpx/make-dev-cert.sh as a user would (with the
        proxy's address here as an extra name)."""
        tls_dir = self.workdir / "secrets" / "tls"
        done = subprocess.run(
            ["bash", str(SERVICES_DIR / "nghttpx" / "make-dev-cert.sh"), proxy_address],
            env={**os.environ, "TLS_DIR": str(tls_dir)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"make-dev-cert.sh failed: {done.stderr}")
        return {"tls_certificate": tls_dir / "server.crt", "tls_private_key": tls_dir / "server.key"}

    def start_and_wait(self, names: list[str]) -> None:
        group = [r for r in self.replicas if r.service in names]
        for r in group:
            for dependency, rule in (r.spec.get("depends_on") or {}).items():
                if dependency not in CORE_SERVICES:
                    continue
                for dep in (d for d in self.replicas if d.service == dependency):
                    if dep.proc is None:
                        raise RuntimeError(f"{r.name} depends on {dep.name}, not started yet: order of bring_up")
                    if rule.get("condition") == "service_healthy" and dep.name not in self.results["healthy"]:
                        raise RuntimeError(f"{r.name} waits for {dep.name} to be healthy: order of bring_up")
            start(r)
        for r in group:
            if r.healthcheck:
                seconds = wait_healthy(r, self.deadline)
                self.results["healthy"][r.name] = round(seconds, 2)
                self.results["services"][r.name]["healthcheck_note"] = r.healthcheck_note
            else:
                wait_started(r)

    def bring_up(self) -> None:
        self.results["healthy"] = {}
        started = time.monotonic()
        # Compose's order: etcd and nats healthy, then the frontend and the workers, then the proxy.
        self.check("etcd_and_nats_healthy", lambda: self.start_and_wait(["etcd", "nats"]))
        self.check("prometheus_healthy", lambda: self.start_and_wait(["prometheus"]))
        self.check("frontend_and_workers_healthy", lambda: self.start_and_wait(["frontend", "worker"]))
        self.check("control_healthy", lambda: self.start_and_wait(["control"]))
        self.check("tls_proxy_healthy", lambda: self.start_and_wait(["tls-proxy"]))
        self.check("locust_started", lambda: self.start_and_wait(["locust"]))
        self.check("locust_worker_started", lambda: self.start_and_wait(["locust-worker"]))
        self.results["bring_up_s"] = round(time.monotonic() - started, 2)

    def run_checks(self, addresses: dict[str, list[str]]) -> None:
        # the container ports, as the compose file gives them
        grpc_port = flag_value(self.replica("frontend").spec["command"], "--http-port")
        metrics_port = flag_value(self.replica("worker-1").spec["command"], "--metrics-port")
        proxy_ports = {p["published"]: p["target"] for p in self.replica("tls-proxy").spec["ports"]}
        proxy_port = next(t for t in proxy_ports.values() if t == 8443)
        plaintext_port = next(t for t in proxy_ports.values() if t != 8443)
        prometheus_port = flag_value(self.replica("prometheus").spec["command"], "--web.listen-address").rsplit(":")[-1]
        frontend = f"{addresses['frontend'][0]}:{grpc_port}"
        proxy = f"{addresses['tls-proxy'][0]}:{proxy_port}"
        cert = self.workdir / "secrets" / "tls" / "server.crt"
        client = grpc_client(frontend)

        def identity() -> list[int]:
            wait_model_ready(client, "identity", self.deadline)
            return infer_identity(client, [1, 2, 3])

        self.check("identity", identity)

        def repeat() -> list[tuple[int, int]]:
            wait_model_ready(client, "repeat", self.deadline)
            return stream_repeat(client, [5, 6, 7])

        self.check("repeat_stream", repeat)

        def large_request() -> int:
            # 3.2 MB of tensor data, under the frontend's 4 MiB message limit, across the request plane (TCP; over
            # NATS it needs nats-server's max_payload raised from its 1 MB default, as services/nats/ does)
            values = list(range(800_000))
            answer = infer_identity(client, values)
            if answer != values:
                raise AssertionError("the large tensor came back different")
            return len(answer)

        self.check("large_request", large_request)

        def both_workers_serve() -> dict[str, float]:
            # round-robin: ten more requests reach both replicas; each counts its own on its metrics port
            for i in range(10):
                infer_identity(client, [i])
            served = {}
            for r in (r for r in self.replicas if r.service == "worker"):
                ok, text = http_ok(f"http://{r.address}:{metrics_port}/metrics")
                if not ok:
                    raise RuntimeError(f"{r.name}: metrics port: {text}")
                served[r.name] = metric_sum(text, "nv_inference_request_success", {"model": "identity"})
                if not served[r.name]:
                    lines = [line for line in text.splitlines() if "nv_inference_request_success" in line]
                    raise AssertionError(f"{r.name} served no identity request: {lines[:6]}")
            return served

        self.check("both_workers_serve", both_workers_serve)
        client.close()

        def through_tls() -> dict[str, Any]:
            tls = grpc_client(proxy, cert)
            try:
                return {"identity": infer_identity(tls, [4, 5, 6]), "repeat": stream_repeat(tls, [8, 9])}
            finally:
                tls.close()

        self.check("tls_proxy", through_tls)

        def every_rpc_on_one_port() -> dict[str, Any]:
            """Through the proxy's plaintext port: inference to the frontend, the rest to the control service, and
            a model unloaded and loaded again on both workers; over TLS, the same routing."""
            plain_url = f"{addresses['tls-proxy'][0]}:{plaintext_port}"
            plain = grpc_client(plain_url)
            tls = grpc_client(proxy, cert)
            try:
                seen: dict[str, Any] = {"identity": infer_identity(plain, [7]), "health": grpc_health(plain_url)}
                seen["server"] = plain.get_server_metadata(as_json=True)["name"].split("/")[0]
                seen["tls_server"] = tls.get_server_metadata(as_json=True)["name"].split("/")[0]
                plain.unload_model("string_ops")
                index = {m["name"]: m for m in plain.get_model_repository_index(as_json=True)["models"]}
                seen["unloaded"] = [index["string_ops"].get("state"), index["string_ops"].get("reason")]
                seen["ready_after_unload"] = plain.is_model_ready("string_ops")
                tls.load_model("string_ops")
                seen["ready_after_load"] = plain.is_model_ready("string_ops")
                stats = tls.get_inference_statistics("identity", as_json=True)["model_stats"][0]
                seen["identity_successes"] = int(stats["inference_stats"]["success"]["count"])
                return seen
            finally:
                plain.close()
                tls.close()

        self.check("one_port", every_rpc_on_one_port)

        def plaintext_to_tls_port() -> str:
            # the port is open (TLS answered above), yet a plaintext gRPC client gets no answer
            with socket.create_connection((addresses["tls-proxy"][0], int(proxy_port)), timeout=5):
                pass
            plain = grpc_client(proxy)
            try:
                infer_identity(plain, [1])
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                if "Connection refused" in message:
                    raise AssertionError(f"the TLS port is not listening: {message}") from None
                return message
            finally:
                plain.close()
            raise AssertionError("a plaintext gRPC request to the TLS port was answered")

        self.check("tls_port_refuses_plaintext", plaintext_to_tls_port)
        self.check("locust_swarm", lambda: self.locust_swarm(addresses))

        def prometheus() -> dict[str, Any]:
            base = f"http://{addresses['prometheus'][0]}:{prometheus_port}"
            metrics = flag_value(self.replica("locust").spec["command"], "--client-metrics-port")
            wanted = {
                "frontend": {f"{addresses['frontend'][0]}:8002"},
                "worker": {f"{a}:8200" for a in addresses["worker"]},
                "etcd": {f"{addresses['etcd'][0]}:2379"},
                # the master (locust-master); locust-worker's target is not checked: the load generator serves its
                # metrics on every address, so here, one machine, the worker's moves to the next port
                "locust": {f"{addresses['locust'][0]}:{metrics}"},
            }
            up: dict[str, set[str]] = {}
            requests = 0.0
            while time.monotonic() < self.deadline:
                up = {
                    job: {s["metric"]["instance"] for s in prometheus_query(base, f'up{{job="{job}"}} == 1')}
                    for job in wanted
                }
                served = prometheus_query(base, 'sum(nv_inference_request_success{job="worker",model="identity"})')
                requests = float(served[0]["value"][1]) if served else 0.0
                if all(want <= up[job] for job, want in wanted.items()) and requests > 0:
                    return {"up": {job: sorted(up[job]) for job in wanted}, "identity_requests": requests}
                time.sleep(1)
            raise TimeoutError(f"Prometheus did not see every target up: {up}, identity requests {requests}")

        self.check("prometheus", prometheus)

        def proxy_stops_gracefully() -> dict[str, Any]:
            """Stopped as Compose stops it (its stop_signal) while a call is in flight through it: the call is
            answered, then the proxy exits. The last check: the proxy is gone after it."""
            import tritonclient.grpc as grpcclient

            plain = grpc_client(f"{addresses['tls-proxy'][0]}:{plaintext_port}")
            wait_model_ready(plain, "slow", self.deadline)
            values = np.arange(4, dtype=np.float32)
            inputs = [grpcclient.InferInput("INPUT0", [4], "FP32"), grpcclient.InferInput("DELAY_MS", [1], "INT32")]
            inputs[0].set_data_from_numpy(values)
            inputs[1].set_data_from_numpy(np.array([3000], dtype=np.int32))
            answer: queue.Queue = queue.Queue()

            def call() -> None:
                try:
                    answer.put(plain.infer("slow", inputs, client_timeout=30).as_numpy("OUTPUT0").tolist())
                except Exception as exc:  # the check reports it
                    answer.put(f"{type(exc).__name__}: {exc}")

            caller = threading.Thread(target=call)
            caller.start()
            # in flight by then, 2 s from its answer (sent within milliseconds; a second leaves room on a busy
            # machine: a call sent after the signal is refused, and would read as a failed drain)
            time.sleep(1.0)
            started = time.monotonic()
            code = stop(self.replica("tls-proxy"), timeout_s=20)
            stopped_after_s = time.monotonic() - started
            caller.join()
            got = answer.get()
            plain.close()
            if got != values.tolist():
                raise AssertionError(f"the call in flight got {got!r}")
            return {"answer": got, "exit_code": code, "stopped_after_s": round(stopped_after_s, 2)}

        self.check("proxy_stops_gracefully", proxy_stops_gracefully)

    def locust_swarm(self, addresses: dict[str, list[str]]) -> dict[str, Any]:
        """Through Locust's web UI, as a user would: start 2 users, wait for requests, stop."""
        spec = self.replica("locust").spec
        base = f"http://{addresses['locust'][0]}:{flag_value(spec['command'], '--web-port')}"
        while True:
            ok, body = http_ok(f"{base}/stats/requests")
            if ok and json.loads(body).get("workers"):
                break
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"Locust's web UI or its worker did not come up: {body[:300]}")
            time.sleep(0.5)
        form = urllib.parse.urlencode({"user_count": 2, "spawn_rate": 2}).encode()
        with urllib.request.urlopen(f"{base}/swarm", data=form, timeout=10) as response:
            started = json.loads(response.read())
        if not started.get("success"):
            raise RuntimeError(f"swarm refused: {started}")
        try:
            while True:
                stats = json.loads(http_ok(f"{base}/stats/requests")[1])
                total = next(s for s in stats["stats"] if s["name"] == "Aggregated")
                if total["num_requests"] >= 20:
                    break
                if time.monotonic() > self.deadline:
                    raise TimeoutError(f"Locust sent too few requests: {total}")
                time.sleep(0.5)
        finally:
            with urllib.request.urlopen(f"{base}/stop", data=b"", timeout=10) as response:
                response.read()
        metrics_port = flag_value(spec["command"], "--client-metrics-port")
        ok, text = http_ok(f"http://{addresses['locust'][0]}:{metrics_port}/metrics")
        if not ok or "triton_dynamo_client" not in text:
            raise RuntimeError(f"no client metrics on the master: {text[:300]}")
        return {
            "requests": total["num_requests"],
            "failures": total["num_failures"],
            "workers": len(stats["workers"]),
        }

    def tear_down(self) -> None:
        codes, seconds = {}, {}
        # Compose stops dependents first: the proxy, the workers (they drain), the frontend, then the rest.
        order = ["locust-worker", "locust", "tls-proxy", "prometheus", "control", "worker", "frontend", "nats", "etcd"]
        for service in order:
            for r in (r for r in self.replicas if r.service == service):
                started = time.monotonic()
                codes[r.name] = stop(r, timeout_s=25 if service == "worker" else 10)
                seconds[r.name] = round(time.monotonic() - started, 2)
        self.results["exit_codes"] = codes
        self.results["stop_s"] = seconds
        self.results["logs"] = {r.name: r.log_tail(60) for r in self.replicas}


def loopback_up() -> None:
    """In a new network namespace the loopback is down; bring it up (a no-op where it is up)."""
    ip = shutil.which("ip") or "/usr/sbin/ip"
    if os.path.exists(ip):
        subprocess.run([ip, "link", "set", "lo", "up"], check=False, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--prometheus-config", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--netns", action="store_true", help="running in a new network namespace: bring lo up")
    args = parser.parse_args(argv)
    if args.netns:
        loopback_up()
    run = Run(args)
    try:
        run.main()
    except Exception:
        run.results["error"] = traceback.format_exc()
    Path(args.out).write_text(json.dumps(run.results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
