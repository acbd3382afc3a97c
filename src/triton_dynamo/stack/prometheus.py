# SPDX-License-Identifier: Apache-2.0
"""Prometheus for the local stack (``triton-dynamo up --observe``): its configuration and its command line.

The configuration scrapes the frontend and every worker's metrics port as static ``host:port`` targets, under the
same job names as the Docker Compose configuration (``services/prometheus/prometheus.yml``: ``frontend``,
``worker``), and loads the same rule files (``services/prometheus/rules/*.yml``), so recording rules, alerts and the
Grafana dashboards work unchanged against either.

Example:
    >>> text = render_local_config("127.0.0.1:8002", ["127.0.0.1:8200", "127.0.0.1:8201"], 1.0, default_rule_files())
    >>> command = prometheus_command(Path("/tmp/s/prometheus.yml"), Path("/tmp/s/prometheus"), 9090)
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

# The job names the rules and dashboards select on (``up{job="worker"}``); the Compose config uses the same.
FRONTEND_JOB = "frontend"
WORKER_JOB = "worker"

# services/prometheus/rules in a checkout (this file is src/triton_dynamo/stack/prometheus.py).
RULES_DIR = Path(__file__).resolve().parents[3] / "services" / "prometheus" / "rules"

# How long the local Prometheus keeps data: enough for the 6 h window of the slow latency-burn alert, and small.
RETENTION_TIME = "1d"
RETENTION_SIZE = "512MB"


def default_rule_files(rules_dir: Path = RULES_DIR) -> list[Path]:
    """The rule files the Compose Prometheus loads (``*.yml`` in ``rules_dir``), sorted; empty when the directory is
    absent (an installed package without the repository's ``services/``)."""
    if not rules_dir.is_dir():
        return []
    return sorted(p.resolve() for p in rules_dir.glob("*.yml"))


def find_prometheus() -> str | None:
    """The ``prometheus`` binary on this machine (PATH, else Debian's /usr/bin), or None when not installed."""
    found = shutil.which("prometheus")
    if found is None and os.access("/usr/bin/prometheus", os.X_OK):
        found = "/usr/bin/prometheus"
    return found


def _duration(seconds: float) -> str:
    """A Prometheus duration for ``seconds`` (whole milliseconds, at least 1 ms)."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"scrape interval must be a positive number of seconds, not {seconds!r}")
    ms = max(1, round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def render_local_config(
    frontend: str,
    workers: list[str],
    scrape_interval_s: float,
    rule_files: list[Path],
    *,
    extra_jobs: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """A Prometheus configuration (YAML text) scraping the local stack.

    Args:
        frontend: the frontend's metrics target, ``host:port``.
        workers: every worker's metrics-port target (``--worker-metrics-port`` + i), ``host:port``. Scrape these,
            not the Dynamo system ports: only they serve OpenMetrics, so only they carry exemplars.
        scrape_interval_s: scrape and rule-evaluation interval.
        rule_files: rule files to load, e.g. :func:`default_rule_files` (the Compose stack's own).
        extra_jobs: more static jobs, job name -> targets, e.g. ``{"etcd": ["127.0.0.1:2379"], "prometheus":
            ["127.0.0.1:9090"]}``; use the Compose job names (``etcd``, ``nats``, ``prometheus``, ``locust``) so
            that the dashboards' infrastructure panels find them.

    The text is JSON, which is YAML too (no YAML library needed); it starts with a comment saying what made it.
    """
    interval = _duration(scrape_interval_s)
    jobs: dict[str, Sequence[str]] = {FRONTEND_JOB: [frontend], WORKER_JOB: list(workers)}
    for name, targets in (extra_jobs or {}).items():
        if name in jobs:
            raise ValueError(f"job {name!r} is already scraped")
        jobs[name] = list(targets)
    for name, targets in jobs.items():
        for target in targets:
            host, _, port = target.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"target {target!r} of job {name!r} is not host:port")
    config = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
            "external_labels": {"stack": "triton-dynamo-local"},
        },
        "rule_files": [str(Path(p).resolve()) for p in rule_files],
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": list(targets)}]} for name, targets in jobs.items()
        ],
    }
    return "# Prometheus configuration of the local stack, written by triton-dynamo (JSON is YAML).\n" + json.dumps(
        config, indent=2
    )


def prometheus_command(
    config_path: Path, data_dir: Path, listen_port: int, *, binary: str | None = None, host: str = "127.0.0.1"
) -> list[str]:
    """The command line that runs Prometheus on ``config_path``, storing in ``data_dir``, answering on
    ``host:listen_port`` (loopback by default), with exemplar storage on and a small retention.

    ``binary`` defaults to :func:`find_prometheus`, else plain ``prometheus`` (so that starting it fails clearly).
    """
    if not 0 < listen_port < 65536:
        raise ValueError(f"listen port must be between 1 and 65535, not {listen_port}")
    return [
        binary or find_prometheus() or "prometheus",
        f"--config.file={config_path}",
        f"--storage.tsdb.path={data_dir}",
        f"--storage.tsdb.retention.time={RETENTION_TIME}",
        f"--storage.tsdb.retention.size={RETENTION_SIZE}",
        f"--web.listen-address={host}:{listen_port}",
        "--enable-feature=exemplar-storage",
        "--web.enable-lifecycle",  # POST /-/reload re-reads the rule files after an edit
        "--log.level=warn",
    ]
