# SPDX-License-Identifier: Apache-2.0
"""Inference through the stack's one port (a router passing every Triton RPC on: grpc-router, or nghttpx with
--proxy nghttpx) against the frontend's own port, in one run, on one stack: `triton-dynamo up --workers 1 --proxy ...`
serving identity_fp32 in the native identity backend (benchmarks/native_identity), so that what is measured is the
path, not a model.

For 16 and 150528 FP32 elements: p50/p99 of sequential requests and throughput at concurrency 32 (tritonclient aio),
and the ratio one port / frontend port. The two ports are measured in pairs so that what this shared machine does
meanwhile falls on both alike: sequential requests alternate between the ports request by request (in a new random
order each time), and throughput is measured in short windows (--seconds), one per port in a new random order each
round (--rounds); the ratio of each pair of windows is reported too. The router shares this machine's cores with the
client, the frontend and the worker, as it would on a small host. Writes benchmarks/results/one_port.json.

    uv run python benchmarks/one_port.py [--proxy grpc-router] [--requests 1000] [--seconds 1.5] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
from pathlib import Path

import numpy as np
import psutil

from _common import native_identity_repo, percentiles_us, print_table, stop_processes, write_results
from stack import alternating, concurrent, cpu_s, ports, sequential, start_stack
from triton_dynamo.stack.proxy import ROUTERS, find_grpc_router, find_nghttpx

SIZES = (16, 150528)
PORTS = ("one_port", "frontend")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per port and size")
    parser.add_argument("--seconds", type=float, default=1.5, help="one window at concurrency 32, per port and round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=10, help="windows per port and size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--proxy", choices=tuple(ROUTERS), default="grpc-router", help="the one-port router")
    args = parser.parse_args()
    if {"grpc-router": find_grpc_router, "nghttpx": find_nghttpx}[args.proxy]() is None:
        raise SystemExit(f"{args.proxy} is not here: {ROUTERS[args.proxy]}")
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="one-port-") as tmp:
        workdir = Path(tmp)
        repository = native_identity_repo(workdir / "repo")
        (frontend_port,) = ports(1)
        extra = ("--proxy", args.proxy, "--frontend-port", str(frontend_port))
        procs, one_port_url = start_stack(workdir, repository=repository, extra_args=extra)
        urls = {"one_port": one_port_url, "frontend": f"127.0.0.1:{frontend_port}"}
        router = find_router(procs, args.proxy)
        router_cpu_s = {n: 0.0 for n in SIZES}  # the router's CPU over the one port's windows at concurrency 32
        router_calls = {n: 0 for n in SIZES}
        latencies = {(p, n): [] for p in PORTS for n in SIZES}
        rates = {(p, n): [] for p in PORTS for n in SIZES}
        under_load = {(p, n): [] for p in PORTS for n in SIZES}
        try:
            for n in SIZES:  # warm both paths (connections, the worker's buffers)
                data = np.arange(n, dtype=np.float32)
                for port in PORTS:
                    sequential(urls[port], data, 50)
            for n in SIZES:
                data = np.arange(n, dtype=np.float32)
                for port, samples in alternating(urls, data, args.requests, rng).items():
                    latencies[(port, n)] += samples
                order = list(PORTS)
                for _ in range(args.rounds):
                    rng.shuffle(order)
                    for port in order:
                        cpu_before_s = cpu_s(router)
                        rate, samples = asyncio.run(concurrent(urls[port], data, args.seconds, args.concurrency))
                        if port == "one_port":
                            router_cpu_s[n] += cpu_s(router) - cpu_before_s
                            router_calls[n] += len(samples)
                        rates[(port, n)].append(rate)
                        under_load[(port, n)] += samples
        finally:
            stop_processes(procs)
    results, rows = {}, []
    for n in SIZES:
        for port in PORTS:
            seq, load = percentiles_us(latencies[(port, n)]), percentiles_us(under_load[(port, n)])
            rate = statistics.fmean(rates[(port, n)])
            results[f"{port}_{n}"] = {"sequential": seq, "throughput_rps": rate, "under_load": load}
            rows.append([port, n, seq["p50_us"], seq["p99_us"], rate, load["p50_us"]])
        one, direct = results[f"one_port_{n}"], results[f"frontend_{n}"]
        paired = [a / b for a, b in zip(rates[("one_port", n)], rates[("frontend", n)], strict=True)]
        results[f"ratio_{n}"] = {
            "p50": one["sequential"]["p50_us"] / direct["sequential"]["p50_us"],
            "throughput": one["throughput_rps"] / direct["throughput_rps"],
            "throughput_per_round": paired,
            "throughput_median_of_rounds": statistics.median(paired),
            "router_cpu_us_per_call": 1e6 * router_cpu_s[n] / router_calls[n],
        }
    print_table(["port", "elements", "p50 us", "p99 us", f"req/s at {args.concurrency}", "p50 under load us"], rows)
    for n in SIZES:
        ratio = results[f"ratio_{n}"]
        rounds = ratio["throughput_per_round"]
        print(
            f"{n} elements, one port / frontend: p50 {ratio['p50']:.3f}, throughput {ratio['throughput']:.3f} "
            f"(rounds: median {ratio['throughput_median_of_rounds']:.3f}, {min(rounds):.3f} to {max(rounds):.3f}); "
            f"{args.proxy} CPU {ratio['router_cpu_us_per_call']:.0f} us per call at concurrency {args.concurrency}"
        )
    results["settings"] = vars(args)
    print(f"written to {write_results('one_port', results)}")


def find_router(procs: list, name: str) -> psutil.Process:
    """The router process `up` started (a child of the stack's supervisor)."""
    for proc in procs:
        for candidate in psutil.Process(proc.pid).children(recursive=True):
            if any(arg.endswith(name) for arg in candidate.cmdline()[:1]):
                return candidate
    raise RuntimeError(f"no {name} process found")


if __name__ == "__main__":
    main()
