# SPDX-License-Identifier: Apache-2.0
"""The stack against plain Triton 2.51 (the wheel's own ``tritonserver``), call by call, field by field: each Triton
RPC beyond inference runs against both, on two copies of one repository, and the answers must be equal except where
a difference is documented here (and in the README's table). The whole sequence runs twice: with the stack's workers
found in a folder, and in etcd (NATS as the request plane).

The calls run in order (a module of steps): the repository changes on disk between them (a new version directory),
and each step sees what the ones before did, on both sides.

Documented differences, each asserted as it is (so that one that disappears or changes shows):
- ``ServerMetadata``: ``name`` is ``triton-dynamo/<version>``; the extensions are those the stack supports (no
  shared memory or binary tensor data).
- A request's ``model_version`` does not reach the workers (Dynamo 1.6.1's frontend drops it): a version that is
  not loaded is served by the latest, and ``ModelReady`` says ready for any version.
- ``RepositoryModelUnload`` returns once every worker has unloaded the model; Triton returns while it is still
  ``UNLOADING``. Compared once both have settled.
- ``TraceSetting``: the defaults are the worker's (every request traced, with TIMESTAMPS, as OpenTelemetry spans).
- Shared-memory RPCs: refused with the reason.
- An inference request refused by a worker: Dynamo's frontend answers INTERNAL for every worker error; the message
  starts with the real status (``[INVALID_ARGUMENT]``) and has Triton's words.
- Classification of a BYTES output: refused by the stack, with the words of Triton's later sources; Triton 2.51's
  own server dies of it (SIGFPE).
- Compressed inference requests (tritonclient's ``compression_algorithm``, gzip or deflate): Dynamo 1.6.1's
  frontend refuses them (UNIMPLEMENTED, naming the algorithm); Triton accepts them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from grpc_health.v1 import health_pb2
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from triton_dynamo.client.kserve import to_infer_inputs

from .processes import MODEL_REPO, StackProcess, free_ports, start_etcd, start_nats, start_stack

sys.path.insert(0, str(MODEL_REPO.parent / "benchmarks"))
from _common import start_triton_binary, stop_processes

MODELS = ("identity", "add_sub", "string_ops")
VERSIONED = "versioned"  # identity's model, whose version 2 appears on disk during the test


PARAMETERS = "parameters"  # answers with the request parameters its model sees, as JSON
PARAMETERS_CONFIG = """name: "parameters"
backend: "python"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_STRING dims: [ 1 ] } ]
"""
PARAMETERS_MODEL = """import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [
            pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUTPUT0", np.array([request.parameters().encode()], dtype=np.object_))]
            )
            for request in requests
        ]
"""

SEQUENCE = "accumulate"  # a stateful model: each sequence's running sum, kept in the model instance
SEQUENCE_CONFIG = """name: "accumulate"
backend: "python"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 1 ] } ]
sequence_batching {
  max_sequence_idle_microseconds: 60000000
  control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] } ]
}
instance_group [ { kind: KIND_CPU count: 1 } ]
"""
SEQUENCE_MODEL = """import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.sums = {}

    def execute(self, requests):
        responses = []
        for request in requests:
            key = request.correlation_id()
            start = int(pb_utils.get_input_tensor_by_name(request, "START").as_numpy().reshape(-1)[0])
            value = int(pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy().reshape(-1)[0])
            self.sums[key] = (0 if start else self.sums.get(key, 0)) + value
            total = pb_utils.Tensor("OUTPUT0", np.array([[self.sums[key]]], np.int32))
            responses.append(pb_utils.InferenceResponse([total]))
        return responses
