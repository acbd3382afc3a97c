# SPDX-License-Identifier: Apache-2.0
"""The local stack's pure parts: its processes' command lines, configuration checks, discovery clean-up."""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path

import pytest

from triton_dynamo.errors import ConfigurationError
from triton_dynamo.stack.config import StackConfig
from triton_dynamo.stack.discovery import forget_in_file_store, instance_id
from triton_dynamo.stack.launcher import PROXY, build_specs, ready_file
from triton_dynamo.stack.proxy import CONTROL_PATHS, find_grpc_router, find_nghttpx
from triton_dynamo.stack.readiness import served_models

REPO = Path(__file__).resolve().parents[2] / "model_repo"


def dynamo_specs(config: StackConfig, state_dir: Path, environ: dict) -> list:
    """The processes that run Dynamo's runtime (all but the proxy)."""
    return [spec for spec in build_specs(config, state_dir, environ=environ) if spec.name != PROXY]


def test_specs_run_the_frontend_and_each_worker_on_loopback(tmp_path: Path) -> None:
    c = StackConfig(
        model_repository=REPO,
        workers=2,
        grpc_port=9001,
        metrics_port=9002,
        worker_system_port=9100,
        worker_metrics_port=9200,
        model_names=("identity",),
        proxy="none",
    )
    frontend, control, *workers = build_specs(c, tmp_path, environ={})
    assert frontend.argv[1:4] == ["-m", "dynamo.frontend", "--kserve-grpc-server"]
    assert control.argv[1:4] == ["-m", "triton_dynamo", "control"]
    assert control.argv[control.argv.index("--port") + 1] == "8003"
    assert control.argv[control.argv.index("--discovery-backend") + 1] == "file"
    assert control.env["DYN_FILE_KV"] == frontend.env["DYN_FILE_KV"]
    assert frontend.argv[frontend.argv.index("--http-port") + 1] == "9001"
    assert frontend.env["DYN_TCP_RPC_HOST"] == "127.0.0.1"
    assert frontend.env["DYN_FILE_KV"] == str(tmp_path / "discovery")
    assert frontend.env["DYN_RUNTIME_NUM_WORKER_THREADS"] == "4"
    assert [w.name for w in workers] == ["worker-0", "worker-1"]
    for index, worker in enumerate(workers):
        argv = worker.argv
        assert argv[argv.index("--system-port") + 1] == str(9100 + index)
        assert argv[argv.index("--metrics-port") + 1] == str(9200 + index)
        assert argv[argv.index("--ready-file") + 1] == str(ready_file(tmp_path, index))
        assert argv[argv.index("--model-name") + 1] == "identity"
    # the user's own thread count wins
    frontend, *_ = build_specs(c, tmp_path, environ={"DYN_RUNTIME_NUM_WORKER_THREADS": "8"})
    assert "DYN_RUNTIME_NUM_WORKER_THREADS" not in frontend.env


def test_per_request_log_lines_are_quiet_unless_the_user_sets_dyn_log(tmp_path: Path) -> None:
    c = StackConfig(model_repository=REPO, workers=2)
    for spec in dynamo_specs(c, tmp_path, environ={}):
        directives = spec.env["DYN_LOG"].split(",")
        assert directives[0] == "info"  # everything else Dynamo says stays
        assert "dynamo_runtime::pipeline::network::ingress::push_handler=warn" in directives
    for spec in dynamo_specs(c, tmp_path, environ={"DYN_LOG": "debug"}):
        assert "DYN_LOG" not in spec.env  # inherited from the user's environment as it is


def test_dynamo_writes_its_log_files_without_colour_unless_the_user_says(tmp_path: Path) -> None:
    c = StackConfig(model_repository=REPO)
    assert all(spec.env["DYN_SDK_DISABLE_ANSI_LOGGING"] == "1" for spec in dynamo_specs(c, tmp_path, environ={}))
    for spec in dynamo_specs(c, tmp_path, environ={"DYN_SDK_DISABLE_ANSI_LOGGING": "0"}):
        assert "DYN_SDK_DISABLE_ANSI_LOGGING" not in spec.env


def test_tracing_reaches_every_process(tmp_path: Path) -> None:
    c = StackConfig(model_repository=REPO, otlp_endpoint="http://127.0.0.1:4317")
    for spec in dynamo_specs(c, tmp_path, environ={}):
        assert spec.env["OTEL_EXPORT_ENABLED"] == "1"
        assert spec.env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == "http://127.0.0.1:4317"
        # one ratio for Dynamo's sampler and the worker SDK's, which follows the frontend's decision
        assert spec.env["OTEL_TRACES_SAMPLE_RATIO"] == spec.env["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
        assert spec.env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        # Dynamo's log records follow its spans, unless the user sends them elsewhere
        assert spec.env["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"] == "http://127.0.0.1:4317"
    for spec in dynamo_specs(c, tmp_path, environ={"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:4317"}):
        assert "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT" not in spec.env  # inherited as it is


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"workers": 0}, "at least 1"),
        ({"grpc_port": 9002, "metrics_port": 9002}, "overlap"),
        ({"worker_system_port": 32767, "workers": 2}, "signed 16-bit"),
        ({"model_repository": Path("/nonexistent")}, "is not a directory"),
        ({"trace_sample_ratio": 1.5}, "between 0 and 1"),
    ],
)
def test_invalid_configurations_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        StackConfig(**{"model_repository": REPO, **overrides})


