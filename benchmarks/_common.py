# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of the benchmark scripts: percentiles, free ports, tables, the Triton binary of the wheel."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODEL_REPO = ROOT / "model_repo"
RESULTS = ROOT / "benchmarks" / "results"


def percentiles_us(samples_s: list[float]) -> dict[str, float]:
    """p50, p90 and p99 of latencies given in seconds, in microseconds."""
    arr = np.asarray(samples_s) * 1e6
    return {f"p{q}_us": float(np.percentile(arr, q)) for q in (50, 90, 99)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"port {port} did not open within {timeout_s} s")


def native_identity_repo(directory: Path) -> Path:
    """A model repository whose identity_fp32 runs in the native backend of ``native_identity/identity.c``.

    The model's config is the sample repository's with only its backend changed, and the backend library sits in
    the model's directory, where Triton looks for it first: no backend directory to install into.
    """
    from triton_dynamo.triton._build_shim import compile_shim

    model_dir = directory / "identity_fp32"
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    config = (MODEL_REPO / "identity_fp32" / "config.pbtxt").read_text()
    if 'backend: "python"' not in config:
        raise RuntimeError("identity_fp32's config no longer names the python backend: update native_identity_repo")
    (model_dir / "config.pbtxt").write_text(config.replace('backend: "python"', 'backend: "td_identity"'))
    compile_shim(model_dir / "libtriton_td_identity.so", source=ROOT / "benchmarks" / "native_identity" / "identity.c")
    return directory


def start_triton_binary(models: list[str], grpc_port: int, repository: Path = MODEL_REPO) -> subprocess.Popen:
    """The wheel's own ``tritonserver`` on a repository (the sample models by default), gRPC only, on loopback."""
    from triton_dynamo.triton.locate import find_installation, prepare_child_environment

    install = find_installation()
    prepare_child_environment(install)
    binary = install.library.parent.parent / "pytriton" / "tritonserver" / "bin" / "tritonserver"
    if not binary.exists():
        binary = Path("/opt/tritonserver/bin/tritonserver")
    args = [
        str(binary),
        "--model-repository",
        str(repository),
        "--backend-directory",
        str(install.backend_directory),
        "--model-control-mode",
        "explicit",
        "--allow-http",
        "false",
        "--allow-metrics",
        "false",
        "--grpc-address",
        "127.0.0.1",
        "--grpc-port",
        str(grpc_port),
        "--log-info",
        "false",
    ]
    for model in models:
        args += ["--load-model", model]
    env = dict(os.environ)
    if install.dependency_directory is not None:
        env["LD_LIBRARY_PATH"] = f"{install.dependency_directory}:{env.get('LD_LIBRARY_PATH', '')}"
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(grpc_port, proc=proc)
    return proc


def stop_processes(procs: list[subprocess.Popen], timeout_s: float = 30.0) -> None:
    """SIGTERM to all, then SIGKILL to any still running after ``timeout_s``."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()


def write_results(name: str, results: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    results = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, **results}
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def print_table(headers: list[str], rows: list[list]) -> None:
    widths = [max(len(str(h)), *(len(_fmt(r[i])) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=False)))
    for row in rows:
        print("  ".join(_fmt(v).ljust(w) for v, w in zip(row, widths, strict=False)))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"  # ratios need two decimals
    return str(value)


class OtlpSink:
    """An OTLP/gRPC endpoint that accepts spans and log records (Dynamo exports both) and drops them: what a
    collector costs the sender, no more. It runs in the benchmark's process, so it leaves each export undecoded
    (an empty message is a valid answer to both) to take as little from the load generator as it can."""

    SERVICES = (
        "opentelemetry.proto.collector.trace.v1.TraceService",
        "opentelemetry.proto.collector.logs.v1.LogsService",
    )

    def __init__(self) -> None:
        from concurrent import futures

        import grpc

        def accept(request: bytes, context) -> bytes:
            return b""

        handler = grpc.unary_unary_rpc_method_handler(accept)  # no (de)serializers: the bytes as they came
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        for service in self.SERVICES:
            self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"Export": handler}),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"