"""


def make_repository(root: Path) -> Path:
    for name in MODELS:
        shutil.copytree(MODEL_REPO / name, root / name)
    shutil.copytree(MODEL_REPO / "identity", root / VERSIONED)
    config = root / VERSIONED / "config.pbtxt"
    config.write_text(config.read_text().replace('name: "identity"', f'name: "{VERSIONED}"'))
    # the classifier, with labels for one output, for the classification extension
    shutil.copytree(MODEL_REPO / "classifier", root / "classifier")
    config = root / "classifier" / "config.pbtxt"
    config.write_text(config.read_text().replace("dims: [ 10 ] }", 'dims: [ 10 ] label_filename: "labels.txt" }'))
    (root / "classifier" / "labels.txt").write_text("".join(f"digit-{i}\n" for i in range(10)))
    (root / PARAMETERS / "1").mkdir(parents=True)
    (root / PARAMETERS / "config.pbtxt").write_text(PARAMETERS_CONFIG)
    (root / PARAMETERS / "1" / "model.py").write_text(PARAMETERS_MODEL)
    (root / SEQUENCE / "1").mkdir(parents=True)
    (root / SEQUENCE / "config.pbtxt").write_text(SEQUENCE_CONFIG)
    (root / SEQUENCE / "1" / "model.py").write_text(SEQUENCE_MODEL)
    return root


@dataclass
class Pair:
    triton: grpcclient.InferenceServerClient
    stack: grpcclient.InferenceServerClient
    triton_repo: Path
    stack_repo: Path
    frontend: grpcclient.InferenceServerClient  # the stack's KServe port, for inference
    proxied: bool  # the one-port router routes every RPC there
    urls: tuple[str, str]  # Triton's and the stack's, for calls outside tritonclient
    frontend_url: str  # the stack's KServe port, for inference outside tritonclient

    def both(self, call: Callable[[grpcclient.InferenceServerClient], Any]) -> tuple[Any, Any]:
        return outcome(call, self.triton), outcome(call, self.stack)

    def on_disk(self, change: Callable[[Path], None]) -> None:
        change(self.triton_repo)
        change(self.stack_repo)


def outcome(call: Callable[[grpcclient.InferenceServerClient], Any], client: grpcclient.InferenceServerClient) -> Any:
    """The answer, or the error as (status, message): what a client can tell apart."""
    try:
        return call(client)
    except InferenceServerException as exc:
        return ("error", exc.status(), exc.message())


def raw_infer(url: str, request: service_pb2.ModelInferRequest) -> Any:
    """A request as any KServe client may send it (tritonclient checks some fields itself): the first output's first
    element as text, or the error as (status, message)."""
    with grpc.insecure_channel(url) as channel:
        try:
            answer = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
        except grpc.RpcError as exc:
            return exc.code().name, exc.details()
    raw = answer.raw_output_contents[0] if answer.raw_output_contents else None
    return raw[4:].decode() if raw is not None else answer.outputs[0].contents.bytes_contents[0].decode()


def assert_refused_alike(triton: Any, stack: Any) -> None:
    """Both refused the request: Triton with INVALID_ARGUMENT; the stack, as documented, with INTERNAL (Dynamo's
    frontend answers that for every worker error) and a message of the real status and Triton's words."""
    assert isinstance(triton, tuple) and triton[0] == "INVALID_ARGUMENT", triton
    assert stack[0] == "INTERNAL" and f"[INVALID_ARGUMENT] {triton[1]}" in stack[1], (triton, stack)


