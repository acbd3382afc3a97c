# SPDX-License-Identifier: Apache-2.0
"""One address for every Triton gRPC RPC: a router in front of Dynamo's frontend and the control service, routing
each call by its method path (``/inference.GRPCInferenceService/<Method>``). Inference goes to the frontend through the
router alone, with no Python process in its path; the RPCs the frontend does not answer go to the control service.

Two routers, ``--proxy auto`` taking the first one found:
- grpc-router (services/grpc-router, ours, built by scripts/build-router.sh): it passes the frontend's side on frame
  by frame as read, HTTP/2 DATA untouched and written from its read buffer, and re-encodes only header blocks. At
  150528 FP32 elements per call its p50 was 1.030 of the frontend's own port where nghttpx's was 1.056, in the same
  paired run on 2 cores (README, "What the one port costs").
- nghttpx (nghttp2's HTTP/2 proxy, Debian's nghttp2-proxy), which the Compose stack runs for TLS too. Against nginx,
  measured on 2 cores at 16 FP32 elements and concurrency 32: nginx opens one connection to the frontend per call in
  flight, sends each request to it in two writes and each response to the client in three (headers, data, trailers);
  nghttpx carries every call on one connection to the frontend and writes each message in one. Per call, nginx cost
  about 65 us of its own CPU and 60 to 80 us more in the client, and throughput was 0.80 of the frontend's own port;
  nghttpx cost 34 to 39 us and no more elsewhere (within 12 us), and throughput was 0.93 to 0.97.

Example:
    >>> "backend=127.0.0.1,8003;/inference.GRPCInferenceService/ServerMetadata:" in render_config(
    ...     "127.0.0.1", 8001, 8011, 8003)
    True
    >>> grpc_router_command("grpc-router", "127.0.0.1", 8001, 8011, 8003)[:7]
    ['grpc-router', '--listen', '127.0.0.1:8001', '--frontend', '127.0.0.1:8011', '--control', '127.0.0.1:8003']
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# The methods of inference.GRPCInferenceService that the control service answers; every other one goes to the
# frontend (inference, server health). Model metadata, config and readiness are Triton's own answers from the workers:
# the frontend's ignore the version and keep a model's first config after a reload.
CONTROL_METHODS = (
    "ServerMetadata",
    "ModelMetadata",
    "ModelConfig",
    "ModelReady",
    "ModelStatistics",
    "RepositoryIndex",
    "RepositoryModelLoad",
    "RepositoryModelUnload",
    "TraceSetting",
    "LogSettings",
    "SystemSharedMemoryStatus",
    "SystemSharedMemoryRegister",
    "SystemSharedMemoryUnregister",
    "CudaSharedMemoryStatus",
    "CudaSharedMemoryRegister",
    "CudaSharedMemoryUnregister",
)


# gRPC's standard health check, which Triton serves on its gRPC port beside its own service (Kubernetes' gRPC probes
# and load balancers ask it); the frontend does not serve it.
HEALTH_CHECK_PATH = "/grpc.health.v1.Health/Check"

# The method paths that go to the control service.
CONTROL_PATHS = (*(f"/inference.GRPCInferenceService/{method}" for method in CONTROL_METHODS), HEALTH_CHECK_PATH)


# What a client gets from the RPCs that are not simply served: the reason is in each answer.
RPC_NOTES = {
    "ModelInfer": "no Python process in its path",
    "ModelStreamInfer": "no Python process in its path",
    "ModelReady": "Triton's answer per version; the frontend's own port says ready for any version",
    "ModelMetadata": "Triton's answer per version; the frontend's own port keeps what it saw first",
    "ModelConfig": "Triton's answer per version; the frontend's own port keeps a model's first config",
    "ModelStatistics": "summed over every worker",
    "RepositoryIndex": "merged: a model ready on some workers says which are not, and why",
    "RepositoryModelLoad": "on every worker; kept for workers that start later; no file: overrides",
    "RepositoryModelUnload": "on every worker, after the frontend stops routing the model",
    "TraceSetting": "which requests carry Triton's timestamps (spans, per-phase metrics)",
    "LogSettings": "Triton's logger in every worker, at once",
    **{
        f"{kind}SharedMemory{op}": "refused (UNIMPLEMENTED): the workers run in other processes and hosts"
        for kind in ("System", "Cuda")
        for op in ("Status", "Register", "Unregister")
    },
}


# nghttpx's settings, here and in services/nghttpx/nghttpx.conf (tests/compose checks that they agree). Why each:
# - one thread (nghttpx logs a warning that it sets workers to 1; that is this): with its default, a separate worker
#   thread, 16-element throughput was 0.82-0.85 of the frontend's port in two exploratory runs, with one 0.92-0.95;
# - no Via header, and the frontend's own server header;
# - up to 1024 calls in flight per client connection (HTTP/2's usual 100 would make a busy client queue);
# - 1 MiB windows per stream (16 MiB per connection), so that a large tensor crosses in few round trips: with
#   HTTP/2's default 64 KiB, p50 at 150528 FP32 elements was 1.15 of the frontend's own port, with these 1.04;
# - 300 s without a byte from the frontend before nghttpx gives up on it: streams of a decoupled model may stay
#   open, and quiet, for long.
# The README's "What the one port costs" has the measurements.
SETTINGS = """single-thread=yes
no-via=yes
no-server-rewrite=yes
no-ocsp=yes
frontend-http2-max-concurrent-streams=1024
frontend-http2-window-size=1048576
frontend-http2-connection-window-size=16777216
backend-http2-window-size=1048576
backend-http2-connection-window-size=16777216
backend-read-timeout=300s
backend-write-timeout=300s"""


def control_patterns() -> str:
    """The method paths that go to the control service, in nghttpx's form (exact paths joined by ``:``)."""
    return ":".join(CONTROL_PATHS)


