# SPDX-License-Identifier: Apache-2.0
"""Dynamo's own floor: a worker that returns its input tensors without Triton, registered as a real model.

Every request goes through the same frontend, request plane and Python runtime as ours, and the tensors through
Dynamo's own conversions both ways; nothing else happens. Run by ``benchmarks/stack.py``.

    python benchmarks/echo_worker.py --model identity_fp32 --output OUTPUT0 \
        --config model_repo/identity_fp32/config.pbtxt
"""

from __future__ import annotations

import argparse
import asyncio

import uvloop
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--output", required=True, help="name the echoed tensor gets")
    parser.add_argument("--config", required=True, help="the model's config.pbtxt, for KServe metadata")
    parser.add_argument("--discovery-backend", default="file")
    parser.add_argument("--egress", choices=("push", "pull"), default="push", help="Dynamo's response path")
    args = parser.parse_args()

    from dynamo.common.utils.runtime import create_runtime
    from dynamo.llm import ModelInput, ModelType, WorkerType, register_model

    with open(args.config) as f:
        config = text_format.Parse(f.read(), model_config_pb2.ModelConfig()).SerializeToString()
    runtime, _ = create_runtime(discovery_backend=args.discovery_backend, request_plane="tcp")
    endpoint = runtime.endpoint("floor.echo.generate")

    def echo(request: dict) -> dict:
        tensors = [{"metadata": {**t["metadata"], "name": args.output}, "data": t["data"]} for t in request["tensors"]]
        return {"id": request.get("id"), "model": request["model"], "tensors": tensors}

    # The same egress path as the worker under test (push: it declares response_sender); --egress pull is Dynamo's
    # default handler shape, which measured the same for this worker.
    async def generate_push(request, context, response_sender=None):
        response_sender.send(echo(request))
        response_sender.close()
        return
        yield  # an async generator, as Dynamo requires, that yields nothing

    async def generate_pull(request, context):
        yield echo(request)

    handler = generate_push if args.egress == "push" else generate_pull
    serving = asyncio.ensure_future(endpoint.serve_endpoint(handler))
    client = await endpoint.client()
    await client.wait_for_instances()
    tensor_config = {"name": "", "inputs": [], "outputs": [], "triton_model_config": config}
    await register_model(
        ModelInput.Tensor,
        ModelType.TensorBased,
        endpoint,
        args.model,
        worker_type=WorkerType.Aggregated,
        tensor_model_config=tensor_config,
    )
    await serving


if __name__ == "__main__":
    uvloop.run(main())