@pytest.fixture(scope="module", params=["file", "etcd"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Plain Triton and a stack of two workers, each on its own copy of the repository; the stack finds its workers
    in a folder (``file``), or in etcd with NATS as the request plane (``etcd``). Every step runs on each."""
    workdir = tmp_path_factory.mktemp(f"parity-{request.param}")
    triton_repo = make_repository(workdir / "triton-repo")
    stack_repo = make_repository(workdir / "stack-repo")
    (port,) = free_ports(1)
    services = []
    triton = start_triton_binary(["*"], port, repository=triton_repo)
    stack: StackProcess | None = None
    try:
        extra, env = ("--model-repository", str(stack_repo)), None
        if request.param == "etcd":
            etcd, nats = start_etcd(workdir), start_nats(workdir)
            services += [etcd, nats]
            extra += ("--discovery", "etcd", "--request-plane", "nats")
            env = {"ETCD_ENDPOINTS": f"http://127.0.0.1:{etcd.port}", "NATS_SERVER": f"nats://127.0.0.1:{nats.port}"}
        stack = start_stack(workdir / "stack", workers=2, extra_args=extra, env=env)
        url = stack.grpc_url if stack.proxied else stack.control_url
        yield Pair(
            grpcclient.InferenceServerClient(f"127.0.0.1:{port}"),
            grpcclient.InferenceServerClient(url),
            triton_repo,
            stack_repo,
            grpcclient.InferenceServerClient(stack.grpc_url),
            stack.proxied,
            (f"127.0.0.1:{port}", url),
            stack.grpc_url,
        )
    finally:
        if stack is not None:
            stack.stop()
        stop_processes([triton])
        for service in services:
            service.stop()


def settled_index(client: grpcclient.InferenceServerClient) -> list[dict]:
    """The repository index once nothing is UNLOADING on any worker (Triton answers a load or unload before an old
    version has gone)."""
    deadline = time.monotonic() + 30
    while True:
        models = client.get_model_repository_index(as_json=True).get("models", [])
        unloading = any("UNLOADING" in (m.get("state", "") + m.get("reason", "")) for m in models)
        if not unloading or time.monotonic() > deadline:
            return models


def infer(client: grpcclient.InferenceServerClient, model: str, version: str = "") -> Any:
    result = client.infer(model, to_infer_inputs({"INPUT0": np.array([1, 2], np.int32)}), model_version=version)
    return result.as_numpy("OUTPUT0").tolist()


def stats_shape(stats: dict) -> list[tuple]:
    """What two servers that served the same requests agree on: names, versions, counts and which fields exist."""
    shape = []
    for entry in stats.get("model_stats", []):
        counts = {k: v.get("count", "0") for k, v in entry.get("inference_stats", {}).items()}
        shape.append(
            (
                entry["name"],
                entry["version"],
                entry.get("inference_count"),
                entry.get("execution_count"),
                tuple(sorted(counts.items())),
                "last_inference" in entry,
            )
        )
    return sorted(shape)


def test_server_metadata(pair: Pair) -> None:
    triton, stack = pair.both(lambda c: c.get_server_metadata(as_json=True))
    assert stack["version"] == triton["version"] == "2.51.0"
    # documented: our name, and the extensions the stack supports, a subset of Triton's
    assert triton["name"] == "triton" and stack["name"].startswith("triton-dynamo/")
    assert set(stack["extensions"]) < set(triton["extensions"])
    assert set(triton["extensions"]) - set(stack["extensions"]) == {
        "system_shared_memory",
        "cuda_shared_memory",
        "binary_tensor_data",
    }


def health(url: str, method: str, service: str) -> Any:
    """gRPC's standard health service, as a Kubernetes probe or a load balancer calls it: the status's name, or the
    call's error code."""
    request = health_pb2.HealthCheckRequest(service=service).SerializeToString()
    with grpc.insecure_channel(url) as channel:
        path = f"/grpc.health.v1.Health/{method}"
        try:
            if method == "Check":
                answer = channel.unary_unary(path, response_deserializer=health_pb2.HealthCheckResponse.FromString)(
                    request, timeout=10
                )
            else:
                answer = next(
                    channel.unary_stream(path, response_deserializer=health_pb2.HealthCheckResponse.FromString)(
                        request, timeout=10
                    )
                )
        except grpc.RpcError as exc:
            return exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


@pytest.mark.parametrize("service", ["", "inference.GRPCInferenceService", "no.such.Service"])
@pytest.mark.parametrize("method", ["Check", "Watch"])
def test_grpc_health_checking(pair: Pair, method: str, service: str) -> None:
    triton, stack = (health(url, method, service) for url in pair.urls)
    assert stack == triton
    # Triton answers its readiness whatever service is named, and serves no Watch
    assert triton == ("SERVING" if method == "Check" else "UNIMPLEMENTED")


def test_repository_index_at_start(pair: Pair) -> None:
    triton, stack = pair.both(settled_index)
    assert stack == triton
    assert {m["name"] for m in triton} == {*MODELS, VERSIONED, PARAMETERS, "classifier", SEQUENCE}


@pytest.mark.parametrize(
    ("arguments", "model_sees"),
    [
        ({"parameters": {"custom": 5, "name": "x"}}, {"custom": 5, "name": "x"}),
        ({"priority": 1, "timeout": 100000, "parameters": {"custom": 5}}, {"custom": 5}),
        ({"sequence_id": 7, "sequence_start": True, "sequence_end": True}, {}),
        ({"sequence_id": "a-sequence"}, {}),
    ],
    ids=["custom", "priority and timeout", "sequence", "string sequence id"],
)
def test_reserved_request_parameters(pair: Pair, arguments: dict, model_sees: Any) -> None:
    """tritonclient's priority, timeout and sequence arguments travel as reserved request parameters: Triton sets the
    request's fields from them and the model does not see them; an unknown key starting with 'triton_' is refused."""

    def seen(client: grpcclient.InferenceServerClient) -> Any:
        inputs = to_infer_inputs({"INPUT0": np.array([1], np.int32)})
        return json.loads(client.infer(PARAMETERS, inputs, **arguments).as_numpy("OUTPUT0")[0])

    triton, stack = outcome(seen, pair.triton), outcome(seen, pair.frontend)
    assert triton == stack == model_sees


@pytest.mark.parametrize(
    ("key", "value", "model_sees"),
    [
        ("triton_enable_empty_final_response", service_pb2.InferParameter(bool_param=False), {}),
        ("triton_mine", service_pb2.InferParameter(int64_param=1), "INVALID_ARGUMENT"),
        ("sequence_start", service_pb2.InferParameter(int64_param=1), "INVALID_ARGUMENT"),
        ("priority", service_pb2.InferParameter(string_param="high"), "INVALID_ARGUMENT"),
    ],
    ids=["triton's own key", "another triton_ key", "sequence_start not a bool", "priority not a number"],
)
def test_reserved_request_parameters_tritonclient_would_not_send(
    pair: Pair, key: str, value: service_pb2.InferParameter, model_sees: Any
) -> None:
    """What other KServe clients may send (tritonclient refuses these keys itself)."""
    request = service_pb2.ModelInferRequest(model_name=PARAMETERS)
    request.parameters[key].CopyFrom(value)
    tensor = request.inputs.add(name="INPUT0", datatype="INT32", shape=[1])
    tensor.contents.int_contents.append(1)

    triton, stack = raw_infer(pair.urls[0], request), raw_infer(pair.frontend_url, request)
    if model_sees == "INVALID_ARGUMENT":
        assert_refused_alike(triton, stack)
    else:
        assert json.loads(triton) == json.loads(stack) == model_sees


def test_sequences_of_a_stateful_model(pair: Pair) -> None:
    """Interleaved sequences of a stateful model, each request one call: every request of a sequence reaches the
    Triton that holds the sequence's state, whichever worker the frontend picked."""
    sequences = (11, 12, 13, 14, "user-a", "user-b")

    def running_sums(client: grpcclient.InferenceServerClient) -> Any:
        sums: dict[Any, list[int]] = {s: [] for s in sequences}
        for step in range(1, 7):
            for sequence in sequences:
                answer = client.infer(
                    SEQUENCE,
                    to_infer_inputs({"INPUT0": np.array([[step]], np.int32)}),
                    sequence_id=sequence,
                    sequence_start=step == 1,
                    sequence_end=step == 6,
                )
                sums[sequence].append(int(answer.as_numpy("OUTPUT0").reshape(-1)[0]))
        return sums

    triton, stack = outcome(running_sums, pair.triton), outcome(running_sums, pair.frontend)
    assert stack == triton
    assert triton == {s: [1, 3, 6, 10, 15, 21] for s in sequences}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("version", ["", "1"])
def test_model_metadata_config_and_readiness(pair: Pair, model: str, version: str) -> None:
    for call in (
        lambda c: c.get_model_metadata(model, version, as_json=True),
        lambda c: c.get_model_config(model, version, as_json=True),
        lambda c: c.is_model_ready(model, version),
    ):
        triton, stack = pair.both(call)
        assert stack == triton


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_model_metadata("no_such_model", as_json=True),
        lambda c: c.get_model_config("identity", "7", as_json=True),
        lambda c: c.is_model_ready("identity", "7"),
    ],
    ids=["metadata of an unknown model", "config of an unknown version", "readiness of an unknown version"],
)
def test_model_rpcs_refuse_as_triton(pair: Pair, call: Callable) -> None:
    triton, stack = pair.both(call)
    assert stack == triton


