# SPDX-License-Identifier: Apache-2.0
"""Through the stack against Dynamo's own floor and Triton's own gRPC endpoint, measured in one run.

Paths, each serving identity_fp32 (FP32, dims [-1]), by default in a native identity backend built from
benchmarks/native_identity/identity.c (`--backend python`: the sample repository's python-backend model, whose stub
process costs ~200 us per request of IPC on its own):
  stack        Dynamo frontend + one triton-dynamo worker (Triton in-process)      -- `triton-dynamo up --workers 1`
  floor        Dynamo frontend + one worker that echoes its input without Triton  -- Dynamo's own cost (on the same
               response path as ours, Dynamo's push egress; `--floor-egress pull` for its default handler shape)
  triton_grpc  the wheel's tritonserver binary, its own gRPC endpoint
For 16 and 150528 elements: p50/p90/p99 of sequential requests (concurrency 1) and throughput with p50/p99 at
concurrency 32 (tritonclient aio). Sequential requests take turns between the paths request by request; the
concurrent parts (--rounds, 2 by default) are interleaved across paths, in a new random order each round (--seed), so
that drift in machine load and a path's place in the round hit all alike.
Writes benchmarks/results/stack.json and prints the ratios to the floor. With --telemetry-variants it also prints each
telemetry variant's throughput against the stack without telemetry, pooled and as the median of per-round ratios (each
round's paths ran within seconds of each other, so that ratio is paired).

    uv run python benchmarks/stack.py [--requests 1000] [--seconds 5] [--backend native|python]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio

from _common import (
    MODEL_REPO,
    ROOT,
    OtlpSink,
    native_identity_repo,
    percentiles_us,
    print_table,
    start_triton_binary,
    stop_processes,
    wait_for_port,
    write_results,
)
from triton_dynamo.stack.launcher import log_environment

MODEL = "identity_fp32"
SIZES = (16, 150528)
PATHS = ("stack", "floor", "triton_grpc")


def ports(count: int) -> list[int]:
    # Dynamo reads DYN_SYSTEM_PORT as a signed 16-bit number: keep every port below 32768.
    import random
    import socket

    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            if port not in chosen and s.connect_ex(("127.0.0.1", port)) != 0:
                chosen.append(port)
    return chosen


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    client = grpcclient.InferenceServerClient(url)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:4]} exited with {proc.returncode}")
        try:
            if client.is_model_ready(MODEL):
                return
        except Exception:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{MODEL} not ready at {url}")


def start_stack(
    workdir: Path,
    name: str = "stack",
    extra_args: tuple[str, ...] = (),
    extra_env: dict | None = None,
    repository: Path = MODEL_REPO,
) -> tuple[list[subprocess.Popen], str]:
    grpc_port, metrics_port, worker_port, worker_metrics_port, control_port = ports(5)
    env = {**os.environ, "DYN_TCP_RPC_HOST": "127.0.0.1", **(extra_env or {})}
    with open(workdir / f"{name}.log", "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "triton_dynamo",
                "up",
                "--workers",
                "1",
                "--model-name",
                MODEL,
                "--model-repository",
                str(repository),
                "--grpc-port",
                str(grpc_port),
                "--metrics-port",
                str(metrics_port),
                "--control-port",
                str(control_port),
                "--worker-system-port",
                str(worker_port),
                "--worker-metrics-port",
                str(worker_metrics_port),
                "--state-dir",
                str(workdir / name),
                # the frontend's own port: this benchmark measures the frontend; benchmarks/one_port.py the proxy
                "--proxy",
                "none",
                *extra_args,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"127.0.0.1:{grpc_port}"
    wait_ready(url, proc)
    return [proc], url


def start_floor(
    workdir: Path, repository: Path = MODEL_REPO, egress: str = "push"
) -> tuple[list[subprocess.Popen], str]:
    grpc_port, metrics_port = ports(2)
    env = {
        **os.environ,
        "DYN_TCP_RPC_HOST": "127.0.0.1",
        "DYN_FILE_KV": str(workdir / "floor-discovery"),
        "DYN_RUNTIME_NUM_WORKER_THREADS": os.environ.get("DYN_RUNTIME_NUM_WORKER_THREADS", "4"),
        # what `triton-dynamo up` gives its processes: the floor logs what the stack logs
        **log_environment(),
    }
    with open(workdir / "floor-frontend.log", "wb") as log:
        frontend = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dynamo.frontend",
                "--kserve-grpc-server",
                "--http-port",
                str(grpc_port),
                "--grpc-metrics-port",
                str(metrics_port),
                "--discovery-backend",
                "file",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    with open(workdir / "floor-worker.log", "wb") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "echo_worker.py"),
                "--model",
                MODEL,
                "--output",
                "OUTPUT0",
                "--config",
                str(repository / MODEL / "config.pbtxt"),
                "--egress",
                egress,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"127.0.0.1:{grpc_port}"
    wait_ready(url, worker)
    return [frontend, worker], url


def find_process(procs: list[subprocess.Popen], role: str) -> psutil.Process:
    """A path's ``worker`` (the one `up` started, or the echo worker) or its Dynamo ``frontend``."""
    for proc in procs:
        for candidate in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
            cmdline = candidate.cmdline()
            if role == "frontend" and "dynamo.frontend" in cmdline:
                return candidate
            if role == "worker" and ("worker" in cmdline or any(arg.endswith("echo_worker.py") for arg in cmdline)):
                return candidate
    raise RuntimeError(f"no {role} process found")


