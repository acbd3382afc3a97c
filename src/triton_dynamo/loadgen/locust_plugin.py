# SPDX-License-Identifier: Apache-2.0
"""The load generator's side of Locust's events, and the state of one Locust process.

Importing this module makes gRPC cooperate with gevent (Locust monkey-patches the process with gevent when it is
imported; without ``init_gevent`` several greenlets blocked in gRPC calls deadlock) and registers the listeners:

- ``init_command_line_parser``: the :class:`~.config.LoadConfig` options on Locust's parser;
- ``init``: this process's client metrics server; the HDR exchange between workers and master;
- ``test_start``: (standalone, worker) the plan, built from the models' metadata; (standalone, master) the clock;
- ``request``: each request of ours into the HDR recorder and the Prometheus metrics;
- ``report_to_master`` / ``worker_report``: workers send their HDR deltas; the master adds them up;
- ``quitting``: (standalone, master) the JSON summary and a table in the log.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import gevent
import grpc.experimental.gevent
import locust.stats
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from ..client.config import DEFAULT_URL
from ..errors import TritonDynamoError
from .checks import Checker
from .config import LoadConfig, add_arguments
from .knee import StepWindow
from .latency import LatencyRecorder
from .metrics import ClientMetrics
from .plan import Plan, build_plan
from .shapes import schedule_for
from .summary import build_summary, format_table, write_summary
from .wire import Connections

logger = logging.getLogger(__name__)

REQUEST_TYPE = "grpc"  # Locust's "method" column for our requests
REPORT_KEY = "triton_dynamo_latency"  # our part of each worker report
REPO_ROOT = Path(__file__).resolve().parents[3]

# Before any channel exists: gRPC's completion queue must be polled the gevent way.
grpc.experimental.gevent.init_gevent()


def resolve_repository(path: Path) -> Path | None:
    """``path`` as given, else relative to the repository this package was installed from; None when neither."""
    for candidate in (path, REPO_ROOT / path):
        if candidate.is_dir():
            return candidate
    return None


class LoadRun:
    """What one Locust process knows: its configuration, plan, connections, recorder and metrics."""

    def __init__(self) -> None:
        self.environment: Environment | None = None
        self.config: LoadConfig | None = None
        self.recorder = LatencyRecorder()
        self.metrics = ClientMetrics()
        self.plan: Plan | None = None
        self.connections: Connections | None = None
        self.checker: Checker | None = None
        self.started_s: float | None = None
        self.stopped_s: float | None = None
        self.steps: list[tuple[int, int, float]] = []  # (index, users, wall time the step began)
        self.shape_ended_s: float | None = None
        self.users_max = 0

    @property
    def is_worker(self) -> bool:
        return isinstance(self.environment.runner, WorkerRunner)

    @property
    def is_master(self) -> bool:
        return isinstance(self.environment.runner, MasterRunner)

    @property
    def url(self) -> str:
        return (self.environment.host or DEFAULT_URL).removeprefix("grpc://")

    def prepare(self) -> None:
        """Configuration from the options (a worker's were just updated by the master), then the plan."""
        self.config = LoadConfig.from_options(self.environment.parsed_options)
        if self.connections is not None:
            self.connections.close()
        self.connections = Connections(self.url, self.config.grpc_connections)
        timeout_s = self.config.request_timeout_s

        def describe(model: str) -> tuple[dict, dict]:
            return self.connections.metadata(model, timeout_s), self.connections.config(model, timeout_s)

        self.plan = build_plan(self.config, describe)
        self.checker = None
        if self.config.check:
            self.checker = Checker(resolve_repository(self.config.check_model_repository))

    def summary_path(self) -> Path | None:
        if self.config.summary_json is not None:
            return self.config.summary_json
        csv_prefix = getattr(self.environment.parsed_options, "csv_prefix", None)
        return Path(f"{csv_prefix}_summary.json") if csv_prefix else None

    def step_windows(self, ended_s: float) -> list[StepWindow]:
        schedule = schedule_for(self.config, self.environment.parsed_options)
        windows = []
        for i, (index, users, began_s) in enumerate(self.steps):
            end_s = self.steps[i + 1][2] if i + 1 < len(self.steps) else ended_s
            measure_from_s = began_s + schedule.spawn_s(index) + self.config.settle_s
            windows.append(StepWindow(index, users, began_s, measure_from_s, min(end_s, ended_s)))
        return windows

    def summary(self) -> dict[str, Any]:
        ended_s = self.stopped_s or time.time()
        if self.shape_ended_s is not None:
            ended_s = min(ended_s, self.shape_ended_s)
        stats = self.environment.runner.stats
        locust_stats = {}
        for (name, method), entry in stats.entries.items():
            if method == REQUEST_TYPE:
                locust_stats[name] = {
                    "requests": entry.num_requests,
                    "failures": entry.num_failures,
                    "median_ms": entry.median_response_time,
                    "p99_ms": entry.get_response_time_percentile(0.99),
                }
        config = self.config
        shape: dict[str, Any] = {"name": config.shape}
        if config.shape == "step":
            shape.update(step_users=config.step_users, step_s=config.step_s, max_users=config.step_max_users)
        elif config.shape == "spike":
            shape.update(spike_users=config.spike_users, at_s=config.spike_at_s, duration_s=config.spike_duration_s)
        return build_summary(
            self.recorder,
            started_s=self.started_s or ended_s,
            ended_s=ended_s,
            shape=shape,
            steps=self.step_windows(ended_s) if config.shape == "step" else (),
            knee_min_gain=config.knee_min_gain,
            locust_stats=locust_stats,
            users_max=self.users_max,
        )


RUN = LoadRun()


@events.init_command_line_parser.add_listener
def on_parser(parser: Any, **_kwargs: Any) -> None:
    add_arguments(parser)


@events.init.add_listener
def on_init(environment: Environment, **_kwargs: Any) -> None:
    RUN.environment = environment
    try:
        RUN.config = LoadConfig.from_options(environment.parsed_options)
    except TritonDynamoError as exc:
        logger.error("%s", exc)
        raise SystemExit(2) from None  # passes through Locust's event handling: bad options end the process
    if RUN.is_worker:
        RUN.metrics.serve(RUN.config.worker_metrics_port, next_free=True)
        environment.events.report_to_master.add_listener(on_report_to_master)
    else:
        RUN.metrics.serve(RUN.config.metrics_port)
        if not environment.stop_timeout:
            # Let requests in flight at the end finish and be counted (Locust's default kills them mid-call, which
            # the server counts as cancelled and this side not at all). Workers get it from the master.
            environment.stop_timeout = RUN.config.request_timeout_s
    if RUN.is_master:
        environment.events.worker_report.add_listener(on_worker_report)
    environment.events.request.add_listener(on_request)


def on_request(
    request_type: str, name: str, response_time: float, exception: BaseException | None = None, **_kwargs: Any
) -> None:
    if request_type != REQUEST_TYPE:
        return
    model, _, kind = name.rpartition("/")
    if exception is None:
        RUN.recorder.record_success(name, response_time * 1000.0, time.time())
    else:
        RUN.recorder.record_failure(name, str(exception))
    RUN.metrics.observe(model, kind, response_time / 1000.0, exception is None)


def on_report_to_master(client_id: str, data: dict, **_kwargs: Any) -> None:
    data[REPORT_KEY] = RUN.recorder.take_delta()


def on_worker_report(client_id: str, data: dict, **_kwargs: Any) -> None:
    payload = data.get(REPORT_KEY)
    if payload is not None:
        RUN.recorder.merge(payload)


@events.test_start.add_listener
def on_test_start(environment: Environment, **_kwargs: Any) -> None:
    # (the steps are cleared by the shape when it starts: its first tick comes before this event)
    RUN.recorder.reset()
    RUN.started_s, RUN.stopped_s, RUN.users_max = time.time(), None, 0
    if RUN.is_master:
        RUN.config = LoadConfig.from_options(environment.parsed_options)
        return
    try:
        RUN.prepare()
    except TritonDynamoError as exc:
        RUN.plan = None
        logger.error("cannot start the load test: %s", exc)
        environment.process_exit_code = 2
        # not from inside the runner's own start: quit once this event has returned
        gevent.spawn_later(0.1, environment.runner.quit)


@events.spawning_complete.add_listener
def on_spawning_complete(user_count: int, **_kwargs: Any) -> None:
    RUN.users_max = max(RUN.users_max, user_count)


@events.test_stop.add_listener
def on_test_stop(environment: Environment, **_kwargs: Any) -> None:
    RUN.stopped_s = time.time()


@events.quitting.add_listener
def on_quitting(environment: Environment, **_kwargs: Any) -> None:
    if RUN.is_worker or RUN.started_s is None or RUN.config is None:
        return
    if getattr(environment.parsed_options, "csv_prefix", None):
        # Locust rewrites its CSV files every CSV_STATS_INTERVAL_SEC and closes them right after this event without
        # a last write: give its writer one more turn, so that the CSV counts the requests that ended last too.
        gevent.sleep(locust.stats.CSV_STATS_INTERVAL_SEC + 0.1)
    summary = RUN.summary()
    for line in format_table(summary):
        logger.info("%s", line)
    path = RUN.summary_path()
    if path is not None:
        logger.info("summary written to %s", write_summary(path, summary))