def test_statistics_of_one_model_and_of_all(pair: Pair) -> None:
    for _ in range(3):
        assert infer(pair.triton, "identity") == infer(pair.frontend, "identity") == [1, 2]
    deadline = time.monotonic() + 10  # Triton counts on its own threads, a moment after the response
    while time.monotonic() < deadline:
        one = pair.both(lambda c: c.get_inference_statistics("identity", as_json=True))
        if all(stats_shape(side)[0][2] == "3" for side in one):
            break
        time.sleep(0.1)
    assert stats_shape(one[1]) == stats_shape(one[0])
    assert stats_shape(one[0])[0][2] == "3"  # three requests, on whichever worker
    every = pair.both(lambda c: c.get_inference_statistics(as_json=True))
    assert stats_shape(every[1]) == stats_shape(every[0])


@pytest.mark.parametrize(
    ("model", "inputs", "output", "count", "shape", "fields"),
    [
        (
            "classifier",
            {"FEATURES": np.linspace(-1, 1, 128, dtype=np.float32).reshape(2, 64)},
            "PROBABILITIES",
            3,
            (2, 3),
            3,  # value:index:label
        ),
        ("classifier", {"FEATURES": np.ones((1, 64), np.float32)}, "PROBABILITIES", 20, (1, 10), 3),
        ("classifier", {"FEATURES": np.ones((2, 64), np.float32)}, "CLASS", 2, (2, 1), 2),  # no labels: value:index
        ("identity", {"INPUT0": np.array([4, 9, 1, 7], np.int32)}, "OUTPUT0", 2, (2,), 2),
    ],
    ids=["batch of 2, labels", "more than there are", "one element", "a model that does not batch"],
)
def test_classification(
    pair: Pair, model: str, inputs: dict, output: str, count: int, shape: tuple, fields: int
) -> None:
    """Triton's classification extension: the top ``count`` elements as "value:index[:label]" strings."""

    def classified(client: grpcclient.InferenceServerClient) -> Any:
        wanted = [grpcclient.InferRequestedOutput(output, class_count=count)]
        answer = client.infer(model, to_infer_inputs(inputs), outputs=wanted).as_numpy(output)
        return answer.shape, answer.tolist()

    triton, stack = outcome(classified, pair.triton), outcome(classified, pair.frontend)
    assert stack == triton
    assert triton[0] == shape
    assert {len(entry.split(b":")) for entry in np.array(triton[1]).reshape(-1)} == {fields}


