# SPDX-License-Identifier: Apache-2.0
"""Workers on one GPU, measured: `triton-dynamo up` with 1, 2 and 4 workers serving model_repo_gpu/gpu_matmul.

scripts/gpu-check.sh runs this on the device (issue 18), after installing the carried wheels (benchmarks/gpu_carry.py),
and here with ``--mode cpu-dry-run``. For each worker count: start `triton-dynamo up`, check where Triton placed the
model (ModelConfig's instance kind), what the model says it computes on (its log line), and its answers against
numpy; then drive it at each concurrency with tritonclient from several client processes, sample nvidia-smi each
second, and read Triton's GPU gauges (``nv_gpu_*``) and batch statistics from worker 0's metrics port. Results go to
``gpu_scaling.json`` and ``gpu_scaling.md`` under ``--out``, rewritten after every step.

    uv run python benchmarks/gpu_scaling.py --mode cpu-dry-run --workers-list 1 2 --concurrency-per-worker 2 \
        --rows-per-request 2 --client-processes 1 --duration-s 3 --out /tmp/gs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

logger = logging.getLogger("gpu_scaling")

ROOT = Path(__file__).resolve().parent.parent
GPU_REPO = ROOT / "model_repo_gpu"
MODEL = "gpu_matmul"
MIB = 1 << 20

# float32 through 66 products lands near 1e-6 of the float64 answer here; TF32 would be near 1e-3.
MAX_RELATIVE_ERROR = 1e-4
SETTINGS = ("workers_list", "concurrency_per_worker", "rows_per_request", "duration_s", "warmup_s", "client_processes")


# --- measure: the reference computation -----------------------------------------------------------------------------


def model_parameters(config: dict) -> dict:
    """SEED, HIDDEN, DEPTH and FEATURES from the served ModelConfig (JSON), as model_repo_gpu's config defines them."""
    values = {key: entry["string_value"] for key, entry in config.get("parameters", {}).items()}
    (features,) = (int(d) for d in config["input"][0]["dims"])
    return {
        "SEED": int(values["SEED"]),
        "HIDDEN": int(values["HIDDEN"]),
        "DEPTH": int(values["DEPTH"]),
        "OUTPUT_MEMORY": values.get("OUTPUT_MEMORY", ""),
        "FEATURES": features,
    }


class Reference:
    """config.pbtxt's computation in float64 from the float32 weights: the answer any float32 run must come near."""

    def __init__(self, params: dict) -> None:
        import numpy as np

        rng = np.random.default_rng(params["SEED"])
        shapes = ((params["FEATURES"], params["HIDDEN"]), (params["HIDDEN"], params["HIDDEN"]))
        shapes += ((params["HIDDEN"], params["FEATURES"]),)
        drawn = []
        for shape in shapes:
            w = rng.standard_normal(shape, dtype=np.float32)
            w *= np.float32(1.0 / math.sqrt(shape[0]))
            drawn.append(w.astype(np.float64))
        self.w_in, self.w_hidden, self.w_out = drawn
        self.depth = params["DEPTH"]

    def __call__(self, x):
        import numpy as np

        h = np.tanh(x.astype(np.float64) @ self.w_in)
        for _ in range(self.depth):
            h = np.tanh(h @ self.w_hidden)
        return h @ self.w_out


# --- measure: the stack ---------------------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Consecutive ports free on loopback, below 32768 (Dynamo 1.6.1 reads DYN_SYSTEM_PORT as a signed 16-bit int)."""
    for _ in range(200):
        first = random.randrange(20000, 32768 - count)
        ports = list(range(first, first + count))
        free = True
        for port in ports:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    free = False
                    break
        if free:
            return ports
    raise RuntimeError("no free ports on 127.0.0.1")


