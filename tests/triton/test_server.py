# SPDX-License-Identifier: Apache-2.0
"""The session's real Triton: health, the model index, metadata, configuration, statistics and metrics."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import numpy as np
import pytest
from tritonclient.grpc import model_config_pb2

from tests.conftest import ECHO_ND, MODEL_REPO, SAMPLE_MODELS, SLOW_QUEUED
from triton_dynamo.triton import Model, Options, Server, TritonError


async def _infer_once(model: Model, inputs: dict) -> None:
    responses = [r async for r in model.async_infer(inputs)]
    assert len(responses) == 1


def test_live_and_ready(triton_server: Server) -> None:
    assert triton_server.live()
    assert triton_server.ready()


def test_server_metadata(triton_server: Server) -> None:
    metadata = triton_server.metadata()
    assert metadata["name"] == "triton-dynamo"  # Options.server_id
    assert re.fullmatch(r"\d+\.\d+\.\d+", metadata["version"])
    assert "model_repository" in metadata["extensions"]


def test_model_index_lists_every_sample_model_ready(triton_server: Server) -> None:
    index = {entry["name"]: entry for entry in triton_server.model_index()}
    assert set(index) == {*SAMPLE_MODELS, ECHO_ND, SLOW_QUEUED}
    for name in SAMPLE_MODELS:
        assert index[name]["state"] == "READY", index[name]
        assert index[name]["version"] == "1"
    ready = {entry["name"] for entry in triton_server.model_index(ready_only=True)}
    assert ready == set(index)


def test_models_mapping(triton_server: Server) -> None:
    models = triton_server.models(exclude_not_ready=True)
    assert ("identity", 1) in models
    model = models[("identity", 1)]
    assert isinstance(model, Model)
    assert (model.name, model.version) == ("identity", 1)
    assert model.ready()


def test_every_sample_model_is_ready(triton_server: Server) -> None:
    for name in SAMPLE_MODELS:
        assert triton_server.model(name).ready(), name
        assert triton_server.model(name, 1).ready(), name


def test_unknown_model(triton_server: Server) -> None:
    model = triton_server.model("no_such_model")
    assert not model.ready()
    assert not triton_server.model("identity", 7).ready()
    with pytest.raises(TritonError) as info:
        model.metadata()
    assert info.value.code == TritonError.NOT_FOUND
    assert "no_such_model" in info.value.message


def test_identity_metadata(triton_server: Server) -> None:
    metadata = triton_server.model("identity").metadata()
    assert metadata["name"] == "identity"
    assert metadata["versions"] == ["1"]
    assert metadata["platform"] == "python"
    assert metadata["inputs"] == [{"name": "INPUT0", "datatype": "INT32", "shape": [-1]}]
    assert metadata["outputs"] == [{"name": "OUTPUT0", "datatype": "INT32", "shape": [-1]}]


def test_batched_model_metadata_has_batch_dimension(triton_server: Server) -> None:
    metadata = triton_server.model("add_sub").metadata()
    assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
        ("INPUT0", "FP32", [-1, 4]),
        ("INPUT1", "FP32", [-1, 4]),
    ]
    outputs = triton_server.model("classifier").metadata()["outputs"]
    assert [(o["name"], o["datatype"], o["shape"]) for o in outputs] == [
        ("PROBABILITIES", "FP32", [-1, 10]),
        ("CLASS", "INT64", [-1, 1]),
    ]


def test_config_dict(triton_server: Server) -> None:
    config = triton_server.model("add_sub").config()
    assert config["name"] == "add_sub"
    assert config["backend"] == "python"
    assert int(config["max_batch_size"]) == 64
    assert [(i["name"], i["data_type"], [int(d) for d in i["dims"]]) for i in config["input"]] == [
        ("INPUT0", "TYPE_FP32", [4]),
        ("INPUT1", "TYPE_FP32", [4]),
    ]
    assert "dynamic_batching" in config


@pytest.mark.parametrize(
    ("name", "max_batch_size", "inputs"),
    [
        ("identity", 0, [("INPUT0", model_config_pb2.TYPE_INT32, [-1])]),
        ("add_sub", 64, [("INPUT0", model_config_pb2.TYPE_FP32, [4]), ("INPUT1", model_config_pb2.TYPE_FP32, [4])]),
        ("classifier", 32, [("FEATURES", model_config_pb2.TYPE_FP32, [64])]),
        ("string_ops", 0, [("TEXT", model_config_pb2.TYPE_STRING, [-1])]),
        ("repeat", 0, [("VALUES", model_config_pb2.TYPE_INT32, [-1]), ("DELAY_MS", model_config_pb2.TYPE_INT32, [1])]),
    ],
)
def test_config_protobuf(triton_server: Server, name: str, max_batch_size: int, inputs: list) -> None:
    raw = triton_server.model(name).config_protobuf()
    assert isinstance(raw, bytes)
    config = model_config_pb2.ModelConfig.FromString(raw)
    assert config.name == name
    assert config.max_batch_size == max_batch_size
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == inputs
    assert config.backend == "python"
    assert config.model_transaction_policy.decoupled == (name == "repeat")


def test_decoupled(triton_server: Server) -> None:
    assert triton_server.model("repeat").decoupled is True
    assert triton_server.model("identity").decoupled is False
    assert triton_server.model("add_sub").decoupled is False


def _inference_count(model: Model) -> int:
    (stats,) = model.statistics()["model_stats"]
    return int(stats.get("inference_count", 0))


async def test_statistics_count_requests(triton_server: Server) -> None:
    model = triton_server.model("string_ops")
    (stats,) = model.statistics()["model_stats"]
    assert (stats["name"], stats["version"]) == ("string_ops", "1")
    before = _inference_count(model)
    success_before = int(stats["inference_stats"]["success"]["count"])
    await _infer_once(model, {"TEXT": np.array([b"stat"], dtype=object)})
    await _infer_once(model, {"TEXT": np.array([b"stat", b"s"], dtype=object)})
    deadline = time.monotonic() + 5
    while _inference_count(model) < before + 2 and time.monotonic() < deadline:  # Triton counts on its own thread
        await asyncio.sleep(0.01)
    (stats,) = model.statistics()["model_stats"]
    assert int(stats["inference_count"]) == before + 2
    assert int(stats["inference_stats"]["success"]["count"]) == success_before + 2
    assert int(stats["inference_stats"]["success"]["ns"]) > 0


def _metric(text: str, name: str, model: str) -> float | None:
    match = re.search(rf'^{name}{{model="{model}",version="1"}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else None


async def test_metrics(triton_server: Server) -> None:
    model = triton_server.model("identity")
    await _infer_once(model, {"INPUT0": np.arange(4, dtype=np.int32)})
    deadline = time.monotonic() + 5
    text = triton_server.metrics()
    while (_metric(text, "nv_inference_request_success", "identity") or 0) < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        text = triton_server.metrics()
    assert "# TYPE nv_inference_request_success counter" in text
    assert _metric(text, "nv_inference_request_success", "identity") >= 1
    assert _metric(text, "nv_inference_count", "identity") >= 1


def test_options_validation(tmp_path: Path) -> None:
    with pytest.raises(TritonError) as info:
        Options(model_repository=MODEL_REPO, model_control_mode="sometimes")
    assert info.value.code == TritonError.INVALID_ARG
    assert "sometimes" in info.value.message
    with pytest.raises(TritonError) as info:
        Options(model_repository=tmp_path / "missing")
    assert info.value.code == TritonError.INVALID_ARG
    assert str(tmp_path / "missing") in info.value.message
    with pytest.raises(TritonError) as info:
        Options(model_repository=MODEL_REPO, exit_timeout_s=-1)
    assert info.value.code == TritonError.INVALID_ARG


def test_options_repositories_resolve_paths() -> None:
    options = Options(model_repository=[MODEL_REPO, "s3://bucket/models"])
    assert options.repositories == [str(MODEL_REPO.resolve()), "s3://bucket/models"]
    assert Options(model_repository=str(MODEL_REPO)).repositories == [str(MODEL_REPO.resolve())]


def test_a_server_that_never_started() -> None:
    server = Server(Options(model_repository=MODEL_REPO))
    assert not server.live()
    assert not server.ready()
    assert not server.model("identity").ready()
    with pytest.raises(TritonError) as info:
        server.model_index()
    assert info.value.code == TritonError.UNAVAILABLE
    server.stop()  # a no-op, and safe
