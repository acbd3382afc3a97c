# SPDX-License-Identifier: Apache-2.0
"""One address for every Triton gRPC RPC: nginx in front of Dynamo's frontend and the control service, routing each
call by its method path (``/inference.GRPCInferenceService/<Method>``). Inference goes to the frontend through nginx
alone, with no Python process in its path; the RPCs the frontend does not answer go to the control service.

Example:
    >>> "location ~ ^/inference\\\\.GRPCInferenceService/(ServerMetadata|" in render_config(
    ...     "127.0.0.1", 8001, 8011, 8003, Path("/tmp/x"))
    True
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


# nginx's defaults move a request body in 16 KiB windows and a response in 8 KiB buffers: a large tensor then waits
# on dozens of window updates (README, "What the one port costs", has the measured difference). Each request in
# flight may hold up to 512 KiB in nginx. services/nginx/nginx.conf has the same lines.
BUFFERS = """client_body_buffer_size 256k;
http2_body_preread_size 256k;
grpc_buffer_size 256k;
http2_chunk_size 64k;"""


# glibc's malloc settings for nginx (Debian's nginx links glibc). With its defaults nginx's heap grew and shrank
# with every request (three brk calls each: the buffers above come and go per request, and glibc gave the heap's top
# back each time). With no trimming and a larger step, nginx makes no brk call per request, and in three paired runs
# at 16 elements its p50 went from 1.15 of the frontend's to 1.13 (about 25 us); throughput did not change beyond
# the noise of those runs (+0.06, +0.08, -0.04). Setting any of these switches off glibc's adaptive mmap threshold,
# so the third keeps the 256 KiB buffers on the heap. At most 64 MiB of freed memory stays with nginx.
NGINX_ENVIRONMENT = {
    "MALLOC_TRIM_THRESHOLD_": str(64 << 20),
    "MALLOC_TOP_PAD_": str(16 << 20),
    "MALLOC_MMAP_THRESHOLD_": str(4 << 20),
}


def rpc_routes() -> list[tuple[str, str, str]]:
    """Every RPC of ``inference.GRPCInferenceService`` (from Triton's own service descriptor): (method, who answers
    it, note), in the descriptor's order.

    Example:
        >>> ("ModelInfer", "frontend", "no Python process in its path") in rpc_routes()
        True
    """
    from tritonclient.grpc import service_pb2

    service = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    return [
        (m.name, "control service" if m.name in CONTROL_METHODS else "frontend", RPC_NOTES.get(m.name, ""))
        for m in service.methods
    ]


def find_nginx() -> str | None:
    """The ``nginx`` binary on this machine (PATH, else Debian's /usr/sbin), or None when not installed."""
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    return found


def render_config(host: str, port: int, frontend_port: int, control_port: int, state_dir: Path) -> str:
    """nginx's configuration: plaintext gRPC (HTTP/2) on ``host:port``, passed on to loopback ports."""
    temp = state_dir / "nginx"
    methods = "|".join(CONTROL_METHODS)
    buffers = "\n".join(" " * 8 + line for line in BUFFERS.splitlines())
    return f"""# Written by triton-dynamo up: every Triton gRPC RPC on one port.
worker_processes 1;
pid {temp}/nginx.pid;
error_log stderr warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    http2_recv_buffer_size 1m;

    # Connections to the frontend are kept open and reused: a new one per call cost the handshake each time.
    upstream frontend {{
        server 127.0.0.1:{frontend_port};
        keepalive 64;
    }}
    upstream control {{
        server 127.0.0.1:{control_port};
        keepalive 8;
    }}

    server {{
        # Debian 12's nginx (1.22) knows only this form; `http2 on;` needs 1.25.1.
        listen {host}:{port} http2;
        # The frontend refuses messages over 4 MiB itself (OUT_OF_RANGE); let those reach it and answer.
        client_max_body_size 16m;
{buffers}
        # streams of a decoupled model may stay open for long
        grpc_read_timeout 300s;
        grpc_send_timeout 300s;

        location ~ ^/inference\\.GRPCInferenceService/({methods})$ {{
            grpc_pass grpc://control;
        }}
        location / {{
            grpc_pass grpc://frontend;
        }}
    }}
}}
"""


def nginx_command(binary: str, config_path: Path) -> list[str]:
    return [binary, "-c", str(config_path), "-e", "stderr", "-g", "daemon off;"]