def rpc_routes() -> list[tuple[str, str, str]]:
    """Every RPC of ``inference.GRPCInferenceService`` (from Triton's own service descriptor): (method, who answers
    it, note), in the descriptor's order; then gRPC's health check, which Triton serves too.

    Example:
        >>> ("ModelInfer", "frontend", "no Python process in its path") in rpc_routes()
        True
    """
    from tritonclient.grpc import service_pb2

    service = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    routes = [
        (m.name, "control service" if m.name in CONTROL_METHODS else "frontend", RPC_NOTES.get(m.name, ""))
        for m in service.methods
    ]
    health_note = "SERVING while the stack is ready (ServerReady on the same port), as Triton answers"
    return [*routes, (HEALTH_CHECK_PATH.lstrip("/"), "control service", health_note)]


# The one-port routers, in the order ``--proxy auto`` prefers them, with how to get each.
ROUTERS = {
    "grpc-router": "build it: bash scripts/build-router.sh (needs gcc and libnghttp2-dev)",
    "nghttpx": "install it (Debian: apt-get install nghttp2-proxy)",
}

# Where scripts/build-router.sh puts grpc-router in a checkout of this repository.
BUILT_ROUTER = Path(__file__).resolve().parents[3] / "build" / "tools" / "grpc-router"


def find_grpc_router() -> str | None:
    """``grpc-router``: $TRITON_DYNAMO_GRPC_ROUTER, else on PATH, else where scripts/build-router.sh builds it; None
    when there is none."""
    named = os.environ.get("TRITON_DYNAMO_GRPC_ROUTER")
    for candidate in (named, shutil.which("grpc-router"), str(BUILT_ROUTER)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def grpc_router_command(binary: str, host: str, port: int, frontend_port: int, control_port: int) -> list[str]:
    """grpc-router on ``host:port``: the control service's method paths to ``control_port``, every other call to the
    frontend on ``frontend_port`` (both on loopback)."""
    argv = [binary, "--listen", f"{host}:{port}"]
    argv += ["--frontend", f"127.0.0.1:{frontend_port}", "--control", f"127.0.0.1:{control_port}"]
    for path in CONTROL_PATHS:
        argv += ["--control-path", path]
    return argv


def find_nghttpx() -> str | None:
    """The ``nghttpx`` binary on this machine (PATH, else Debian's /usr/sbin), or None when not installed."""
    found = shutil.which("nghttpx")
    if found is None and os.access("/usr/sbin/nghttpx", os.X_OK):
        found = "/usr/sbin/nghttpx"
    return found


def render_config(host: str, port: int, frontend_port: int, control_port: int) -> str:
    """nghttpx's configuration: plaintext gRPC (HTTP/2) on ``host:port``, passed on to loopback ports."""
    return f"""# Written by triton-dynamo up: every Triton gRPC RPC on one port.
frontend={host},{port};no-tls
# Longest match wins: the control service's exact method paths, everything else (inference, live/ready) to the frontend.
backend=127.0.0.1,{control_port};{control_patterns()};proto=h2
backend=127.0.0.1,{frontend_port};/;proto=h2
errorlog-file=/dev/stderr
{SETTINGS}
"""


def nghttpx_command(binary: str, config_path: Path) -> list[str]:
    # Without --conf nghttpx also reads /etc/nghttpx/nghttpx.conf, which the Debian package installs.
    return [binary, f"--conf={config_path}"]