@pytest.mark.parametrize(
    ("model", "tensor", "output", "classification"),
    [
        ("identity", ("INPUT0", "INT32", b"\x01\x00\x00\x00"), "OUTPUT0", service_pb2.InferParameter(int64_param=-1)),
        ("identity", ("INPUT0", "INT32", b"\x01\x00\x00\x00"), "OUTPUT0", service_pb2.InferParameter(string_param="2")),
    ],
    ids=["a negative count", "a count that is a string"],
)
def test_classification_refused_as_triton(
    pair: Pair, model: str, tensor: tuple, output: str, classification: service_pb2.InferParameter
) -> None:
    name, datatype, raw = tensor
    request = service_pb2.ModelInferRequest(model_name=model)
    request.inputs.add(name=name, datatype=datatype, shape=[1])
    request.raw_input_contents.append(raw)
    request.outputs.add(name=output).parameters["classification"].CopyFrom(classification)
    assert_refused_alike(raw_infer(pair.urls[0], request), raw_infer(pair.frontend_url, request))


def classify_bytes_request() -> service_pb2.ModelInferRequest:
    """string_ops with its BYTES output UPPER to classify: Triton 2.51's own server dies of it (below)."""
    request = service_pb2.ModelInferRequest(model_name="string_ops")
    request.inputs.add(name="TEXT", datatype="BYTES", shape=[1])
    request.raw_input_contents.append(b"\x01\x00\x00\x00a")
    request.outputs.add(name="UPPER").parameters["classification"].int64_param = 2
    return request