class Stack:
    """`triton-dynamo up` on model_repo_gpu, as a user starts it, with its output in ``state_dir/up.log``."""

    def __init__(self, workers: int, state_dir: Path, repository: Path, startup_timeout_s: float) -> None:
        self.workers = workers
        self.state_dir = state_dir
        grpc, metrics, control, frontend = free_ports(4)
        self.system_ports = free_ports(workers)
        self.metrics_ports = free_ports(workers)
        self.url = f"127.0.0.1:{grpc}"
        state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = state_dir / "up.log"
        options = {
            "--workers": workers,
            "--model-repository": repository,
            "--model-name": MODEL,
            "--grpc-port": grpc,
            "--metrics-port": metrics,
            "--control-port": control,
            "--frontend-port": frontend,
            "--worker-system-port": self.system_ports[0],
            "--worker-metrics-port": self.metrics_ports[0],
            "--state-dir": state_dir / "state",
            "--startup-timeout-s": startup_timeout_s,
            # the frontend's own port: this measures workers on a GPU, not the proxy in front of the frontend
            "--proxy": "none",
        }
        argv = [sys.executable, "-m", "triton_dynamo", "up", *(str(v) for pair in options.items() for v in pair)]
        # Workers' request servers bind loopback: nothing of this check may leave the machine.
        env = {**os.environ, "DYN_TCP_RPC_HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started = time.monotonic()
        self._wait_ready(startup_timeout_s + 15)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "triton-dynamo ready:" in self.log_path.read_text(errors="replace"):
                self.ready_after_s = time.monotonic() - self.started
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"triton-dynamo up with {self.workers} worker(s) was not ready: ...{tail}")

    def worker_logs(self) -> list[Path]:
        return sorted((self.state_dir / "state" / "logs").glob("worker-*.log"))

    def stop(self, timeout_s: float = 60) -> None:
        """Ctrl-C, as a user stops it (drains and stops every process); SIGKILL to its process group past
        ``timeout_s``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def scrape(port: int, timeout_s: float = 5.0) -> dict[str, list[tuple[str, float]]]:
    """A metrics port's samples: name -> [(labels, value)]. Plain parsing: only what this check reads."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": "text/plain"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[str, float]]] = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z_:][\w:]*)(\{[^}]*\})?\s+(\S+)", line)
        if match and not line.startswith("#"):
            with contextlib.suppress(ValueError):
                samples.setdefault(match.group(1), []).append((match.group(2) or "", float(match.group(3))))
    return samples


def model_sum(samples: dict, name: str) -> float:
    return sum(v for labels, v in samples.get(name, []) if f'model="{MODEL}"' in labels)


