# SPDX-License-Identifier: Apache-2.0
"""In-process Triton (our C API binding) against Triton's own gRPC endpoint, on the same model, in one run.

Measures identity_fp32 with 16 and 150528 FP32 elements: p50/p90/p99 of sequential requests and throughput with
32 concurrent requests, for (a) in-process async_infer and (b) tritonclient gRPC to the wheel's tritonserver binary
serving the same repository. Prints a table with the ratios in-process / gRPC and writes benchmarks/results/.

    uv run python benchmarks/triton_inprocess.py [--requests 2000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import uvloop

from _common import (
    MODEL_REPO,
    free_port,
    percentiles_us,
    print_table,
    start_triton_binary,
    stop_processes,
    write_results,
)
from triton_dynamo.triton import Options, Server

MODEL = "identity_fp32"
SIZES = (16, 150528)


async def inprocess_latency(server: Server, data: np.ndarray, n: int) -> list[float]:
    model = server.model(MODEL)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        async for response in model.async_infer({"INPUT0": data}):
            out = response.outputs["OUTPUT0"]
        samples.append(time.perf_counter() - t0)
    assert out.shape == data.shape
    return samples


async def inprocess_throughput(server: Server, data: np.ndarray, seconds: float, concurrency: int) -> float:
    model = server.model(MODEL)
    count = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            async for _ in model.async_infer({"INPUT0": data}):
                pass
            count += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - t0)


def grpc_latency(url: str, data: np.ndarray, n: int) -> list[float]:
    client = grpcclient.InferenceServerClient(url)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        inp = grpcclient.InferInput("INPUT0", list(data.shape), "FP32")
        inp.set_data_from_numpy(data)
        result = client.infer(MODEL, [inp])
        out = result.as_numpy("OUTPUT0")
        samples.append(time.perf_counter() - t0)
    assert out.shape == data.shape
    client.close()
    return samples


async def grpc_throughput(url: str, data: np.ndarray, seconds: float, concurrency: int) -> float:
    client = grpcaio.InferenceServerClient(url)
    count = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            inp = grpcaio.InferInput("INPUT0", list(data.shape), "FP32")
            inp.set_data_from_numpy(data)
            result = await client.infer(MODEL, [inp])
            result.as_numpy("OUTPUT0")
            count += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = count / (time.perf_counter() - t0)
    await client.close()
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per case")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput case")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    server = Server(Options(model_repository=MODEL_REPO, startup_models=[MODEL], log_info=False))
    await asyncio.to_thread(server.start, wait_until_ready=True)
    port = free_port()
    proc = start_triton_binary([MODEL], port)
    url = f"127.0.0.1:{port}"
    results: dict = {"model": MODEL, "requests": args.requests, "concurrency": args.concurrency, "cases": {}}
    rows = []
    try:
        for size in SIZES:
            data = np.random.default_rng(size).standard_normal(size).astype(np.float32)
            warm = max(50, args.requests // 10)
            await inprocess_latency(server, data, warm)
            await asyncio.to_thread(grpc_latency, url, data, warm)
            # Interleave halves so that drift in machine load hits both paths alike.
            half = args.requests // 2
            ip = await inprocess_latency(server, data, half)
            gr = await asyncio.to_thread(grpc_latency, url, data, half)
            ip += await inprocess_latency(server, data, half)
            gr += await asyncio.to_thread(grpc_latency, url, data, half)
            ip_rate = await inprocess_throughput(server, data, args.seconds, args.concurrency)
            gr_rate = await grpc_throughput(url, data, args.seconds, args.concurrency)
            case = {
                "in_process": {**percentiles_us(ip), "throughput_rps": ip_rate},
                "triton_grpc": {**percentiles_us(gr), "throughput_rps": gr_rate},
            }
            case["ratio_p50"] = case["in_process"]["p50_us"] / case["triton_grpc"]["p50_us"]
            case["ratio_p99"] = case["in_process"]["p99_us"] / case["triton_grpc"]["p99_us"]
            case["ratio_throughput"] = ip_rate / gr_rate
            results["cases"][str(size)] = case
            for name in ("in_process", "triton_grpc"):
                c = case[name]
                rows.append([size, name, c["p50_us"], c["p90_us"], c["p99_us"], c["throughput_rps"]])
            rows.append(
                [size, "ratio in-process/gRPC", case["ratio_p50"], "", case["ratio_p99"], case["ratio_throughput"]]
            )
    finally:
        stop_processes([proc])
        await asyncio.to_thread(server.stop)
    print_table(["elements", "path", "p50 us", "p90 us", "p99 us", f"req/s @{args.concurrency}"], rows)
    print(
        f"targets: p50 ratio <= 0.5 (16 elements): {results['cases']['16']['ratio_p50']:.2f}; "
        f"<= 0.4 (150528 elements): {results['cases']['150528']['ratio_p50']:.2f}"
    )
    print("written:", write_results("triton_inprocess", results))


if __name__ == "__main__":
    uvloop.run(main())  # the event loop the worker runs on (Dynamo uses uvloop)