def test_classification_of_a_bytes_output_is_refused(pair: Pair) -> None:
    """Documented difference: the stack refuses, names the type, and goes on serving (Triton dies: the next test)."""
    stack = raw_infer(pair.frontend_url, classify_bytes_request())
    assert stack[0] == "INTERNAL", stack
    assert "[INVALID_ARGUMENT] class result not available for output due to unsupported type 'BYTES'" in stack[1]
    assert infer(pair.frontend, "identity") == [1, 2]


def test_tritons_own_server_dies_classifying_a_bytes_output() -> None:
    """What the stack does differently, asserted as it is so that a fixed Triton shows: Triton 2.51's gRPC server
    dies of SIGFPE: it divides by the element size, 0 for BYTES (Triton's later sources check for 0 first and refuse
    in the words the stack uses)."""
    (port,) = free_ports(1)
    triton = start_triton_binary(["string_ops"], port)
    # Triton dead, its python backend stubs stay up (SIGTERM does not stop them): an hour later, each run had left one
    stubs = children(triton.pid)
    try:
        answer = raw_infer(f"127.0.0.1:{port}", classify_bytes_request())
        assert answer[0] == "UNAVAILABLE", answer
        assert triton.wait(timeout=30) == -signal.SIGFPE
    finally:
        stop_processes([triton])
        for stub in stubs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(stub, signal.SIGKILL)


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as stat:
                # the parent's pid is the second field after the command name, which is in parentheses
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_inference_statistics("identity", "999", as_json=True),
        lambda c: c.get_inference_statistics("no_such_model", as_json=True),
        lambda c: c.load_model("no_such_model"),
    ],
    ids=["unknown version", "unknown model", "load unknown"],
)
def test_refusals_are_tritons(pair: Pair, call: Callable) -> None:
    triton, stack = pair.both(call)
    assert triton[0] == "error"
    assert stack == triton


def test_a_new_version_directory_then_load_then_unload(pair: Pair) -> None:
    pair.on_disk(lambda repo: shutil.copytree(repo / VERSIONED / "1", repo / VERSIONED / "2"))
    triton, stack = pair.both(lambda c: c.load_model(VERSIONED))
    assert triton is None and stack is None
    triton, stack = pair.both(settled_index)
    assert stack == triton
    assert {(m["version"], m["state"]) for m in triton if m["name"] == VERSIONED} == {
        ("1", "UNAVAILABLE"),
        ("2", "READY"),
    }
    # the latest version serves a request that names none, on both
    assert infer(pair.triton, VERSIONED) == infer(pair.frontend, VERSIONED) == [1, 2]
    # documented: a version that is not loaded is refused by Triton and served by the stack
    triton_v1 = outcome(lambda c: infer(c, VERSIONED, "1"), pair.triton)
    assert triton_v1[:2] == ("error", "StatusCode.UNAVAILABLE")
    assert infer(pair.frontend, VERSIONED, "1") == [1, 2]
    assert outcome(lambda c: infer(c, VERSIONED, "999"), pair.triton)[:2] == ("error", "StatusCode.NOT_FOUND")
    # ModelReady is Triton's own where the proxy routes it to the control service; the frontend says ready for any
    # version
    assert not pair.triton.is_model_ready(VERSIONED, "999")
    assert pair.frontend.is_model_ready(VERSIONED, "999") is not pair.proxied

    triton, stack = pair.both(lambda c: c.unload_model(VERSIONED))
    assert triton is None and stack is None
    triton, stack = pair.both(settled_index)
    assert stack == triton
    missing = pair.both(lambda c: infer(c, VERSIONED))
    assert missing[0][:2] == missing[1][:2] == ("error", "StatusCode.NOT_FOUND")


def test_a_config_override(pair: Pair) -> None:
    config = pair.triton.get_model_config("add_sub", as_json=True)["config"]
    config["instance_group"] = [{"kind": "KIND_CPU", "count": 2}]
    triton, stack = pair.both(lambda c: c.load_model("add_sub", config=json.dumps(config)))
    assert triton is None and stack is None
    triton, stack = pair.both(lambda c: c.get_model_config("add_sub", as_json=True)["config"]["instance_group"])
    assert stack == triton
    assert triton[0]["count"] == 2