class GpuSampler:
    """``nvidia-smi -l 1`` during one measurement window: utilization, memory and power each second."""

    QUERY = "utilization.gpu,memory.used,power.draw"

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["nvidia-smi", f"--query-gpu={self.QUERY}", "--format=csv,noheader,nounits", "-l", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.rows: list[list[float]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.rows.append([float(v) for v in line.split(",")[:3]])

    def stop(self) -> dict:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.thread.join(timeout=5)
        if not self.rows:
            return {"samples": 0}
        util, mem, power = zip(*self.rows, strict=True)
        return {
            "samples": len(self.rows),
            "util_mean_pct": sum(util) / len(util),
            "util_max_pct": max(util),
            "memory_used_max_mib": max(mem),
            "power_mean_w": sum(power) / len(power),
        }


def gpu_processes() -> int | None:
    """How many processes hold a CUDA context on the GPUs (a worker's python backend stub each, on a GPU run)."""
    done = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
    )
    return len([line for line in done.stdout.splitlines() if line.strip()]) if done.returncode == 0 else None


# --- measure: the load ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """One measurement: ``concurrency`` requests of ``rows`` rows in flight, ``warmup_s`` unmeasured first."""

    concurrency: int
    rows: int
    features: int
    warmup_s: float
    duration_s: float


def client_load(url: str, load: Load, users: int, start_at: float, seed: int) -> dict:
    """One client: ``users`` request loops (one gRPC channel per 8) from wall-clock ``start_at``, counting the
    requests that complete inside the measured window."""
    return asyncio.run(_client_load(url, load, users, start_at, seed))


async def _client_load(url: str, load: Load, users: int, start_at: float, seed: int) -> dict:
    import numpy as np
    import tritonclient.grpc.aio as grpcaio

    rng = np.random.default_rng(seed)
    pool = [rng.standard_normal((load.rows, load.features), dtype=np.float32) for _ in range(16)]
    clients = [grpcaio.InferenceServerClient(url) for _ in range(math.ceil(users / 8))]
    await asyncio.sleep(max(0.0, start_at - time.time()))
    window_start = time.perf_counter() + load.warmup_s
    window_end = window_start + load.duration_s
    latencies_s: list[float] = []
    counts = {"ok": 0, "errors": 0}
    first_error: list[str] = []

    async def user(index: int) -> None:
        client, k = clients[index % len(clients)], index
        while time.perf_counter() < window_end:
            x = pool[k % len(pool)]
            k += 1
            tensor = grpcaio.InferInput("X", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x)
            t0 = time.perf_counter()
            try:
                y = (await client.infer(MODEL, [tensor])).as_numpy("Y")
                error = None if y is not None and y.shape == x.shape and np.isfinite(y).all() else "bad output"
            except Exception as exc:  # counted and reported; the load goes on
                error = f"{type(exc).__name__}: {exc}"
            t1 = time.perf_counter()
            if error and not first_error:
                first_error.append(error[:500])
            if window_start <= t1 <= window_end:
                counts["errors" if error else "ok"] += 1
                if not error:
                    latencies_s.append(t1 - t0)

    cpu_s = time.process_time()
    await asyncio.gather(*(user(i) for i in range(users)))
    cpu_s = time.process_time() - cpu_s
    for client in clients:
        await client.close()
    return {
        **counts,
        "first_error": first_error[0] if first_error else None,
        "latencies_s": latencies_s,
        "client_cpu_s": cpu_s,
    }


def metric_delta(before: dict, after: dict, name: str) -> float:
    return model_sum(after, name) - model_sum(before, name)


def client_pool(processes: int) -> ThreadPoolExecutor | ProcessPoolExecutor:
    """Where the clients run: processes, since one Python client tops out at a few thousand requests a second (below
    what a GPU may serve), or one thread beside this one when one client is enough."""
    if processes > 1:
        return ProcessPoolExecutor(processes, mp_context=get_context("spawn"))
    return ThreadPoolExecutor(1)


def drive(stack: Stack, load: Load, pool: ThreadPoolExecutor | ProcessPoolExecutor, processes: int, gpu: bool) -> dict:
    """``load`` from ``processes`` clients of ``pool``, with nvidia-smi sampling and worker 0's metrics over the
    measured window."""
    import numpy as np

    processes = max(1, min(processes, load.concurrency))
    shares = [load.concurrency // processes + (i < load.concurrency % processes) for i in range(processes)]
    start_at = time.time() + (3.0 if processes > 1 else 0.2)  # room for a fresh process to import tritonclient
    futures = [pool.submit(client_load, stack.url, load, share, start_at, 1000 + i) for i, share in enumerate(shares)]
    time.sleep(max(0.0, start_at + load.warmup_s - time.time()))
    before = scrape(stack.metrics_ports[0])
    sampler = GpuSampler() if gpu else None
    time.sleep(max(0.0, load.duration_s - 1.5))
    after = scrape(stack.metrics_ports[0])  # while the load still runs: Triton refreshes GPU gauges every 2 s
    holders = gpu_processes() if gpu else None
    samples = sampler.stop() if sampler else None
    clients = [f.result(timeout=load.warmup_s + load.duration_s + 120) for f in futures]

    latencies_ms = np.array([s for c in clients for s in c["latencies_s"]]) * 1e3
    ok = len(latencies_ms)
    executions = metric_delta(before, after, "nv_inference_exec_count")
    requests = metric_delta(before, after, "nv_inference_request_success")

    def per_request_ms(name: str) -> float | None:
        return metric_delta(before, after, name) / requests / 1e3 if requests else None

    def gauge(name: str, scale: float = 1.0) -> list[float]:
        return [value / scale for _, value in after.get(name, [])]

    return {
        "workers": stack.workers,
        "concurrency": load.concurrency,
        "rows_per_request": load.rows,
        "requests": ok,
        "errors": sum(c["errors"] for c in clients),
        "first_error": next((c["first_error"] for c in clients if c["first_error"]), None),
        "throughput_rps": ok / load.duration_s,
        "rows_per_s": ok * load.rows / load.duration_s,
        "p50_ms": float(np.percentile(latencies_ms, 50)) if ok else None,
        "p90_ms": float(np.percentile(latencies_ms, 90)) if ok else None,
        "p99_ms": float(np.percentile(latencies_ms, 99)) if ok else None,
        "client_cpu_cores": sum(c["client_cpu_s"] for c in clients) / (load.warmup_s + load.duration_s),
        "ready_after_s": stack.ready_after_s,
        "worker0": {
            "mean_batch_rows": metric_delta(before, after, "nv_inference_count") / executions if executions else None,
            "queue_ms_per_request": per_request_ms("nv_inference_queue_duration_us"),
            "compute_ms_per_request": per_request_ms("nv_inference_compute_infer_duration_us"),
            "nv_gpu_utilization": gauge("nv_gpu_utilization"),
            "nv_gpu_memory_used_mib": gauge("nv_gpu_memory_used_bytes", MIB),
            "nv_gpu_power_usage_w": gauge("nv_gpu_power_usage"),
        },
        "nvidia_smi": samples,
        "gpu_processes": holders,
    }


# --- measure: checks and the run ------------------------------------------------------------------------------------


def check_model(stack: Stack, results: Results, expected_kind: str, requests: int, rows: int) -> dict:
    """Where Triton put the instance, what the model says it computes on, and its answers against numpy; returns
    the model's parameters as served."""
    import numpy as np
    import tritonclient.grpc as grpcclient
    import tritonclient.grpc.aio as grpcaio

    with contextlib.closing(grpcclient.InferenceServerClient(stack.url)) as client:
        config = client.get_model_config(MODEL, as_json=True)["config"]
    params = model_parameters(config)
    kinds = sorted({g.get("kind", "") for g in config.get("instance_group", [])})
    results.check("instance kind", stack.workers, kinds == [expected_kind], f"ModelConfig says {kinds}")

    said = []
    for log in stack.worker_logs():
        said += re.findall(r"gpu_matmul instance \S+ \((\w+)\): computing on ([^\n]*?), HIDDEN", log.read_text())
    on_gpu = [device.startswith("cuda") for _, device in said]
    wanted = expected_kind == "KIND_GPU"
    results.check(
        "model computes on",
        stack.workers,
        len(said) >= stack.workers and all(flag == wanted for flag in on_gpu),
        "; ".join(sorted({f"{kind} instance: {device}" for kind, device in said})) or "no log line from the model",
    )

    rng = np.random.default_rng()  # fresh inputs each run: the model must compute the function, not one answer
    inputs = [rng.standard_normal((rows, params["FEATURES"]), dtype=np.float32) for _ in range(requests)]

    async def send() -> list:
        client = grpcaio.InferenceServerClient(stack.url)
        try:
            tensors = []
            for x in inputs:
                tensor = grpcaio.InferInput("X", list(x.shape), "FP32")
                tensor.set_data_from_numpy(x)
                tensors.append(tensor)
            # together, so that Triton batches them and rows must find their way back to their own requests
            answers = await asyncio.gather(*(client.infer(MODEL, [t]) for t in tensors))
            return [a.as_numpy("Y") for a in answers]
        finally:
            await client.close()

    try:
        outputs = asyncio.run(send())
    except Exception as exc:
        results.check("outputs match numpy", stack.workers, False, f"no answers: {type(exc).__name__}: {exc}"[:1500])
        raise
    reference = Reference(params)
    errors = []
    for x, y in zip(inputs, outputs, strict=True):
        expected = reference(x)
        good = y is not None and y.shape == expected.shape
        errors.append(float(np.linalg.norm(y - expected) / np.linalg.norm(expected)) if good else math.inf)
    results.check(
        "outputs match numpy",
        stack.workers,
        max(errors) < MAX_RELATIVE_ERROR,
        f"{requests} requests of {rows} rows sent together: largest relative L2 error {max(errors):.1e} "
        f"(limit {MAX_RELATIVE_ERROR:.0e}, float32 against float64)",
    )
    return params


def markdown(results: dict) -> str:
    def fmt(value, spec=".1f") -> str:
        return "-" if value is None else format(value, spec)

    lines = [
        f"# gpu_matmul on {results['machine'].get('gpu') or 'no GPU'} ({results['mode']})",
        "",
        f"{results['model']}, {results['settings']['rows_per_request']} rows a request, "
        f"{results['settings']['duration_s']} s measured after {results['settings']['warmup_s']} s of warm-up.",
        "",
        "| workers | concurrency | req/s | rows/s | p50 ms | p99 ms | errors | GPU util % mean/max (nvidia-smi) "
        "| nv_gpu_utilization | GPU MiB | power W | batch rows | client cores | saturating |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    best = {}
    for run in results["runs"]:
        if run["workers"] not in best or run["throughput_rps"] > best[run["workers"]]["throughput_rps"]:
            best[run["workers"]] = run
    for run in results["runs"]:
        smi, w0, saturating = run["nvidia_smi"] or {}, run["worker0"], best[run["workers"]] is run
        util = f"{fmt(smi.get('util_mean_pct'), '.0f')}/{fmt(smi.get('util_max_pct'), '.0f')}" if smi else "-"
        nv_util = ", ".join(f"{v:.2f}" for v in w0["nv_gpu_utilization"]) or "-"
        mem = ", ".join(f"{v:.0f}" for v in w0["nv_gpu_memory_used_mib"]) or "-"
        power = ", ".join(f"{v:.0f}" for v in w0["nv_gpu_power_usage_w"]) or "-"
        lines.append(
            f"| {run['workers']} | {run['concurrency']} | {fmt(run['throughput_rps'])} "
            f"| {fmt(run['rows_per_s'], '.0f')} | {fmt(run['p50_ms'], '.2f')} | {fmt(run['p99_ms'], '.2f')} "
            f"| {run['errors']} | {util} | {nv_util} | {mem} | {power} | {fmt(w0['mean_batch_rows'])} "
            f"| {fmt(run['client_cpu_cores'], '.2f')} | {'yes' if saturating else ''} |"
        )
    lines += ["", "| check | workers | passed | detail |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {c['check']} | {c['workers']} | {'yes' if c['passed'] else 'NO'} | {c['detail'].replace('|', '/')} |"
        for c in results["checks"]
    ]
    if results.get("fallback"):
        lines += ["", f"Fallback: {results['fallback']} (runs from then on say so in gpu_scaling.json)."]
    if results.get("skipped"):
        lines += ["", f"Skipped (deadline): {'; '.join(results['skipped'])}."]
    return "\n".join(lines) + "\n"


def machine(gpu: bool) -> dict:
    import importlib.metadata as md

    info = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "gpu": None}
    for name in ("torch", "numpy", "ai-dynamo-runtime", "nvidia-pytriton"):
        with contextlib.suppress(md.PackageNotFoundError):
            info[name] = md.version(name)
    if gpu:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        info["gpu"] = "; ".join(line.strip() for line in done.stdout.splitlines() if line.strip()) or None
    return info


class Results:
    """What a measurement found so far, written out after every step: a device call may end half-way."""

    def __init__(self, out: Path, mode: str, settings: dict) -> None:
        self.out = out
        self.data: dict = {
            "mode": mode,
            "machine": machine(mode == "gpu"),
            "model": MODEL,
            "settings": settings,
            "runs": [],
            "checks": [],
            "skipped": [],
        }

    def check(self, name: str, workers: int, passed: bool, detail: str) -> None:
        self.data["checks"].append({"check": name, "workers": workers, "passed": bool(passed), "detail": detail})
        logger.log(
            logging.INFO if passed else logging.ERROR,
            "%s (%d workers): %s, %s",
            name,
            workers,
            "passed" if passed else "FAILED",
            detail,
        )

    @property
    def passed(self) -> bool:
        return bool(self.data["runs"]) and all(c["passed"] for c in self.data["checks"])

    def write(self) -> None:
        self.data["passed"] = self.passed
        (self.out / "gpu_scaling.json").write_text(json.dumps(self.data, indent=2) + "\n")
        (self.out / "gpu_scaling.md").write_text(markdown(self.data))


def measure_workers(
    workers: int, repository: Path, args: argparse.Namespace, results: Results, pool, logs: Path
) -> bool | None:
    """One worker count: a stack, its checks, a load at each concurrency. Failures are recorded, not raised, so that
    the other worker counts still run. Returns whether the model answered the correctness check (None: the stack
    did not start)."""
    gpu = args.mode == "gpu"
    try:
        stack = Stack(
            workers, logs / f"workers-{workers}-{len(results.data['checks'])}", repository, args.startup_timeout_s
        )
    except RuntimeError as exc:
        results.check("stack ready", workers, False, str(exc)[-1500:])
        return None
    answered = False
    try:
        logger.info("%d worker(s) ready after %.1f s at %s", workers, stack.ready_after_s, stack.url)
        params = check_model(stack, results, "KIND_GPU" if gpu else "KIND_CPU", args.check_requests, args.check_rows)
        answered = True
        results.data["model"] = (
            f"{MODEL} (HIDDEN {params['HIDDEN']}, DEPTH {params['DEPTH']}, OUTPUT_MEMORY {params['OUTPUT_MEMORY']})"
        )
        for per_worker in args.concurrency_per_worker:
            concurrency = workers * per_worker
            load = Load(concurrency, args.rows_per_request, params["FEATURES"], args.warmup_s, args.duration_s)
            run = drive(stack, load, pool, args.client_processes, gpu)
            run["output_memory"] = params["OUTPUT_MEMORY"]
            results.data["runs"].append(run)
            logger.info(
                "%d worker(s), concurrency %d: %.1f req/s, p50 %.2f ms, p99 %.2f ms, %d errors",
                workers,
                concurrency,
                run["throughput_rps"],
                run["p50_ms"] or math.nan,
                run["p99_ms"] or math.nan,
                run["errors"],
            )
            results.check(
                "no errors under load",
                workers,
                run["errors"] == 0 and run["requests"] > 0,
                f"concurrency {concurrency}: {run['requests']} answered, {run['errors']} failed"
                + (f" ({run['first_error']})" if run["first_error"] else ""),
            )
            if gpu:
                w0, smi = run["worker0"], run["nvidia_smi"] or {}
                gauges = ("nv_gpu_utilization", "nv_gpu_memory_used_mib", "nv_gpu_power_usage_w")
                results.check(
                    "GPU metrics",
                    workers,
                    all(w0[g] for g in gauges) and smi.get("samples", 0) > 0,
                    f"worker 0's port: {', '.join(f'{g} {w0[g]}' for g in gauges)}; "
                    f"nvidia-smi: {smi.get('samples', 0)} samples",
                )
            results.write()
    except Exception as exc:  # recorded as a failed check; the next worker count still runs
        logger.exception("%d worker(s): the run broke off", workers)
        results.check("run completes", workers, False, f"{type(exc).__name__}: {exc}"[:1500])
    finally:
        stack.stop()
        results.write()
    return answered


def with_output_memory(repository: Path, value: str, into: Path) -> Path:
    """A copy of the repository whose gpu_matmul keeps its outputs in ``value`` memory (config parameter)."""
    copy = into / f"repository-output-{value}"
    shutil.copytree(repository, copy, dirs_exist_ok=True)
    config = copy / MODEL / "config.pbtxt"
    text = re.sub(r'(key: "OUTPUT_MEMORY" value: \{ string_value: ")\w+(")', rf"\g<1>{value}\g<2>", config.read_text())
    config.write_text(text)
    return copy


def measure(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results = Results(out, args.mode, {k: getattr(args, k) for k in SETTINGS})
    repository = Path(args.repository).resolve()
    began = time.monotonic()
    logs = Path(tempfile.mkdtemp(prefix="gpu-scaling-"))
    try:
        with client_pool(args.client_processes) as pool:
            for workers in args.workers_list:
                # a stack's start, checks and stop, besides the loads themselves
                needed_s = (45.0 if args.mode == "gpu" else 25.0) + len(args.concurrency_per_worker) * (
                    args.warmup_s + args.duration_s + 5
                )
                if time.monotonic() - began + needed_s > args.deadline_s:
                    results.data["skipped"].append(
                        f"{workers} worker(s): {needed_s:.0f} s more would pass the deadline"
                    )
                    logger.warning("skipping %d worker(s): past the %d s deadline", workers, args.deadline_s)
                    continue
                answered = measure_workers(workers, repository, args, results, pool, logs)
                if answered is False and args.mode == "gpu" and "output-cpu" not in repository.name:
                    # Outputs left in GPU memory take a path (CUDA IPC from the stub, Triton's copy into our buffers)
                    # that nothing else here tried; if it fails, measure the GPU with host outputs rather than not.
                    logger.warning("no answers with outputs in GPU memory: trying again with OUTPUT_MEMORY cpu")
                    repository = with_output_memory(repository, "cpu", logs)
                    results.data["fallback"] = "OUTPUT_MEMORY cpu after the model failed to answer with gpu"
                    measure_workers(workers, repository, args, results, pool, logs)
    finally:
        _keep_log_tails(logs, out / "stack-logs.tar.gz")
        shutil.rmtree(logs, ignore_errors=True)
        results.write()
    print(markdown(results.data))
    return 0 if results.passed else 1


def _keep_log_tails(logs: Path, archive: Path, lines: int = 300) -> None:
    """The last ``lines`` of every log of every stack, for reading back from a device (the whole would be MBs)."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(logs.rglob("*.log")):
            data = "\n".join(path.read_text(errors="replace").splitlines()[-lines:]).encode()
            info = tarfile.TarInfo(str(path.relative_to(logs)))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


# --- command line ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("gpu", "cpu-dry-run"), default="gpu")
    parser.add_argument("--repository", default=str(GPU_REPO))
    parser.add_argument("--workers-list", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--concurrency-per-worker",
        type=int,
        nargs="+",
        default=[8, 32],
        help="requests in flight per worker; the highest throughput of these is the saturating one",
    )
    parser.add_argument("--rows-per-request", type=int, default=128)
    parser.add_argument("--duration-s", type=float, default=12.0)
    parser.add_argument("--warmup-s", type=float, default=3.0)
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--check-requests", type=int, default=4, help="requests sent together to check answers")
    parser.add_argument("--check-rows", type=int, default=8)
    parser.add_argument("--startup-timeout-s", type=float, default=180.0)
    parser.add_argument("--deadline-s", type=int, default=420, help="skip worker counts that would end past this")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return measure(args)


if __name__ == "__main__":
    sys.exit(main())
