# SPDX-License-Identifier: Apache-2.0
"""The Prometheus and Grafana files, checked without a running stack: promtool, the rule unit tests, the local config
of ``triton-dynamo up --observe``, and the generated dashboards."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from triton_dynamo.stack.prometheus import (
    default_rule_files,
    prometheus_command,
    render_local_config,
)

from .prom import DASHBOARDS_DIR, GRAFANA_DIR, PROMETHEUS_DIR, RULES_DIR, load_dashboards, panels, require_binary

COMPOSE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"


def promtool(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([require_binary("promtool"), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def test_promtool_checks_the_compose_config() -> None:
    out = promtool("check", "config", str(COMPOSE_CONFIG)).stdout
    assert "2 rule files found" in out, out


def test_promtool_checks_the_rules() -> None:
    promtool("check", "rules", *map(str, sorted(RULES_DIR.glob("*.yml"))))


def test_alert_unit_tests() -> None:
    promtool("test", "rules", str(PROMETHEUS_DIR / "tests" / "alerts_test.yml"))


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    alerts = {r["alert"] for g in yaml.safe_load((RULES_DIR / "alerts.yml").read_text())["groups"] for r in g["rules"]}
    tests = yaml.safe_load((PROMETHEUS_DIR / "tests" / "alerts_test.yml").read_text())["tests"]
    fired = {t["alertname"] for test in tests for t in test.get("alert_rule_test", []) if t.get("exp_alerts")}
    assert alerts == fired, alerts ^ fired


def test_compose_config_scrapes_every_service() -> None:
    config = yaml.safe_load(COMPOSE_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {
        "frontend",
        "worker",
        "etcd",
        "nats",
        "otel-collector",
        "tempo",
        "locust",
        "dcgm",
        "prometheus",
    }
    # Workers by DNS: `docker compose up --scale worker=N` needs no edit.
    assert jobs["worker"]["dns_sd_configs"] == [
        {"names": ["worker"], "type": "A", "port": 8200, "refresh_interval": "5s"}
    ]
    # Services that run only sometimes (load generator, GPU profile) by DNS too: no target, not a down one, without.
    assert jobs["locust"]["dns_sd_configs"][0]["names"] == ["locust-master", "locust-worker"]
    assert jobs["dcgm"]["dns_sd_configs"][0]["names"] == ["dcgm-exporter"]
    targets = {name: [t for s in job.get("static_configs", []) for t in s["targets"]] for name, job in jobs.items()}
    assert targets["frontend"] == ["frontend:8002"]
    assert targets["etcd"] == ["etcd:2379"]
    assert targets["nats"] == ["nats-exporter:7777"]
    assert targets["otel-collector"] == ["otel-collector:8888"]
    assert targets["tempo"] == ["tempo:3200"]
    assert config["rule_files"] == ["rules/*.yml"]


def test_local_config_is_valid_and_uses_the_same_rules(tmp_path: Path) -> None:
    rules = default_rule_files()
    assert rules == sorted(p.resolve() for p in RULES_DIR.glob("*.yml")) and len(rules) == 2
    text = render_local_config(
        "127.0.0.1:8002",
        ["127.0.0.1:8200", "127.0.0.1:8201"],
        1.5,
        rules,
        extra_jobs={"etcd": ["127.0.0.1:2379"], "prometheus": ["127.0.0.1:9090"]},
    )
    path = tmp_path / "prometheus.yml"
    path.write_text(text)
    out = promtool("check", "config", str(path)).stdout
    assert "2 rule files found" in out, out
    config = yaml.safe_load(text)
    assert config["global"]["scrape_interval"] == "1500ms"
    assert config["global"]["evaluation_interval"] == "1500ms"
    assert config["rule_files"] == [str(p) for p in rules]
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert jobs == {
        "frontend": ["127.0.0.1:8002"],
        "worker": ["127.0.0.1:8200", "127.0.0.1:8201"],
        "etcd": ["127.0.0.1:2379"],
        "prometheus": ["127.0.0.1:9090"],
    }
    # The same job names as the Compose config, which the rules and dashboards select on.
    compose_jobs = {job["job_name"] for job in yaml.safe_load(COMPOSE_CONFIG.read_text())["scrape_configs"]}
    assert set(jobs) <= compose_jobs


@pytest.mark.parametrize(
    ("seconds", "expected"), [(1, "1s"), (1.0, "1s"), (0.5, "500ms"), (15, "15s"), (2.25, "2250ms")]
)
def test_local_config_interval(seconds: float, expected: str) -> None:
    config = yaml.safe_load(render_local_config("h:1", ["h:2"], seconds, []))
    assert config["global"]["scrape_interval"] == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scrape_interval_s": 0}, "positive"),
        ({"scrape_interval_s": float("nan")}, "positive"),
        ({"workers": ["nohostport"]}, "host:port"),
        ({"extra_jobs": {"worker": ["h:3"]}}, "already scraped"),
    ],
)
def test_local_config_refuses_nonsense(kwargs: dict, message: str) -> None:
    args = {"frontend": "h:1", "workers": ["h:2"], "scrape_interval_s": 1.0, "rule_files": []} | kwargs
    with pytest.raises(ValueError, match=message):
        render_local_config(**args)


def test_prometheus_command(tmp_path: Path) -> None:
    command = prometheus_command(tmp_path / "p.yml", tmp_path / "data", 9191, binary="/usr/bin/prometheus")
    assert command[0] == "/usr/bin/prometheus"
    assert f"--config.file={tmp_path / 'p.yml'}" in command
    assert f"--storage.tsdb.path={tmp_path / 'data'}" in command
    assert "--web.listen-address=127.0.0.1:9191" in command
    assert "--enable-feature=exemplar-storage" in command
    assert any(arg.startswith("--storage.tsdb.retention.time=") for arg in command)
    with pytest.raises(ValueError):
        prometheus_command(tmp_path / "p.yml", tmp_path / "data", 0)
    # The flags are ones this Prometheus knows.
    help_text = subprocess.run([require_binary("prometheus"), "--help"], capture_output=True, text=True, timeout=30)
    help_text = help_text.stdout + help_text.stderr
    for arg in command[1:]:
        flag = arg.split("=", 1)[0]
        assert flag in help_text, flag


# ---------------------------------------------------------------------------------------------------------------
# Grafana


def _generator():
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA_DIR / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def test_committed_dashboards_are_what_the_script_generates() -> None:
    rendered = _generator().render()
    committed = {p.name: p.read_text() for p in DASHBOARDS_DIR.glob("*.json")}
    assert set(committed) == set(rendered)
    for name, content in rendered.items():
        assert committed[name] == content, f"{name} is stale: run python grafana/generate.py"


def test_generate_check_mode() -> None:
    result = subprocess.run(
        [sys.executable, str(GRAFANA_DIR / "generate.py"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_dashboards_are_well_formed() -> None:
    boards = load_dashboards()
    assert set(boards) == {
        "triton-dynamo-overview",
        "triton-dynamo-model",
        "triton-dynamo-internals",
        "triton-dynamo-infrastructure",
    }
    for uid, board in boards.items():
        ids = [p["id"] for p in panels(board)]
        assert len(ids) == len(set(ids)), uid
        titles = [p["title"] for p in panels(board) if p["type"] != "row"]
        assert len(titles) == len(set(titles)), f"{uid}: panel titles must be unique (the tests key on them)"
        for panel in panels(board):
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, (uid, panel["title"])
            for target in panel.get("targets", []):
                assert target["datasource"] == {"type": "prometheus", "uid": "prometheus"}
                assert target["expr"].strip()
        for variable in board["templating"]["list"]:
            assert variable["datasource"]["uid"] == "prometheus"


def test_latency_panels_ask_for_exemplars() -> None:
    for board in load_dashboards().values():
        for panel in panels(board):
            for target in panel.get("targets", []):
                if "triton_dynamo_request_duration_seconds_bucket" in target["expr"] and panel["type"] == "timeseries":
                    assert target.get("exemplar") is True, (board["uid"], panel["title"], target["refId"])


def test_gpu_panels_say_they_need_a_gpu() -> None:
    board = load_dashboards()["triton-dynamo-internals"]
    gpu = [
        p
        for p in panels(board)
        if any(m in t["expr"] for m in ("nv_gpu_", "nv_energy", "DCGM_") for t in p.get("targets", []))
    ]
    assert len(gpu) == 6
    for panel in gpu:
        assert "No data on CPU-only hosts" in panel["description"], panel["title"]
    assert any(p["type"] == "row" and "no data on CPU-only hosts" in p["title"] for p in panels(board))


def test_datasource_provisioning() -> None:
    config = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml").read_text())
    sources = {s["uid"]: s for s in config["datasources"]}
    assert set(sources) == {"prometheus", "tempo"}
    prometheus, tempo = sources["prometheus"], sources["tempo"]
    assert prometheus["type"] == "prometheus" and prometheus["url"] == "http://prometheus:9090"
    assert prometheus["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": "trace_id", "datasourceUid": "tempo", "urlDisplayLabel": "Open trace in Tempo"}
    ]
    assert tempo["type"] == "tempo" and tempo["url"] == "http://tempo:3200"
    # Grafana expands $VAR in provisioning files: PromQL's $__tags must be written $$__tags.
    for query in tempo["jsonData"]["tracesToMetrics"]["queries"]:
        assert "{$$__tags}" in query["query"]


def test_dashboard_provisioning() -> None:
    config = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