def test_trace_settings(pair: Pair) -> None:
    triton, stack = pair.both(lambda c: c.get_trace_settings(as_json=True)["settings"])
    assert set(stack) == set(triton)  # the same six settings
    # documented: the workers' defaults (every request traced, as OpenTelemetry spans)
    assert triton["trace_level"] == {"value": ["OFF"]} and stack["trace_level"] == {"value": ["TIMESTAMPS"]}
    assert stack["trace_mode"] == {"value": ["opentelemetry"]}
    # (Triton refuses trace_level TIMESTAMPS without a trace file, which the stack has no need of: spans leave by OTLP)
    changes = {"trace_rate": "7", "trace_count": "5", "log_frequency": "2"}
    triton, stack = pair.both(lambda c: c.update_trace_settings("identity", changes, as_json=True)["settings"])
    assert not isinstance(triton, tuple) and not isinstance(stack, tuple), (triton, stack)
    assert {k: stack[k] for k in changes} == {k: triton[k] for k in changes}
    triton, stack = pair.both(lambda c: c.update_trace_settings("identity", {"trace_rate": None}, as_json=True))
    assert not isinstance(stack, tuple), stack
    assert stack["settings"]["trace_rate"] == stack_default_rate(pair)
    for call in (
        lambda c: c.update_trace_settings(settings={"trace_file": "/tmp/t.json"}),
        lambda c: c.update_trace_settings(settings={"trace_count": "-2"}),
        lambda c: c.update_trace_settings("no_such_model", {"trace_rate": "2"}),
    ):
        triton, stack = pair.both(call)
        assert triton[0] == "error"
        assert stack[:2] == triton[:2]


def stack_default_rate(pair: Pair) -> dict:
    return pair.stack.get_trace_settings(as_json=True)["settings"]["trace_rate"]


def test_log_settings(pair: Pair) -> None:
    same = {"log_info": False, "log_warning": True, "log_error": True, "log_format": "ISO8601"}
    triton, stack = pair.both(lambda c: c.update_log_settings(same, as_json=True)["settings"])
    assert stack == triton
    triton, stack = pair.both(lambda c: c.get_log_settings(as_json=True)["settings"])
    assert stack == triton
    triton, stack = pair.both(lambda c: c.update_log_settings({"log_file": "/tmp/l.txt"}))
    assert triton[0] == "error" and stack == triton
    triton, stack = pair.both(lambda c: c.update_log_settings({"log_format": "bad"}))
    assert triton[0] == "error" and stack == triton
    triton, stack = pair.both(lambda c: c.update_log_settings({"log_verbose_level": 1}, as_json=True)["settings"])
    assert stack == triton and triton["log_verbose_level"] == {"uint32_param": 1}
    pair.both(lambda c: c.update_log_settings({"log_format": "default", "log_verbose_level": 0}))


def test_shared_memory(pair: Pair) -> None:
    triton, stack = pair.both(lambda c: c.get_system_shared_memory_status(as_json=True))
    assert triton == {}  # documented: Triton has none registered; the stack refuses with the reason
    assert stack[:2] == ("error", "StatusCode.UNIMPLEMENTED")


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_inference_requests(pair: Pair, algorithm: str) -> None:
    # Last: Triton counts these requests in its statistics and the stack never sees them.
    def compressed(client: grpcclient.InferenceServerClient) -> Any:
        inputs = to_infer_inputs({"INPUT0": np.array([1, 2], np.int32)})
        return client.infer("identity", inputs, compression_algorithm=algorithm).as_numpy("OUTPUT0").tolist()

    assert outcome(compressed, pair.triton) == [1, 2]
    # documented: the frontend, in the path of every inference request, does not decompress
    refused = f"Content is compressed with `{algorithm}` which isn't supported"
    assert outcome(compressed, pair.frontend) == ("error", "StatusCode.UNIMPLEMENTED", refused)
