# SPDX-License-Identifier: Apache-2.0
"""Triton's RPCs beyond inference, through the stack's control service: one Triton server's answers from every
worker, with tritonclient as a Triton user calls them."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from triton_dynamo.client.kserve import to_infer_inputs

from .processes import SAMPLE_MODELS, StackProcess


@pytest.fixture(params=["control_port", "one_port"])
def control(stack: StackProcess, request: pytest.FixtureRequest):
    """A Triton client of the control RPCs: on the control service's own port, and on the stack's KServe port where
    the one-port router routes them."""
    if request.param == "one_port" and not stack.proxied:
        pytest.skip("no one-port router here (scripts/test.sh builds one): the control RPCs are on their own port")
    client = grpcclient.InferenceServerClient(stack.control_url if request.param == "control_port" else stack.grpc_url)
    yield client
    client.close()


def test_one_port_serves_inference_and_every_triton_rpc(stack: StackProcess) -> None:
    if not stack.proxied:
        pytest.skip("no one-port router here (scripts/test.sh builds one): the control RPCs are on their own port")
    client = grpcclient.InferenceServerClient(stack.grpc_url)
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("identity")
        result = client.infer("identity", to_infer_inputs({"INPUT0": np.array([4, 5], np.int32)}))
        assert result.as_numpy("OUTPUT0").tolist() == [4, 5]
        assert client.get_model_config("identity").config.name == "identity"
        assert client.get_server_metadata().name.startswith("triton-dynamo/")
        assert client.get_model_repository_index().models
    finally:
        client.close()
    # the frontend's own port: inference, without the control RPCs
    direct = grpcclient.InferenceServerClient(f"127.0.0.1:{stack.frontend_port}")
    try:
        assert direct.infer("identity", to_infer_inputs({"INPUT0": np.array([6], np.int32)})).as_numpy("OUTPUT0") == 6
        with pytest.raises(InferenceServerException) as info:
            direct.get_server_metadata()
        assert info.value.status() == "StatusCode.UNIMPLEMENTED"
    finally:
        direct.close()


def test_server_metadata_names_the_stack_and_triton(control: grpcclient.InferenceServerClient) -> None:
    metadata = control.get_server_metadata(as_json=True)
    assert re.fullmatch(r"triton-dynamo/\d+\.\d+\.\d+.*", metadata["name"])
    assert metadata["version"] == "2.51.0"  # the wheel's Triton, as every worker reports it
    assert metadata["extensions"] == [
        "model_repository",
        "model_repository(unload_dependents)",
        "schedule_policy",
        "model_configuration",
        "classification",
        "sequence",
        "parameters",
        "statistics",
        "trace",
        "logging",
    ]


def worker_metric(url: str, name: str, model: str) -> int:
    """The sum of metric ``name`` for ``model`` on one worker's metrics port."""
    with urllib.request.urlopen(f"http://{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    pattern = rf'^{name}\{{[^}}]*model="{model}"[^}}]*\}} (\S+)$'
    return sum(int(float(m.group(1))) for m in re.finditer(pattern, text, re.MULTILINE))


def triton_successes(url: str, model: str) -> int:
    return worker_metric(url, "nv_inference_request_success", model)


def test_statistics_count_every_request_whichever_worker_served_it(
    stack: StackProcess, control: grpcclient.InferenceServerClient
) -> None:
    def success_count() -> int:
        [entry] = control.get_inference_statistics("identity", as_json=True)["model_stats"]
        return int(entry["inference_stats"]["success"].get("count", 0))

    workers = [f"127.0.0.1:{port}" for port in stack.worker_metrics_ports]
    before, before_each = success_count(), [triton_successes(w, "identity") for w in workers]
    frontend = grpcclient.InferenceServerClient(stack.grpc_url)
    try:
        for _ in range(10):
            frontend.infer("identity", to_infer_inputs({"INPUT0": np.array([1, 2, 3], np.int32)}))
    finally:
        frontend.close()
    served_each = [triton_successes(w, "identity") - b for w, b in zip(workers, before_each, strict=True)]
    assert sum(1 for served in served_each if served > 0) == 2, served_each  # both workers took part
    assert success_count() - before == 10
    everything = control.get_inference_statistics(as_json=True)["model_stats"]
    assert sorted(e["name"] for e in everything) == SAMPLE_MODELS
    [entry] = [e for e in everything if e["name"] == "identity"]
    assert entry["version"] == "1" and int(entry["last_inference"]) > 0
    assert [b["batch_size"] for b in entry["batch_stats"]] == ["1"]  # tritonclient's JSON writes uint64 as text


def test_statistics_of_an_unknown_model_are_refused_as_triton_does(control: grpcclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as info:
        control.get_inference_statistics("no_such_model")
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "requested model 'no_such_model' is not available" in info.value.message()


def test_repository_index_lists_every_model_ready(control: grpcclient.InferenceServerClient) -> None:
    index = control.get_model_repository_index(as_json=True)["models"]
    assert [(m["name"], m["version"], m["state"]) for m in index] == [(name, "1", "READY") for name in SAMPLE_MODELS]


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_system_shared_memory_status(),
        lambda c: c.register_system_shared_memory("r", "/r", 16),
        lambda c: c.get_cuda_shared_memory_status(),
        lambda c: c.unregister_cuda_shared_memory(),
    ],
)
def test_shared_memory_is_refused_with_the_reason(control: grpcclient.InferenceServerClient, call) -> None:
    with pytest.raises(InferenceServerException) as info:
        call(control)
    assert info.value.status() == "StatusCode.UNIMPLEMENTED"
    assert "shared memory is not supported by triton-dynamo" in info.value.message()