def cpu_s(process: psutil.Process) -> float:
    """User plus system CPU seconds of a worker and its children (Triton's python backend stubs among them)."""
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        times = member.cpu_times()
        total += times.user + times.system
    return total


def sequential(url: str, data: np.ndarray, n: int) -> list[float]:
    client = grpcclient.InferenceServerClient(url)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        item = grpcclient.InferInput("INPUT0", [data.size], "FP32")
        item.set_data_from_numpy(data)
        out = client.infer(MODEL, [item]).as_numpy("OUTPUT0")
        samples.append(time.perf_counter() - t0)
    if not np.array_equal(out, data):
        raise AssertionError(f"{url} returned a wrong answer")
    client.close()
    return samples


def alternating(urls: dict[str, str], data: np.ndarray, requests: int, rng: random.Random) -> dict[str, list[float]]:
    """``requests`` sequential requests per path, the paths taking turns request by request in a random order, so
    that what else this shared machine does meanwhile falls on each path alike."""
    clients = {path: grpcclient.InferenceServerClient(url) for path, url in urls.items()}
    samples: dict[str, list[float]] = {path: [] for path in urls}
    order = list(urls)
    try:
        for _ in range(requests):
            rng.shuffle(order)
            for path in order:
                item = grpcclient.InferInput("INPUT0", [data.size], "FP32")
                item.set_data_from_numpy(data)
                started = time.perf_counter()
                answer = clients[path].infer(MODEL, [item]).as_numpy("OUTPUT0")
                samples[path].append(time.perf_counter() - started)
                if not np.array_equal(answer, data):  # outside the timing; every path, every answer
                    raise AssertionError(f"{urls[path]} returned a wrong answer")
    finally:
        for client in clients.values():
            client.close()
    return samples


