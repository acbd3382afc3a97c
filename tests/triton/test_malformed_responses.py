# SPDX-License-Identifier: Apache-2.0
"""A response the binding cannot read fails its own request with a clear error, and the loop's event channel keeps
draining: a native backend that lies about its outputs' shapes (tests/triton/lying_identity.c) sends a fixed-size
output with fewer bytes than its shape needs and a BYTES output with fewer elements than its shape says, among
requests to an honest model. Run in a process of its own, with its own Triton."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import MODEL_REPO
from triton_dynamo.triton._build_shim import compile_shim

ROOT = MODEL_REPO.parent

CHILD = """
import asyncio, json, sys
import numpy as np
from triton_dynamo.triton import Options, Server, TritonError

async def main():
    server = Server(Options(model_repository=sys.argv[1], log_info=False))
    await asyncio.to_thread(server.start, wait_until_ready=True, timeout_s=120)

    async def first(model, inputs):
        try:
            [response] = [r async for r in server.model(model).async_infer(inputs)]
            return response.outputs["OUTPUT0"].tolist()
        except TritonError as exc:
            return [exc.code_name, exc.message]

    data = np.arange(4, dtype=np.float32)
    text = np.array([b"ab", b"c"], dtype=object)
    calls = []
    for i in range(20):
        calls += [first("identity_fp32", {"INPUT0": data}), first("lying_fp32", {"INPUT0": data}),
                  first("lying_bytes", {"INPUT0": text})]
    answers = await asyncio.wait_for(asyncio.gather(*calls), 60)
    after = await asyncio.wait_for(asyncio.gather(*(first("identity_fp32", {"INPUT0": data}) for _ in range(200))), 60)
    print(json.dumps({"good": answers[0::3], "fp32": answers[1::3], "bytes": answers[2::3], "after": after}))
    await asyncio.to_thread(server.stop)

asyncio.run(main())
"""


def _lying_model(repo: Path, name: str, data_type: str) -> None:
    model = repo / name
    (model / "1").mkdir(parents=True)
    compile_shim(model / "libtriton_td_lying.so", source=Path(__file__).with_name("lying_identity.c"))
    (model / "config.pbtxt").write_text(
        f'name: "{name}"\nbackend: "td_lying"\nmax_batch_size: 0\n'
        f'input [ {{ name: "INPUT0" data_type: {data_type} dims: [ -1 ] }} ]\n'
        f'output [ {{ name: "OUTPUT0" data_type: {data_type} dims: [ -1 ] }} ]\n'
        "instance_group [ { kind: KIND_CPU count: 1 } ]\n"
    )


def test_an_unreadable_response_fails_alone_and_the_channel_keeps_draining(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _common import native_identity_repo

    repo = native_identity_repo(tmp_path / "repo")
    _lying_model(repo, "lying_fp32", "TYPE_FP32")
    _lying_model(repo, "lying_bytes", "TYPE_STRING")
    done = subprocess.run([sys.executable, "-c", CHILD, str(repo)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert answers["good"] == [[0.0, 1.0, 2.0, 3.0]] * 20
    for model in ("fp32", "bytes"):
        for code, message in answers[model]:
            assert code == "INTERNAL", message
            assert f"model 'lying_{model}' sent a response that cannot be read" in message
    assert answers["after"] == [[0.0, 1.0, 2.0, 3.0]] * 200