def test_inference_sent_to_the_control_port_names_the_frontend(stack: StackProcess) -> None:
    control = grpcclient.InferenceServerClient(stack.control_url)
    with pytest.raises(InferenceServerException) as info:
        control.infer("identity", to_infer_inputs({"INPUT0": np.array([1], np.int32)}))
    control.close()
    assert info.value.status() == "StatusCode.UNIMPLEMENTED"
    assert stack.grpc_url in info.value.message()


def compute_count(url: str, model: str) -> int:
    """How many requests of ``model`` one worker timed with Triton's trace."""
    return worker_metric(url, "triton_dynamo_compute_duration_seconds_count", model)


def test_trace_settings_decide_which_requests_every_worker_traces(
    stack: StackProcess, control: grpcclient.InferenceServerClient
) -> None:
    assert control.get_trace_settings(as_json=True)["settings"] == {
        "trace_level": {"value": ["TIMESTAMPS"]},
        "trace_rate": {"value": ["1"]},
        "trace_count": {"value": ["-1"]},
        "log_frequency": {"value": ["0"]},
        "trace_mode": {"value": ["opentelemetry"]},
        "trace_file": {"value": [""]},
    }
    workers = [f"127.0.0.1:{port}" for port in stack.worker_metrics_ports]
    frontend = grpcclient.InferenceServerClient(stack.grpc_url)
    inputs = to_infer_inputs({"INPUT0": np.array([1], np.int32)})
    try:
        answer = control.update_trace_settings("identity", {"trace_level": ["OFF"]}, as_json=True)
        assert answer["settings"]["trace_level"] == {"value": ["OFF"]}
        assert control.get_trace_settings(as_json=True)["settings"]["trace_level"] == {"value": ["TIMESTAMPS"]}
        before = [compute_count(w, "identity") for w in workers]
        for _ in range(8):  # round-robin: each worker gets some
            frontend.infer("identity", inputs)
        assert [compute_count(w, "identity") for w in workers] == before  # no worker traced them
    finally:
        answer = control.update_trace_settings("identity", {"trace_level": None}, as_json=True)
        frontend.close()
    assert answer["settings"]["trace_level"] == {"value": ["TIMESTAMPS"]}  # back to the worker's setting
    with pytest.raises(InferenceServerException) as info:
        control.update_trace_settings(settings={"trace_file": "/tmp/t.json"})
    assert info.value.status() == "StatusCode.UNIMPLEMENTED"
    assert "trace file location can not be updated through network protocol" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        control.update_trace_settings("no_such_model", {"trace_rate": "2"})
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_log_settings_are_read_and_changed_on_every_worker(control: grpcclient.InferenceServerClient) -> None:
    before = control.get_log_settings(as_json=True)["settings"]
    assert before["log_info"] == {"bool_param": True} and before["log_file"] == {"string_param": ""}
    try:
        after = control.update_log_settings({"log_info": False, "log_format": "ISO8601"}, as_json=True)["settings"]
        assert after["log_info"] == {"bool_param": False}
        assert after["log_format"] == {"string_param": "ISO8601"}
        assert control.get_log_settings(as_json=True)["settings"] == after
    finally:
        control.update_log_settings({"log_info": True, "log_format": "default"})
    assert control.get_log_settings(as_json=True)["settings"] == before
    with pytest.raises(InferenceServerException) as info:
        control.update_log_settings({"log_file": "/tmp/l.txt"})
    assert info.value.status() == "StatusCode.UNIMPLEMENTED"
    verbose = control.update_log_settings({"log_verbose_level": 1}, as_json=True)["settings"]
    assert verbose["log_verbose_level"] == {"uint32_param": 1}
    control.update_log_settings({"log_verbose_level": 0})


def run_models(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "triton_dynamo", "models", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_models_lists_the_repository_with_each_models_state(stack: StackProcess) -> None:
    url = stack.grpc_url if stack.proxied else stack.control_url
    rows = [line.split() for line in run_models("--url", url).splitlines()[1:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [(name, "1", "READY") for name in SAMPLE_MODELS]
    assert "INPUT0 INT32 [-1]" in run_models("--url", url)
    # the frontend's own port has no control RPCs: the models it routes, from its metrics port
    own = run_models(
        "--url",
        f"127.0.0.1:{stack.frontend_port or stack.grpc_port}",
        "--metrics-url",
        f"http://127.0.0.1:{stack.metrics_port}",
    )
    if stack.proxied:
        assert own.startswith("(no control RPCs at")
        assert {line.split()[0] for line in own.splitlines()[2:]} == set(SAMPLE_MODELS)


def test_models_rpcs_names_who_answers_every_rpc_of_tritons_service() -> None:
    table = run_models("--rpcs")
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    # every method of Triton's service, and gRPC's health check
    assert len(rows) == len(service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods) + 1
    assert "control service" in rows["grpc.health.v1.Health/Check"]
    assert "frontend" in rows["ModelInfer"] and "control service" in rows["RepositoryModelLoad"]
    assert "refused" in rows["CudaSharedMemoryRegister"]
