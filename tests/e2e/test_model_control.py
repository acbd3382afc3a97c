# SPDX-License-Identifier: Apache-2.0
"""RepositoryModelLoad and RepositoryModelUnload through the stack (file and etcd discovery), with tritonclient:
every worker loads or unloads, the frontend starts or stops routing, and a worker restarted afterwards serves the
fleet's set without anyone asking.

Leaves the stack as it found it: every model loaded (the test_worker_failure module after it counts them).
"""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from triton_dynamo.client.kserve import to_infer_inputs

from .processes import StackProcess

MODEL = "string_ops"


@pytest.fixture
def client(stack: StackProcess):
    url = stack.grpc_url if stack.proxied else stack.control_url
    control = grpcclient.InferenceServerClient(url)
    yield control
    control.load_model(MODEL)  # as every other test expects to find it
    control.close()


def served_models(stack: StackProcess, index: int) -> list[str]:
    return json.loads((stack.state_dir / f"worker-{index}.ready").read_text()).get("models", [])


def index_entry(client: grpcclient.InferenceServerClient, name: str) -> dict:
    [entry] = [e for e in client.get_model_repository_index(as_json=True)["models"] if e["name"] == name]
    return entry


def upper(stack: StackProcess, words: list[bytes]) -> list[bytes]:
    frontend = grpcclient.InferenceServerClient(stack.grpc_url)
    try:
        inputs = to_infer_inputs({"TEXT": np.array(words, dtype=object)})
        return frontend.infer(MODEL, inputs).as_numpy("UPPER").tolist()
    finally:
        frontend.close()


def restart_worker(stack: StackProcess, index: int) -> None:
    seen = len(stack.lines)
    os.kill(stack.worker_pids()[index], signal.SIGKILL)
    stack.wait_for_line(rf"worker-{index} started \(pid", 20, after=seen)
    stack.wait_whole(timeout_s=90)


def test_unload_then_load_on_every_worker_and_a_restarted_worker_follows(
    stack: StackProcess, client: grpcclient.InferenceServerClient
) -> None:
    frontend = grpcclient.InferenceServerClient(stack.grpc_url)
    try:
        client.unload_model(MODEL)
        assert index_entry(client, MODEL) == {
            "name": MODEL,
            "version": "1",
            "state": "UNAVAILABLE",
            "reason": "unloaded",
        }
        assert not frontend.is_model_ready(MODEL)  # the frontend stopped routing it before unload_model returned
        with pytest.raises(InferenceServerException) as info:
            upper(stack, [b"x"])
        assert info.value.status() == "StatusCode.NOT_FOUND"
        assert all(MODEL not in served_models(stack, i) for i in range(2))

        restart_worker(stack, 0)  # started after the unload: leaves the model out, though its repository has it
        assert MODEL not in served_models(stack, 0)
        assert index_entry(client, MODEL)["state"] == "UNAVAILABLE"

        client.load_model(MODEL)
        assert frontend.is_model_ready(MODEL)  # routed as soon as load_model returns, as with one Triton
        assert upper(stack, [b"ok"]) == [b"OK"]
        assert index_entry(client, MODEL) == {"name": MODEL, "version": "1", "state": "READY"}
        assert all(MODEL in served_models(stack, i) for i in range(2))

        restart_worker(stack, 1)  # started after the load: serves the model again, nobody asked it to
        assert MODEL in served_models(stack, 1)
        assert index_entry(client, MODEL)["state"] == "READY"
    finally:
        frontend.close()


def test_a_load_every_worker_refuses_answers_tritons_status_and_changes_nothing(
    stack: StackProcess, client: grpcclient.InferenceServerClient
) -> None:
    before = client.get_model_repository_index(as_json=True)
    with pytest.raises(InferenceServerException) as info:
        client.load_model("no_such_model")
    assert info.value.status() == "StatusCode.INTERNAL"
    assert "failed to load 'no_such_model'" in info.value.message()
    assert client.get_model_repository_index(as_json=True) == before
    restarted_with = served_models(stack, 0)
    assert "no_such_model" not in restarted_with


def test_file_overrides_are_refused_with_the_reason(client: grpcclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.load_model(MODEL, config="{}", files={"file:1/model.py": b"pass"})
    assert info.value.status() == "StatusCode.UNIMPLEMENTED"
    assert "model repository it was started on" in info.value.message()


def test_inference_keeps_working_through_a_reload(
    stack: StackProcess, client: grpcclient.InferenceServerClient
) -> None:
    started = time.monotonic()
    client.load_model(MODEL)  # loaded already: Triton reloads only what changed, and the workers keep serving it
    assert time.monotonic() - started < 30
    assert upper(stack, [b"ab", b"c"]) == [b"AB", b"C"]