async def concurrent(url: str, data: np.ndarray, seconds: float, concurrency: int) -> tuple[float, list[float]]:
    client = grpcaio.InferenceServerClient(url)
    samples: list[float] = []
    deadline = time.perf_counter() + seconds

    async def user() -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            item = grpcaio.InferInput("INPUT0", [data.size], "FP32")
            item.set_data_from_numpy(data)
            (await client.infer(MODEL, [item])).as_numpy("OUTPUT0")
            samples.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    rate = len(samples) / (time.perf_counter() - t0)
    await client.close()
    return rate, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per path and size")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds at concurrency 32 per path and size")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="split each concurrent measurement into this many parts, interleaved across the paths (more: less drift)",
    )
    parser.add_argument(
        "--telemetry-variants",
        action="store_true",
        help="also measure the stack with the worker's telemetry off, with only Dynamo's spans, and with tracing on "
        "(spans to an OTLP sink)",
    )
    parser.add_argument(
        "--backend",
        choices=("native", "python"),
        default="native",
        help="the backend identity_fp32 runs in: native (benchmarks/native_identity) or Triton's python backend",
    )
    parser.add_argument(
        "--floor-egress",
        choices=("push", "pull"),
        default="push",
        help="how the floor's echo worker returns responses: push (as the triton-dynamo worker does) or pull",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the order of the paths in each round")
    args = parser.parse_args()
    order = random.Random(args.seed)
    variants = ("stack_no_telemetry", "stack_dynamo_traced", "stack_traced")
    paths = PATHS + (variants if args.telemetry_variants else ())

    workdir = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    repo = native_identity_repo(workdir / "model_repo") if args.backend == "native" else MODEL_REPO
    procs: list[subprocess.Popen] = []
    try:
        stack_procs, stack_url = start_stack(workdir, repository=repo)
        procs += stack_procs
        floor_procs, floor_url = start_floor(workdir, repo, args.floor_egress)
        procs += floor_procs
        triton_port = ports(1)[0]
        procs.append(start_triton_binary([MODEL], triton_port, repo))
        wait_for_port(triton_port)
        urls = {"stack": stack_url, "floor": floor_url, "triton_grpc": f"127.0.0.1:{triton_port}"}
        workers = {"stack": find_process(stack_procs, "worker"), "floor": find_process(floor_procs, "worker")}
        frontends = {"stack": find_process(stack_procs, "frontend"), "floor": find_process(floor_procs, "frontend")}
        if args.telemetry_variants:
            sink = OtlpSink()
            tracing = ("--otlp-endpoint", sink.endpoint)
            settings = {
                "stack_no_telemetry": ((), {"TRITON_DYNAMO_TELEMETRY": "false"}),
                # Dynamo's own spans (frontend and worker runtime) without the worker's: the part of tracing's cost
                # that is Dynamo's. OTEL_SDK_DISABLED turns off the worker's tracing; Dynamo ignores it.
                "stack_dynamo_traced": (tracing, {"OTEL_SDK_DISABLED": "true"}),
                "stack_traced": (tracing, {}),
            }
            for variant, (extra_args, extra_env) in settings.items():
                started, urls[variant] = start_stack(
                    workdir, variant, extra_args=extra_args, extra_env=extra_env, repository=repo
                )
                procs += started
                workers[variant], frontends[variant] = (
                    find_process(started, "worker"),
                    find_process(started, "frontend"),
                )

        results: dict = {
            "model": MODEL,
            "backend": args.backend,
            "floor_egress": args.floor_egress,
            "requests": args.requests,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "cases": {},
        }
        rows = []
        for size in SIZES:
            data = np.random.default_rng(size).standard_normal(size).astype(np.float32)
            seq: dict[str, list[float]] = {p: [] for p in paths}
            for path in paths:
                sequential(urls[path], data, max(20, args.requests // 10))  # warm-up
            for path, samples in alternating({p: urls[p] for p in paths}, data, args.requests, order).items():
                seq[path] += samples
            conc: dict[str, list[float]] = {p: [] for p in paths}
            conc_s = dict.fromkeys(paths, 0.0)
            worker_cpu_s, frontend_cpu_s = dict.fromkeys(workers, 0.0), dict.fromkeys(frontends, 0.0)
            round_rps: dict[str, list[float]] = {p: [] for p in paths}
            for _ in range(args.rounds):
                for path in order.sample(paths, len(paths)):
                    cpu_before = (cpu_s(workers[path]), cpu_s(frontends[path])) if path in workers else None
                    t0 = time.perf_counter()
                    _, samples = asyncio.run(concurrent(urls[path], data, args.seconds / args.rounds, args.concurrency))
                    elapsed_s = time.perf_counter() - t0
                    conc_s[path] += elapsed_s
                    conc[path] += samples
                    round_rps[path].append(len(samples) / elapsed_s)
                    if cpu_before is not None:
                        worker_cpu_s[path] += cpu_s(workers[path]) - cpu_before[0]
                        frontend_cpu_s[path] += cpu_s(frontends[path]) - cpu_before[1]
            case: dict = {}
            for path in paths:
                c1, c32 = percentiles_us(seq[path]), percentiles_us(conc[path])
                c32["throughput_rps"], c32["round_throughput_rps"] = len(conc[path]) / conc_s[path], round_rps[path]
                case[path] = {"c1": c1, "c32": c32}
                if path in workers:
                    # CPU per request resolves a few µs where latency on a shared 2-core machine moves by 10 %
                    case[path]["c32"]["worker_cpu_us_per_request"] = 1e6 * worker_cpu_s[path] / len(conc[path])
                    case[path]["c32"]["frontend_cpu_us_per_request"] = 1e6 * frontend_cpu_s[path] / len(conc[path])
            floor = case["floor"]
            for path in paths:
                c = case[path]
                c["ratio_to_floor"] = {
                    "p50_c1": c["c1"]["p50_us"] / floor["c1"]["p50_us"],
                    "p99_c1": c["c1"]["p99_us"] / floor["c1"]["p99_us"],
                    "throughput_c32": c["c32"]["throughput_rps"] / floor["c32"]["throughput_rps"],
                }
                rows.append(
                    [
                        size,
                        path,
                        c["c1"]["p50_us"],
                        c["c1"]["p99_us"],
                        c["c32"]["throughput_rps"],
                        c["c32"]["p50_us"],
                        c["c32"]["p99_us"],
                        c["c32"].get("worker_cpu_us_per_request", "-"),
                        f"{c['ratio_to_floor']['p50_c1']:.2f}",
                        f"{c['ratio_to_floor']['throughput_c32']:.2f}",
                    ]
                )
            results["cases"][str(size)] = case
    finally:
        stop_processes(procs)
        shutil.rmtree(workdir, ignore_errors=True)

    print_table(
        [
            "elements",
            "path",
            "p50 us",
            "p99 us",
            f"req/s @{args.concurrency}",
            f"p50 us @{args.concurrency}",
            f"p99 us @{args.concurrency}",
            "worker CPU us/req",
            "p50/floor",
            "req/s / floor",
        ],
        rows,
    )
    small, large = (
        results["cases"]["16"]["stack"]["ratio_to_floor"],
        results["cases"]["150528"]["stack"]["ratio_to_floor"],
    )
    print(
        f"targets: p50 <= 1.25x floor at 16 elements: {small['p50_c1']:.2f}; <= 1.4x at 150528: "
        f"{large['p50_c1']:.2f}; throughput @{args.concurrency} >= 0.75x floor: {small['throughput_c32']:.2f} "
        f"(16), {large['throughput_c32']:.2f} (150528)"
    )
    if args.telemetry_variants:
        for size in ("16", "150528"):
            case = results["cases"][size]
            base = case["stack_no_telemetry"]
            base_cpu, base_frontend = (base["c32"][f"{part}_cpu_us_per_request"] for part in ("worker", "frontend"))
            for variant in ("stack", "stack_dynamo_traced", "stack_traced"):
                p50 = case[variant]["c1"]["p50_us"] / base["c1"]["p50_us"] - 1
                rate = case[variant]["c32"]["throughput_rps"] / base["c32"]["throughput_rps"] - 1
                per_round = case[variant]["c32"]["round_throughput_rps"], base["c32"]["round_throughput_rps"]
                paired = [v / b - 1 for v, b in zip(*per_round, strict=True)]
                cpu, frontend = (case[variant]["c32"][f"{part}_cpu_us_per_request"] for part in ("worker", "frontend"))
                label = {
                    "stack": "metrics only (tracing off)",
                    "stack_dynamo_traced": "Dynamo's spans only (the worker's off)",
                    "stack_traced": "tracing on",
                }[variant]
                print(
                    f"telemetry cost, {size} elements, {label}: p50 {100 * p50:+.1f}%, throughput {100 * rate:+.1f}% "
                    f"(per round: median {100 * statistics.median(paired):+.1f}%, "
                    f"{100 * min(paired):+.1f} to {100 * max(paired):+.1f}%), "
                    f"worker CPU {cpu:.0f} vs {base_cpu:.0f} us/request ({100 * (cpu / base_cpu - 1):+.1f}%), "
                    f"frontend CPU {frontend:.0f} vs {base_frontend:.0f} us/request"
                )
    print("written:", write_results("stack" if args.backend == "native" else "stack_python", results))


if __name__ == "__main__":
    main()
