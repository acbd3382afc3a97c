# SPDX-License-Identifier: Apache-2.0
"""Helpers of the observability tests: a real Prometheus process, its HTTP API, and the dashboards' queries."""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from triton_dynamo.stack.prometheus import find_prometheus, prometheus_command, render_local_config

from ..e2e.processes import stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO_ROOT / "services" / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
GRAFANA_DIR = REPO_ROOT / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"

MISSING = "{} is not installed: scripts/test.sh installs the Debian package prometheus (apt-get install prometheus)"


def require_binary(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``; fails the test (never skips) when it is missing."""
    import shutil

    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if name == "prometheus":
        found = found or find_prometheus()
    if found is None:
        pytest.fail(MISSING.format(name), pytrace=False)
    return found


class PrometheusError(RuntimeError):
    pass


@dataclass
class Prometheus:
    """A Prometheus process and its HTTP API."""

    proc: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params) -> object:
        query = urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=30) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
            raise PrometheusError(f"{path} {params}: {exc.code} {body.get('error', body)}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str, at: float) -> list[dict]:
        """The instant vector (or a scalar, as one sample) of ``expr`` at ``at`` (Unix seconds)."""
        data = self.api("/api/v1/query", query=expr, time=f"{at:.3f}")
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        if data["resultType"] != "vector":
            raise PrometheusError(f"{expr!r} gave a {data['resultType']}")
        return data["result"]

    def value(self, expr: str, at: float) -> float:
        """The single value of ``expr`` at ``at``."""
        result = self.query(expr, at)
        if len(result) != 1:
            raise AssertionError(f"{expr!r} has {len(result)} series, not 1: {result}")
        return float(result[0]["value"][1])

    def by_label(self, expr: str, label: str, at: float) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr, at)}

    def exemplars(self, expr: str, start: float, end: float) -> list[dict]:
        return self.api("/api/v1/query_exemplars", query=expr, start=f"{start:.3f}", end=f"{end:.3f}")

    def stop(self) -> None:
        stop_process(self.proc)


def start_prometheus(
    workdir: Path,
    port: int,
    *,
    frontend: str,
    workers: list[str],
    extra_jobs: dict[str, list[str]],
    scrape_interval_s: float = 1.0,
) -> Prometheus:
    """The Debian ``prometheus`` on a config from :func:`render_local_config` and the repository's rule files."""
    binary = require_binary("prometheus")
    rule_files = sorted(RULES_DIR.glob("*.yml"))
    config = workdir / "prometheus.yml"
    config.write_text(
        render_local_config(
            frontend,
            workers,
            scrape_interval_s,
            rule_files,
            extra_jobs={**extra_jobs, "prometheus": [f"127.0.0.1:{port}"]},
        )
    )
    log = workdir / "prometheus.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            prometheus_command(config, workdir / "prometheus-data", port, binary=binary),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    prometheus = Prometheus(proc, port, log)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return prometheus
        except OSError:
            pass
        if time.monotonic() > deadline:
            prometheus.stop()
            raise TimeoutError(f"prometheus not ready in 30 s: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def has_data(result: list[dict]) -> bool:
    """At least one series with a number (NaN, from 0/0 or a quantile of no requests, is no data)."""
    return any(not math.isnan(float(r["value"][1])) for r in result)


# ---------------------------------------------------------------------------------------------------------------
# The dashboards' queries


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str  # uid
    panel: str  # title
    ref: str  # refId
    expr: str
    exemplar: bool

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.dashboard, self.panel, self.ref)

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel!r} / {self.ref}: {self.expr}"


def load_dashboards() -> dict[str, dict]:
    """uid -> dashboard, for every committed dashboard JSON."""
    dashboards = {}
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        board = json.loads(path.read_text())
        dashboards[board["uid"]] = board
    return dashboards


def panels(board: dict) -> list[dict]:
    """Every panel, those inside collapsed rows included."""
    result = []
    for panel in board["panels"]:
        result.append(panel)
        result.extend(panel.get("panels", []))
    return result


def panel_queries(board: dict) -> list[PanelQuery]:
    return [
        PanelQuery(board["uid"], panel["title"], t["refId"], t["expr"], bool(t.get("exemplar")))
        for panel in panels(board)
        for t in panel.get("targets", [])
    ]


def variable_queries(board: dict) -> list[str]:
    return [v["query"]["query"] if isinstance(v["query"], dict) else v["query"] for v in board["templating"]["list"]]


def substitute(expr: str, variables: dict[str, str]) -> str:
    """``expr`` with Grafana's variables replaced (``$name``, ``${name}``, ``[[name]]``); fails on any left over."""

    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in variables:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return variables[name]

    result = re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", replace, expr)
    assert "$" not in result, result
    return result


LABEL_VALUES = re.compile(r"^label_values\((?:(?P<match>.+),\s*)?(?P<label>\w+)\)$")
