# SPDX-License-Identifier: Apache-2.0
"""``triton-dynamo models`` and ``triton-dynamo infer``: a user's first calls to a running stack."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InvalidInput
from ..stack.proxy import rpc_routes
from .config import ClientConfig
from .inputs import parse_input, synthesize_inputs
from .kserve import KServeClient, list_models


def models(argv: Sequence[str]) -> int:
    parser = ClientConfig.parser(
        "triton-dynamo models",
        "The models of the stack's repository with their state on the workers (where the control RPCs answer at "
        "--url), else the models the frontend serves; with --rpcs, every Triton RPC and who answers it.",
    )
    parser.add_argument("--rpcs", action="store_true", help="print every RPC of Triton's gRPC service and who answers")
    args = parser.parse_args(argv)
    config = ClientConfig.from_parsed(args)
    if args.rpcs:
        print(f"{'RPC':<32} {'ANSWERED BY':<16} NOTE")
        for method, answered_by, note in rpc_routes():
            print(f"{method:<32} {answered_by:<16} {note}")
        return 0
    metrics_url = config.metrics_address
    with KServeClient(config.url) as client:
        index = client.repository_index()
        if index is None:  # the frontend's own port: no control RPCs
            index = [{"name": name} for name in list_models(metrics_url)]
            print(f"(no control RPCs at {config.url}: the models the frontend routes, without their state)")
        print(f"{'MODEL':<24} {'VERSION':<8} {'STATE':<12} {'INPUTS':<40} REASON")
        for entry in index:
            name = entry["name"]
            state = entry.get("state") or ("READY" if client.model_ready(name) else "")
            inputs = ""
            if state == "READY":
                metadata = client.metadata(name)
                inputs = ", ".join(
                    f"{i['name']} {i['datatype']} {[int(d) for d in i['shape']]}" for i in metadata["inputs"]
                )
            print(f"{name:<24} {entry.get('version', ''):<8} {state or '-':<12} {inputs:<40} {entry.get('reason', '')}")
    return 0


def infer(argv: Sequence[str]) -> int:
    parser = ClientConfig.parser(
        "triton-dynamo infer",
        "Send one request through the frontend and print the outputs. Inputs not given with --input are generated "
        "from the model's metadata.",
    )
    parser.add_argument("model")
    parser.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="an input value as JSON, e.g. INPUT0='[1, 2, 3]' (repeatable)",
    )
    parser.add_argument("--output", action="append", default=[], help="return only this output (repeatable)")
    parser.add_argument("--dim", type=int, default=4, help="size of variable (-1) dimensions of generated inputs")
    parser.add_argument("--batch-size", type=int, default=1, help="batch size of generated inputs")
    parser.add_argument("--request-id", default="", help="request id, echoed in the response")
    parser.add_argument("--stream", action="store_true", help="use ModelStreamInfer (automatic for decoupled models)")
    args = parser.parse_args(argv)
    config = ClientConfig.from_parsed(args)
    with KServeClient(config.url) as client:
        metadata, config = client.metadata(args.model), client.config(args.model)
        types = {i["name"]: i["datatype"] for i in metadata["inputs"]}
        given = {}
        for item in args.input:
            name, sep, text = item.partition("=")
            if not sep or name not in types:
                raise InvalidInput(f"--input {item!r}: expected NAME=JSON with NAME one of {', '.join(types)}")
            given[name] = parse_input(text, types[name])
        inputs = synthesize_inputs(metadata, config, batch_size=args.batch_size, variable_dim=args.dim)
        inputs.update(given)
        decoupled = config.get("model_transaction_policy", {}).get("decoupled", False)
        for name, array in inputs.items():
            print(f"input  {name} {types[name]} {list(array.shape)}: {_show(array)}")
        call = client.stream if (args.stream or decoupled) else client.infer
        responses = call(args.model, inputs, outputs=args.output, request_id=args.request_id)
        if not responses:
            print("(the model sent no response)")
        for index, outputs in enumerate(responses):
            prefix = f"[{index}] " if len(responses) > 1 else ""
            for name, array in outputs.items():
                print(f"{prefix}output {name} {list(array.shape)}: {_show(array)}")
    return 0


def _show(array: np.ndarray) -> str:
    with np.printoptions(threshold=20, edgeitems=3, precision=4):
        return np.array2string(array, separator=", ").replace("\n", "")
