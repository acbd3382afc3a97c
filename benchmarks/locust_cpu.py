# SPDX-License-Identifier: Apache-2.0
"""The load generator's own cost: CPU (user + system) of the Locust process(es) per request sent, against Dynamo's
floor (the frontend and an echo worker without Triton, as in benchmarks/stack.py), at enough users to saturate.

Steady state is measured from the processes' own Prometheus metrics (``process_cpu_seconds_total`` and
``triton_dynamo_client_requests_total``, scraped after a warm-up and again before the end), so that Locust's start-up
is not charged to the requests; the whole run (from ``wait4``'s rusage, start-up included) is printed beside it.
Target: at most 0.5 ms of CPU per request. Writes benchmarks/results/locust_cpu.json.

    uv run python benchmarks/locust_cpu.py [--seconds 20] [--users 32] [--workers 0]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import ROOT, stop_processes, write_results
from stack import MODEL, ports, start_floor

TARGET_US = 500.0
WARMUP_S = 4.0


def scrape(port: int) -> tuple[float, float]:
    """(CPU seconds of the process, requests it sent) from its client metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    cpu = float(re.search(r"^process_cpu_seconds_total (\S+)$", text, re.M).group(1))
    sent = sum(float(v) for v in re.findall(r"^triton_dynamo_client_requests_total\{[^}]*\} (\S+)$", text, re.M))
    return cpu, sent


def scrape_all(metric_ports: list[int]) -> tuple[float, float]:
    cpu = sent = 0.0
    for port in metric_ports:
        c, s = scrape(port)
        cpu, sent = cpu + c, sent + s
    return cpu, sent


def wait_for_metrics(metric_ports: list[int], procs: list[subprocess.Popen], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a Locust process exited early; run with --verbose to see its output")
        try:
            if scrape_all(metric_ports)[1] > 0:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("Locust sent no request")


def run_locust(url: str, args: argparse.Namespace, workdir: Path) -> dict:
    locustfile = ROOT / "loadtest" / "locustfile.py"
    summary_path = workdir / "summary.json"
    common = ["--models", MODEL, "--variable-dim", str(args.elements)]
    master_port, *metric_ports = ports(2 + args.workers)
    argv = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-H", url, "-u", str(args.users)]
    argv += ["-r", str(args.users), "-t", f"{args.seconds}s", "--only-summary", "--summary-json", str(summary_path)]
    argv += ["--client-metrics-port", str(metric_ports[0]), *common]
    output = None if args.verbose else subprocess.DEVNULL
    workers = []
    if args.workers:
        argv += ["--master", "--expect-workers", str(args.workers), "--master-bind-port", str(master_port)]
        for port in metric_ports[1:]:
            worker = [sys.executable, "-m", "locust", "-f", str(locustfile), "--worker", "--master-port"]
            worker += [str(master_port), "--worker-client-metrics-port", str(port), *common]
            workers.append(subprocess.Popen(worker, stdout=output, stderr=output))
    master = subprocess.Popen(argv, stdout=output, stderr=output)
    procs = [master, *workers]
    wait_for_metrics(metric_ports, procs)
    time.sleep(WARMUP_S)
    t0, (cpu0, sent0) = time.monotonic(), scrape_all(metric_ports)
    time.sleep(max(args.seconds - WARMUP_S - 3.0, 1.0))
    t1, (cpu1, sent1) = time.monotonic(), scrape_all(metric_ports)
    whole_cpu_s = 0.0
    for proc in procs:
        _, _, usage = os.wait4(proc.pid, 0)
        whole_cpu_s += usage.ru_utime + usage.ru_stime
    summary = json.loads(summary_path.read_text())
    total = summary["overall"]["requests"]
    return {
        "users": args.users,
        "workers": args.workers,
        "elements": args.elements,
        "steady_requests": int(sent1 - sent0),
        "steady_rps": (sent1 - sent0) / (t1 - t0),
        "steady_cpu_us_per_request": (cpu1 - cpu0) / max(sent1 - sent0, 1) * 1e6,
        "steady_cpu_cores": (cpu1 - cpu0) / (t1 - t0),
        "whole_run_requests": total,
        "whole_run_failures": summary["overall"]["failures"],
        "whole_run_cpu_us_per_request": whole_cpu_s / max(total, 1) * 1e6,
        "latency_us": summary["overall"]["latency_us"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20, help="length of the Locust run")
    parser.add_argument("--users", type=int, default=32, help="Locust users (enough to saturate)")
    parser.add_argument("--workers", type=int, default=0, help="Locust worker processes; 0: one process")
    parser.add_argument("--elements", type=int, default=16, help="FP32 elements per request")
    parser.add_argument("--verbose", action="store_true", help="show Locust's output")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-locust-cpu-"))
    procs: list[subprocess.Popen] = []
    try:
        procs, url = start_floor(workdir)
        result = run_locust(url, args, workdir)
    finally:
        stop_processes(procs)
        shutil.rmtree(workdir, ignore_errors=True)

    per_request = result["steady_cpu_us_per_request"]
    result["ratio_to_target"] = per_request / TARGET_US
    print(
        f"Locust against Dynamo's floor ({MODEL}, {args.elements} elements, {args.users} users, "
        f"{args.workers or 'no'} workers): {result['steady_rps']:.0f} req/s, "
        f"{result['steady_cpu_cores']:.2f} cores of Locust CPU"
    )
    print(
        f"Locust CPU per request: {per_request:.0f} us (steady state, {result['steady_requests']} requests); "
        f"whole run incl. start-up: {result['whole_run_cpu_us_per_request']:.0f} us over "
        f"{result['whole_run_requests']} requests ({result['whole_run_failures']} failed)"
    )
    print(f"target: <= {TARGET_US:.0f} us per request: ratio {result['ratio_to_target']:.2f}")
    print("written:", write_results("locust_cpu", result))


if __name__ == "__main__":
    main()