def test_flags_and_environment() -> None:
    c = StackConfig.from_args(
        ["--workers", "3"], env={"TRITON_DYNAMO_GRPC_PORT": "9999", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317"}
    )
    assert (c.workers, c.grpc_port, c.otlp_endpoint) == (3, 9999, "http://x:4317")
    with pytest.raises(ConfigurationError, match="--discovery / TRITON_DYNAMO_DISCOVERY"):
        StackConfig.from_args([], env={"TRITON_DYNAMO_DISCOVERY": "zookeeper"})


def test_ready_file_phases(tmp_path: Path) -> None:
    path = tmp_path / "w.ready"
    path.write_text(json.dumps({"pid": 1, "instance_id": 0xABC}))
    assert instance_id(path) == 0xABC and served_models(path) is None
    path.write_text(json.dumps({"pid": 1, "instance_id": 0xABC, "models": ["identity"]}))
    assert served_models(path) == {"identity"}
    assert instance_id(tmp_path / "missing") is None


def test_forget_removes_only_the_dead_instance(tmp_path: Path) -> None:
    def key(path: str) -> Path:
        file = tmp_path / "v1" / path.split("/")[0] / urllib.parse.quote(path.split("/", 1)[1], safe="")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text("{}")
        return file

    dead = [
        key("instances/triton/worker/identity_1/ef042c532947ba51"),
        key("mdc/triton/worker/identity_1/ef042c532947ba51"),
    ]
    alive = key("instances/triton/worker/identity_1/0a1b2c3d4e5f6071")
    assert forget_in_file_store(tmp_path, 0xEF042C532947BA51) == 2
    assert not any(p.exists() for p in dead) and alive.exists()


def routed_specs(tmp_path: Path, proxy: str) -> dict:
    """The stack's processes with a router on 9001: the frontend moves to 9011 behind it, the control service is on
    9003."""
    c = StackConfig(model_repository=REPO, grpc_port=9001, frontend_port=9011, control_port=9003, proxy=proxy)
    specs = {spec.name: spec for spec in build_specs(c, tmp_path, environ={})}
    frontend = specs["frontend"].argv
    assert frontend[frontend.index("--http-port") + 1] == "9011"
    return specs


@pytest.mark.skipif(find_nghttpx() is None, reason="nghttpx is not installed (scripts/test.sh installs it)")
def test_nghttpx_takes_the_kserve_port_and_routes_the_control_methods(tmp_path: Path) -> None:
    specs = routed_specs(tmp_path, "nghttpx")
    config_path = tmp_path / "nghttpx" / "nghttpx.conf"
    assert specs[PROXY].argv[1:] == [f"--conf={config_path}"]
    lines = config_path.read_text().splitlines()
    assert "frontend=127.0.0.1,9001;no-tls" in lines
    assert "backend=127.0.0.1,9011;/;proto=h2" in lines
    (control,) = [line for line in lines if line.startswith("backend=127.0.0.1,9003;")]
    patterns, protocol = control.removeprefix("backend=127.0.0.1,9003;").split(";")
    assert patterns.split(":") == list(CONTROL_PATHS)
    assert protocol == "proto=h2"


@pytest.mark.skipif(find_grpc_router() is None, reason="grpc-router is not built (scripts/test.sh builds it)")
def test_grpc_router_is_the_first_choice_and_routes_the_control_methods(tmp_path: Path) -> None:
    argv = routed_specs(tmp_path, "auto")[PROXY].argv
    assert argv[0] == find_grpc_router()
    assert argv[1:7] == ["--listen", "127.0.0.1:9001", "--frontend", "127.0.0.1:9011", "--control", "127.0.0.1:9003"]
    assert argv[7::2] == ["--control-path"] * len(CONTROL_PATHS) and argv[8::2] == list(CONTROL_PATHS)


def test_auto_falls_back_to_nghttpx_then_to_no_router(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("triton_dynamo.stack.launcher.find_grpc_router", lambda: None)
    monkeypatch.setattr("triton_dynamo.stack.launcher.find_nghttpx", lambda: "/usr/sbin/nghttpx")
    auto = StackConfig(model_repository=REPO, proxy="auto")
    specs = {spec.name: spec for spec in build_specs(auto, tmp_path, environ={})}
    assert specs[PROXY].argv[0] == "/usr/sbin/nghttpx"
    monkeypatch.setattr("triton_dynamo.stack.launcher.find_nghttpx", lambda: None)
    assert PROXY not in {spec.name for spec in build_specs(auto, tmp_path, environ={})}


@pytest.mark.parametrize(
    ("proxy", "hint"),
    [("nghttpx", "apt-get install nghttp2-proxy"), ("grpc-router", "bash scripts/build-router.sh")],
)
def test_asking_for_a_router_that_is_not_here_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, proxy: str, hint: str
) -> None:
    monkeypatch.setattr("triton_dynamo.stack.launcher.find_nghttpx", lambda: None)
    monkeypatch.setattr("triton_dynamo.stack.launcher.find_grpc_router", lambda: None)
    c = StackConfig(model_repository=REPO, grpc_port=9001, frontend_port=9011, proxy=proxy)
    with pytest.raises(ConfigurationError, match=re.escape(hint)):
        build_specs(c, tmp_path, environ={})


def test_without_the_proxy_the_frontend_keeps_the_kserve_port(tmp_path: Path) -> None:
    c = StackConfig(model_repository=REPO, grpc_port=9001, frontend_port=9011, proxy="none")
    specs = {spec.name: spec for spec in build_specs(c, tmp_path, environ={})}
    assert PROXY not in specs
    assert specs["frontend"].argv[specs["frontend"].argv.index("--http-port") + 1] == "9001"
