#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The Grafana dashboards of triton-dynamo, as code: this script is their source of truth.

    python grafana/generate.py           # (re)writes grafana/dashboards/*.json
    python grafana/generate.py --check   # exits 1 when a committed file differs from what this script makes

Dashboards (all on the Prometheus data source of uid ``prometheus``; latency panels ask for exemplars, which
Grafana links to traces in Tempo through the data source's ``exemplarTraceIdDestinations``):

- ``triton-dynamo-overview``: throughput, errors, latency quantiles, requests in flight, workers up, requests per
  worker, the latency SLO.
- ``triton-dynamo-model``: one model (``$model``): latency, Triton's queue vs compute time, dynamic batch size,
  client-observed latency (the load generator's) beside the server's, bytes, the frontend's view.
- ``triton-dynamo-internals``: Triton's ``nv_*`` metrics per model and worker, Dynamo's request plane, and the GPU
  (``nv_gpu_*``: no data on CPU-only hosts, and labelled so).
- ``triton-dynamo-infrastructure``: scrape targets, etcd, NATS (through prometheus-nats-exporter), the OpenTelemetry
  collector, Tempo, Prometheus itself.

Metric names are those Prometheus stores from the workers' metrics ports (verified against a running stack by
tests/observability). Built with grafana-foundation-sdk (Grafana Labs' typed builders, a dev dependency of this
project): `uv run python grafana/generate.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as gc
from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.builders import stat as gstat
from grafana_foundation_sdk.builders import text as gtext
from grafana_foundation_sdk.builders import timeseries as gts
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import text as tm

OUT_DIR = Path(__file__).resolve().parent / "dashboards"

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
TAG = "triton-dynamo"
RATE = "$__rate_interval"

# Triton's counters keep Triton's own names (no _total suffix: nv_inference_count) on a worker's metrics port, which
# re-exposes them as type unknown. Should they ever gain the suffix, set it here and regenerate.
NV_COUNTER_SUFFIX = ""


def nv(name: str) -> str:
    """A Triton counter's stored name."""
    return name + NV_COUNTER_SUFFIX


def quantile(q: float, bucket: str, selector: str = "", by: str = "") -> str:
    """histogram_quantile(q) of a histogram's buckets, summed over workers (``by``: labels kept besides ``le``)."""
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) (rate({bucket}_bucket{selector}[{RATE}])))"


# ---------------------------------------------------------------------------------------------------------------
# Panel builders: grafana-foundation-sdk's typed builders (kept in step with Grafana's schema), with this project's
# defaults. Each returns a Placed (the SDK builder and its size); layout() places them on the grid.


@dataclass
class Placed:
    """A panel's (or row's) builder and its size on Grafana's 24-column grid."""

    builder: Any
    width: int
    height: int
    is_row: bool = False


def _datasource() -> dm.DataSourceRef:
    return dm.DataSourceRef(type_val=DATASOURCE["type"], uid=DATASOURCE["uid"])


def target(expr: str, legend: str = "", *, exemplar: bool = False, instant: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().datasource(_datasource()).expr(expr).legend_format(legend or "__auto")
    query = query.instant() if instant else query.range()
    return query.exemplar(True) if exemplar else query


def _with_targets(panel: Any, targets: list[prometheus.Dataquery]) -> Any:
    for index, query in enumerate(targets):
        panel = panel.with_target(query.ref_id(chr(ord("A") + index)))
    return panel


def _thresholds(steps: list[tuple[float, str]]) -> gd.ThresholdsConfig:
    return (
        gd.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=None if i == 0 else value, color=color) for i, (value, color) in enumerate(steps)])
    )


def timeseries(
    title: str,
    targets: list[prometheus.Dataquery],
    *,
    unit: str = "short",
    description: str = "",
    stacked: bool = False,
    min_value: float | None = 0,
    max_value: float | None = None,
    width: int = 12,
    height: int = 8,
    thresholds: list[tuple[float, str]] | None = None,
) -> Placed:
    panel = (
        gts.Panel()
        .title(title)
        .description(description)
        .datasource(_datasource())
        .unit(unit)
        .color_scheme(gd.FieldColor().mode(dm.FieldColorModeId.PALETTE_CLASSIC))
        .draw_style(cm.GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(20 if stacked else 5)
        .show_points(cm.VisibilityMode.NEVER)
        .span_nulls(False)
        .stacking(gc.StackingConfig().mode(cm.StackingMode.NORMAL if stacked else cm.StackingMode.NONE).group("A"))
        .legend(
            gc.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.TABLE)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max"])
        )
        .tooltip(gc.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING))
    )
    if min_value is not None:
        panel = panel.axis_soft_min(min_value)
    if max_value is not None:
        panel = panel.max(max_value)
    if thresholds:
        panel = panel.thresholds(_thresholds(thresholds))
        panel = panel.thresholds_style(gc.GraphThresholdsStyleConfig().mode(cm.GraphTresholdsStyleMode.DASHED))
    return Placed(_with_targets(panel, targets), width, height)


def stat(
    title: str,
    targets: list[prometheus.Dataquery],
    *,
    unit: str = "short",
    description: str = "",
    thresholds: list[tuple[float, str]] | None = None,
    width: int = 4,
    height: int = 4,
    decimals: int | None = None,
) -> Placed:
    panel = (
        gstat.Panel()
        .title(title)
        .description(description)
        .datasource(_datasource())
        .unit(unit)
        .color_scheme(gd.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .thresholds(_thresholds(thresholds or [(0, "green")]))
        .reduce_options(gc.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
        .color_mode(cm.BigValueColorMode.VALUE)
        .graph_mode(cm.BigValueGraphMode.AREA)
        .justify_mode(cm.BigValueJustifyMode.AUTO)
        .orientation(cm.VizOrientation.AUTO)
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    return Placed(_with_targets(panel, targets), width, height)


def text(title: str, content: str, *, width: int = 24, height: int = 3) -> Placed:
    return Placed(gtext.Panel().title(title).mode(tm.TextMode.MARKDOWN).content(content), width, height)


def row(title: str) -> Placed:
    return Placed(gd.Row(title), 24, 1, is_row=True)


def _query_variable(name: str, label: str, query: str, *, multi: bool) -> gd.QueryVariable:
    variable = (
        gd.QueryVariable(name)
        .label(label)
        .datasource(_datasource())
        .query({"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"})
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .regex("")
        .hide(dm.VariableHide.DONT_HIDE)
        .multi(multi)
        .include_all(multi)
    )
    return variable.all_value(".*") if multi else variable


def model_variable(*, multi: bool) -> gd.QueryVariable:
    return _query_variable("model", "Model", "label_values(triton_dynamo_requests_total, model)", multi=multi)


def instance_variable() -> gd.QueryVariable:
    return _query_variable("instance", "Worker", 'label_values(up{job="worker"}, instance)', multi=True)


def layout(panels: list[Placed]) -> list[tuple[int, dm.GridPos]]:
    """Places panels left to right on Grafana's 24-column grid, wrapping lines before a panel that would not fit
    (the SDK's own placement wraps only after): (id, position) of each."""
    x = y = line_height = 0
    placed = []
    for number, panel in enumerate(panels, start=1):
        if x + panel.width > 24 or panel.is_row:
            x, y = 0, y + line_height
            line_height = 0
        placed.append((number, dm.GridPos(h=panel.height, w=panel.width, x=x, y=y)))
        x += panel.width
        line_height = max(line_height, panel.height)
        if panel.is_row:
            x, y, line_height = 0, y + 1, 0
    return placed


# The alerts annotation: Prometheus's annotation fields (step, title and text formats) have no setter in the SDK's
# builder, so they are added to its JSON.
ALERT_ANNOTATION_FIELDS = {
    "step": "30s",
    "titleFormat": "{{alertname}}",
    "textFormat": "{{model}} {{instance}}",
    "useValueForTime": False,
}


def dashboard(uid: str, title: str, description: str, panels: list[Placed], variables: list) -> dict:
    board = (
        gd.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .timezone("browser")
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .version(1)
        .refresh("10s")
        .time("now-30m", "now")
        .fiscal_year_start_month(0)
        .live_now(False)
        .annotation(
            gd.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(dm.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
        )
        .annotation(
            gd.AnnotationQuery()
            .name("triton-dynamo alerts")
            .datasource(_datasource())
            .enable(True)
            .icon_color("red")
            .expr('ALERTS{alertstate="firing", alertname=~"TritonDynamo.*"}')
        )
        .link(
            gd.DashboardLink("triton-dynamo dashboards")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    for variable in variables:
        board = board.with_variable(variable)
    for panel, (number, position) in zip(panels, layout(panels), strict=True):
        built = panel.builder.id(number).grid_pos(position)
        board = board.with_row(built) if panel.is_row else board.with_panel(built)
    encoded = json.loads(JSONEncoder(sort_keys=True).encode(board.build()))
    encoded.setdefault("templating", {}).setdefault("list", [])  # the SDK leaves it out when there is none
    for annotation in encoded["annotations"]["list"]:
        if annotation.get("name") == "triton-dynamo alerts":
            annotation.update(ALERT_ANNOTATION_FIELDS)
        elif annotation.get("type") == "dashboard":
            annotation["builtIn"] = 1  # Grafana's own annotations: a field the SDK's builder has no setter for
    return encoded


# ---------------------------------------------------------------------------------------------------------------
# Dashboards

LATENCY_NOTE = (
    "Worker latency: from a request's arrival in the worker to its last response "
    "(triton_dynamo_request_duration_seconds, buckets 100 us to 10 s). Diamonds are exemplars: click one to open "
    "its trace in Tempo (only when the workers trace)."
)


def overview() -> dict:
    panels = [
        stat(
            "Workers up",
            [target('sum(up{job="worker"})', "up"), target('count(up{job="worker"})', "targets")],
            description="Worker metrics targets answering their scrape, of all the targets Prometheus knows.",
            thresholds=[(0, "red"), (1, "green")],
        ),
        stat(
            "Models ready at the frontend",
            [
                target("sum(dynamo_frontend_model_ready)", "ready"),
                target("count(dynamo_frontend_model_ready)", "known"),
            ],
            description="dynamo_frontend_model_ready: models the frontend can route to, of the models it knows.",
            thresholds=[(0, "red"), (1, "green")],
        ),
        stat(
            "Throughput",
            [target(f"sum(rate(triton_dynamo_requests_total[{RATE}]))", "requests/s")],
            unit="reqps",
            description="Requests the workers finished per second, every outcome.",
        ),
        stat(
            "Server errors",
            [target(":triton_dynamo_request_server_errors:ratio_rate5m", "5 min")],
            unit="percentunit",
            description="Fraction of requests failing with a server error over 5 minutes (recording rule; client "
            "errors such as invalid_argument are not counted). Alert: above 5% for 5 minutes.",
            thresholds=[(0, "green"), (0.01, "orange"), (0.05, "red")],
            decimals=2,
        ),
        stat(
            "p99 latency",
            [target(quantile(0.99, "triton_dynamo_request_duration_seconds"), "p99")],
            unit="s",
            description=LATENCY_NOTE,
            thresholds=[(0, "green"), (0.1, "red")],
        ),
        stat(
            "Alerts firing",
            [target('count(ALERTS{alertstate="firing"}) or vector(0)', "firing")],
            description="Prometheus alerts firing now (services/prometheus/rules/alerts.yml).",
            thresholds=[(0, "green"), (1, "red")],
        ),
        row("Traffic"),
        timeseries(
            "Throughput by model",
            [
                target(f"sum by (model) (rate(triton_dynamo_requests_total[{RATE}]))", "{{model}}"),
                target(
                    f'sum(rate(dynamo_frontend_requests_total{{endpoint="tensor"}}[{RATE}]))',
                    "all models, at the frontend",
                ),
            ],
            unit="reqps",
            description="Requests finished per second in the workers, by model; the frontend's count of KServe "
            "tensor requests beside it (requests for unknown models reach neither).",
        ),
        timeseries(
            "Errors by model and outcome",
            [
                target(
                    f'sum by (model, outcome) (rate(triton_dynamo_requests_total{{outcome!="success"}}[{RATE}]))',
                    "{{model}} {{outcome}}",
                ),
                target(
                    'sum by (model) (rate(dynamo_frontend_requests_total{endpoint="tensor", status="error"}'
                    f"[{RATE}]))",
                    "{{model}} at the frontend",
                ),
            ],
            unit="reqps",
            description="Failed requests per second by the worker's outcome (the gRPC status: invalid_argument is the "
            "client's fault, internal or unavailable the server's). The frontend reports every worker error as "
            "status=error, error_type=internal.",
        ),
        timeseries(
            "Requests per worker",
            [target(f"sum by (instance) (rate(triton_dynamo_requests_total[{RATE}]))", "{{instance}}")],
            unit="reqps",
            description="How the frontend's router spreads requests over the workers.",
            stacked=True,
        ),
        timeseries(
            "Requests in flight",
            [
                target("sum by (model) (triton_dynamo_inflight_requests)", "{{model}} in workers"),
                target("sum by (model) (dynamo_frontend_inflight_requests)", "{{model}} at the frontend"),
            ],
            description="Requests in the workers (triton_dynamo_inflight_requests) and at the frontend, by model.",
        ),
        row("Latency"),
        timeseries(
            "Worker latency, all models",
            [
                target(quantile(0.5, "triton_dynamo_request_duration_seconds"), "p50", exemplar=True),
                target(quantile(0.95, "triton_dynamo_request_duration_seconds"), "p95", exemplar=True),
                target(quantile(0.99, "triton_dynamo_request_duration_seconds"), "p99", exemplar=True),
            ],
            unit="s",
            description=LATENCY_NOTE,
            thresholds=[(0, "green"), (0.1, "red")],
        ),
        timeseries(
            "Worker p99 latency by model",
            [target(quantile(0.99, "triton_dynamo_request_duration_seconds", by="model"), "{{model}}", exemplar=True)],
            unit="s",
            description=LATENCY_NOTE,
            thresholds=[(0, "green"), (0.1, "red")],
        ),
        timeseries(
            "Latency SLO: requests over 100 ms",
            [
                target(":triton_dynamo_latency_slo_miss:ratio_rate5m", "all models, 5 min"),
                target(":triton_dynamo_latency_slo_miss:ratio_rate1h", "all models, 1 h"),
                target("model:triton_dynamo_latency_slo_miss:ratio_rate1h", "{{model}}, 1 h"),
            ],
            unit="percentunit",
            description="SLO: 99% of requests within 100 ms in the worker. Fraction of requests slower than 100 ms "
            "(recording rules); 1% is the whole error budget. Alerts fire when it burns 14.4x (1 h and 5 min) or 6x "
            "(6 h and 30 min) too fast.",
            thresholds=[(0, "green"), (0.01, "red")],
            max_value=None,
        ),
        timeseries(
            "Worker targets up",
            [target('up{job="worker"}', "{{instance}}")],
            description="1 while a worker's metrics port answers its scrape.",
            min_value=0,
            max_value=1,
        ),
    ]
    return dashboard(
        "triton-dynamo-overview",
        "triton-dynamo / Overview",
        "Is the service healthy: throughput, errors, latency, workers.",
        panels,
        [],
    )


def model() -> dict:
    sel = '{model="$model"}'
    panels = [
        text(
            "About this dashboard",
            "One model (`$model`). Server latency is measured in the workers; client-observed latency comes from the "
            "load generator (`triton_dynamo_client_*`, only while it runs). Queue and compute are Triton's own times "
            "for each request (from its trace activities).",
        ),
        timeseries(
            "Requests by outcome",
            [target(f"sum by (outcome) (rate(triton_dynamo_requests_total{sel}[{RATE}]))", "{{outcome}}")],
            unit="reqps",
            stacked=True,
            description="Requests finished per second in the workers, by outcome.",
        ),
        timeseries(
            "Responses per second",
            [
                target(f"sum(rate(triton_dynamo_responses_total{sel}[{RATE}]))", "responses"),
                target(f"sum(rate(triton_dynamo_requests_total{sel}[{RATE}]))", "requests"),
            ],
            unit="short",
            description="Decoupled (streaming) models send several responses per request.",
        ),
        timeseries(
            "Worker latency",
            [
                target(quantile(0.5, "triton_dynamo_request_duration_seconds", sel), "p50", exemplar=True),
                target(quantile(0.95, "triton_dynamo_request_duration_seconds", sel), "p95", exemplar=True),
                target(quantile(0.99, "triton_dynamo_request_duration_seconds", sel), "p99", exemplar=True),
            ],
            unit="s",
            description=LATENCY_NOTE,
            thresholds=[(0, "green"), (0.1, "red")],
        ),
        timeseries(
            "Client-observed vs server latency (p99)",
            [
                target(
                    quantile(0.99, "triton_dynamo_client_request_duration_seconds", sel, by="kind"),
                    "client p99 {{kind}}",
                    exemplar=True,
                ),
                target(quantile(0.99, "triton_dynamo_request_duration_seconds", sel), "worker p99", exemplar=True),
            ],
            unit="s",
            description="The load generator's latency (request sent to last response received, by request kind) "
            "beside the worker's. The gap is the frontend, the request plane and the network. Client series exist "
            "only while the load generator runs.",
        ),
        timeseries(
            "Triton queue vs compute (p50, p99)",
            [
                target(quantile(0.5, "triton_dynamo_queue_duration_seconds", sel), "queue p50"),
                target(quantile(0.99, "triton_dynamo_queue_duration_seconds", sel), "queue p99"),
                target(quantile(0.5, "triton_dynamo_compute_duration_seconds", sel), "compute p50"),
                target(quantile(0.99, "triton_dynamo_compute_duration_seconds", sel), "compute p99"),
            ],
            unit="s",
            description="Time requests waited in Triton's scheduler / dynamic batcher, and time its backend spent "
            "on them (inputs, inference, outputs). Queue growing while compute stays flat: add workers or instances.",
        ),
        timeseries(
            "Triton time per request (mean)",
            [
                target(
                    f"sum(rate({nv('nv_inference_queue_duration_us')}{sel}[{RATE}])) "
                    f"/ sum(rate({nv('nv_inference_request_success')}{sel}[{RATE}])) / 1e6",
                    "queue",
                ),
                target(
                    f"sum(rate({nv('nv_inference_compute_input_duration_us')}{sel}[{RATE}])) "
                    f"/ sum(rate({nv('nv_inference_request_success')}{sel}[{RATE}])) / 1e6",
                    "compute input",
                ),
                target(
                    f"sum(rate({nv('nv_inference_compute_infer_duration_us')}{sel}[{RATE}])) "
                    f"/ sum(rate({nv('nv_inference_request_success')}{sel}[{RATE}])) / 1e6",
                    "compute infer",
                ),
                target(
                    f"sum(rate({nv('nv_inference_compute_output_duration_us')}{sel}[{RATE}])) "
                    f"/ sum(rate({nv('nv_inference_request_success')}{sel}[{RATE}])) / 1e6",
                    "compute output",
                ),
            ],
            unit="s",
            stacked=True,
            description="Triton's own cumulative times (nv_inference_*_duration_us) per successful request.",
        ),
        timeseries(
            "Dynamic batch size",
            [
                target(
                    f"sum(rate({nv('nv_inference_count')}{sel}[{RATE}])) "
                    f"/ sum(rate({nv('nv_inference_exec_count')}{sel}[{RATE}]))",
                    "inferences per execution",
                )
            ],
            description="nv_inference_count / nv_inference_exec_count: how many inferences (batch elements) Triton "
            "ran per model execution. Above the clients' own batch size when the dynamic batcher merges requests.",
        ),
        timeseries(
            "In flight and queued",
            [
                target(f"sum(triton_dynamo_inflight_requests{sel})", "in workers"),
                target(f"sum(nv_inference_pending_request_count{sel})", "pending in Triton"),
                target(f"sum(dynamo_frontend_inflight_requests{sel})", "at the frontend"),
                target(f"sum(dynamo_frontend_queued_requests{sel})", "frontend: awaiting first response"),
            ],
            description="Requests in flight at each stage.",
        ),
        timeseries(
            "Tensor bytes",
            [
                target(f"sum(rate(triton_dynamo_input_bytes_total{sel}[{RATE}]))", "input"),
                target(f"sum(rate(triton_dynamo_output_bytes_total{sel}[{RATE}]))", "output"),
            ],
            unit="Bps",
            description="Input and output tensor data per second.",
        ),
        timeseries(
            "Requests per worker",
            [target(f"sum by (instance) (rate(triton_dynamo_requests_total{sel}[{RATE}]))", "{{instance}}")],
            unit="reqps",
            stacked=True,
            description="Where the frontend routed this model's requests.",
        ),
        timeseries(
            "Handed to another worker",
            [target(f"sum by (instance) (rate(triton_dynamo_handed_requests_total{sel}[{RATE}]))", "{{instance}}")],
            unit="reqps",
            description="Requests a worker at its --max-inflight limit handed to another worker, which served or "
            "refused them. Dynamo's frontend picks a worker at random for each request; this is where that "
            "uneven spread met a full worker (README, 'Routing, and hand-over at the limit').",
        ),
        timeseries(
            "At the frontend",
            [
                target(
                    f'sum by (request_type, status) (rate(dynamo_frontend_requests_total{{endpoint="tensor", '
                    f'model="$model"}}[{RATE}]))',
                    "{{request_type}} {{status}}",
                )
            ],
            unit="reqps",
            description="KServe requests at the frontend: unary (ModelInfer) or stream (ModelStreamInfer), by status.",
        ),
        timeseries(
            "Load generator: requests by outcome",
            [
                target(
                    f"sum by (kind, outcome) (rate(triton_dynamo_client_requests_total{sel}[{RATE}]))",
                    "{{kind}} {{outcome}}",
                )
            ],
            unit="reqps",
            description="What the load generator saw (only while it runs).",
        ),
    ]
    return dashboard(
        "triton-dynamo-model",
        "triton-dynamo / Model",
        "One model: latency and where it goes, batching, client vs server.",
        panels,
        [model_variable(multi=False)],
    )


def internals() -> dict:
    sel = '{model=~"$model", instance=~"$instance"}'
    wsel = '{instance=~"$instance"}'
    gpu_note = (
        "GPU (nv_gpu_*, nv_energy_consumption): Triton reports these only on hosts with NVIDIA GPUs. **No data on "
        "CPU-only hosts** (a laptop, CI) is expected."
    )
    dcgm_note = (
        "NVIDIA's DCGM exporter (Compose profile gpu, job dcgm): the whole host's GPUs, Triton's or not, with tensor "
        "core activity (a profiling metric). **No data on CPU-only hosts** or without the profile."
    )
    panels = [
        row("Triton: requests"),
        timeseries(
            "Successes by model",
            [target(f"sum by (model) (rate({nv('nv_inference_request_success')}{sel}[{RATE}]))", "{{model}}")],
            unit="reqps",
            description="nv_inference_request_success: requests Triton completed.",
        ),
        timeseries(
            "Failures by model and reason",
            [
                target(
                    f"sum by (model, reason) (rate({nv('nv_inference_request_failure')}{sel}[{RATE}]))",
                    "{{model}} {{reason}}",
                )
            ],
            unit="reqps",
            description="nv_inference_request_failure by reason (REJECTED, CANCELED, BACKEND, OTHER). Requests the "
            "worker refuses before Triton (bad inputs) are not here: see triton_dynamo_requests_total.",
        ),
        timeseries(
            "Inferences and executions",
            [
                target(f"sum by (model) (rate({nv('nv_inference_count')}{sel}[{RATE}]))", "{{model}} inferences"),
                target(f"sum by (model) (rate({nv('nv_inference_exec_count')}{sel}[{RATE}]))", "{{model}} executions"),
            ],
            unit="short",
            description="Inferences (batch elements) and model executions per second.",
        ),
        timeseries(
            "Batch size by model",
            [
                target(
                    f"sum by (model) (rate({nv('nv_inference_count')}{sel}[{RATE}])) "
                    f"/ sum by (model) (rate({nv('nv_inference_exec_count')}{sel}[{RATE}]))",
                    "{{model}}",
                )
            ],
            description="Inferences per execution.",
        ),
        timeseries(
            "Mean queue time per request",
            [
                target(
                    f"sum by (model) (rate({nv('nv_inference_queue_duration_us')}{sel}[{RATE}])) "
                    f"/ sum by (model) (rate({nv('nv_inference_request_success')}{sel}[{RATE}])) / 1e6",
                    "{{model}}",
                )
            ],
            unit="s",
        ),
        timeseries(
            "Mean compute time per request",
            [
                target(
                    f"sum by (model) (rate({nv('nv_inference_compute_infer_duration_us')}{sel}[{RATE}])) "
                    f"/ sum by (model) (rate({nv('nv_inference_request_success')}{sel}[{RATE}])) / 1e6",
                    "{{model}}",
                )
            ],
            unit="s",
        ),
        timeseries(
            "Pending requests",
            [target(f"sum by (model) (nv_inference_pending_request_count{sel})", "{{model}}")],
            description="Requests Triton has received and not yet started to execute.",
        ),
        row("Worker process"),
        timeseries(
            "CPU utilization",
            [target(f"nv_cpu_utilization{wsel}", "{{instance}}")],
            unit="percentunit",
            description="nv_cpu_utilization as Triton reports it for the host.",
        ),
        timeseries(
            "Host memory",
            [
                target(f"nv_cpu_memory_used_bytes{wsel}", "{{instance}} used"),
                target(f"nv_cpu_memory_total_bytes{wsel}", "{{instance}} total"),
            ],
            unit="bytes",
        ),
        timeseries(
            "Pinned memory pool",
            [
                target(f"nv_pinned_memory_pool_used_bytes{wsel}", "{{instance}} used"),
                target(f"nv_pinned_memory_pool_total_bytes{wsel}", "{{instance}} total"),
            ],
            unit="bytes",
        ),
        row("Dynamo"),
        timeseries(
            "Dynamo requests per worker endpoint",
            [
                target(
                    f"sum by (instance, model) (rate(dynamo_component_requests_total{wsel}[{RATE}]))",
                    "{{instance}} {{model}}",
                )
            ],
            unit="reqps",
            description="dynamo_component_requests_total: requests Dynamo's runtime handed to each worker endpoint.",
        ),
        timeseries(
            "Dynamo worker handler time (p99)",
            [
                target(
                    quantile(0.99, "dynamo_component_request_duration_seconds", wsel, by="model"),
                    "{{model}}",
                ),
                target(
                    quantile(0.99, "dynamo_work_handler_time_to_first_response_seconds", wsel),
                    "time to first response",
                ),
            ],
            unit="s",
            description="Dynamo's own timing of each request in the worker's handler (to its last and first response).",
        ),
        timeseries(
            "Frontend stages (p99)",
            [
                target(quantile(0.99, "dynamo_frontend_stage_duration_seconds", by="stage"), "{{stage}}"),
                target(quantile(0.99, "dynamo_request_plane_roundtrip_ttft_seconds"), "request plane round trip"),
            ],
            unit="s",
            description="Where the frontend spends time: route (picking a worker), transport_roundtrip (to the "
            "worker and back to the first response).",
        ),
        row("GPU (no data on CPU-only hosts)"),
        text("GPU metrics", gpu_note, height=2),
        timeseries(
            "GPU utilization",
            [target(f"nv_gpu_utilization{wsel}", "{{instance}} {{gpu_uuid}}")],
            unit="percentunit",
            max_value=1,
            description=gpu_note,
        ),
        timeseries(
            "GPU memory",
            [
                target(f"nv_gpu_memory_used_bytes{wsel}", "{{instance}} {{gpu_uuid}} used"),
                target(f"nv_gpu_memory_total_bytes{wsel}", "{{instance}} {{gpu_uuid}} total"),
            ],
            unit="bytes",
            description=gpu_note,
        ),
        timeseries(
            "GPU power",
            [
                target(f"nv_gpu_power_usage{wsel}", "{{instance}} {{gpu_uuid}} usage"),
                target(f"nv_gpu_power_limit{wsel}", "{{instance}} {{gpu_uuid}} limit"),
            ],
            unit="watt",
            description=gpu_note,
        ),
        timeseries(
            "GPU energy",
            [target(f"rate({nv('nv_energy_consumption')}{wsel}[{RATE}])", "{{instance}} {{gpu_uuid}}")],
            unit="watt",
            description=gpu_note + " Joules per second from nv_energy_consumption.",
        ),
        timeseries(
            "GPU activity (DCGM)",
            [
                target("DCGM_FI_DEV_GPU_UTIL / 100", "GPU {{gpu}} busy"),
                target("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "GPU {{gpu}} tensor cores active"),
            ],
            unit="percentunit",
            max_value=1,
            description=dcgm_note,
        ),
        timeseries(
            "GPU memory and power (DCGM)",
            [
                target("DCGM_FI_DEV_FB_USED * 1024 * 1024", "GPU {{gpu}} memory used"),
                target("DCGM_FI_DEV_POWER_USAGE", "GPU {{gpu}} power (W)"),
            ],
            unit="bytes",
            description=dcgm_note,
        ),
    ]
    return dashboard(
        "triton-dynamo-internals",
        "triton-dynamo / Triton, Dynamo and GPU internals",
        "Triton's nv_* metrics per model and worker, Dynamo's request path, the GPU.",
        panels,
        [model_variable(multi=True), instance_variable()],
    )


def infrastructure() -> dict:
    collector_note = (
        "The OpenTelemetry collector's own metrics (job otel-collector). Their names end in _total in recent "
        "collector versions and not in older ones; the queries match both."
    )
    panels = [
        timeseries(
            "Scrape targets up, by job",
            [target("sum by (job) (up)", "{{job}} up"), target("count by (job) (up)", "{{job}} targets")],
            description="Targets answering their scrape, and all targets, per job.",
            width=24,
            height=7,
        ),
        row("etcd (discovery)"),
        stat(
            "etcd has a leader",
            [target("min(etcd_server_has_leader)", "leader")],
            thresholds=[(0, "red"), (1, "green")],
        ),
        stat(
            "etcd leader changes (1 h)",
            [target("sum(increase(etcd_server_leader_changes_seen_total[1h]))", "changes")],
            thresholds=[(0, "green"), (1, "orange"), (3, "red")],
        ),
        stat("etcd keys", [target("sum(etcd_debugging_mvcc_keys_total)", "keys")]),
        stat(
            "etcd database size",
            [target("max(etcd_mvcc_db_total_size_in_bytes)", "size")],
            unit="bytes",
        ),
        stat("etcd watchers", [target("sum(etcd_debugging_mvcc_watcher_total)", "watchers")]),
        stat(
            "etcd proposals pending",
            [target("sum(etcd_server_proposals_pending)", "pending")],
            thresholds=[(0, "green"), (5, "orange")],
        ),
        timeseries(
            "etcd gRPC requests",
            [
                target(
                    f'sum by (grpc_method) (rate(grpc_server_handled_total{{job="etcd"}}[{RATE}]))', "{{grpc_method}}"
                )
            ],
            unit="reqps",
            description="Discovery traffic: leases, watches and key-value calls from the frontend and workers.",
        ),
        timeseries(
            "etcd disk latency (p99)",
            [
                target(quantile(0.99, "etcd_disk_wal_fsync_duration_seconds"), "WAL fsync"),
                target(quantile(0.99, "etcd_disk_backend_commit_duration_seconds"), "backend commit"),
            ],
            unit="s",
        ),
        row("NATS (request plane)"),
        stat("NATS connections", [target("sum(gnatsd_varz_connections)", "connections")]),
        stat("NATS subscriptions", [target("sum(gnatsd_varz_subscriptions)", "subscriptions")]),
        stat(
            "NATS slow consumers",
            [target("sum(gnatsd_varz_slow_consumers)", "slow consumers")],
            thresholds=[(0, "green"), (1, "red")],
        ),
        stat("NATS memory", [target("sum(gnatsd_varz_mem)", "memory")], unit="bytes"),
        timeseries(
            "NATS messages",
            [
                target(f"sum(rate(gnatsd_varz_in_msgs[{RATE}]))", "in"),
                target(f"sum(rate(gnatsd_varz_out_msgs[{RATE}]))", "out"),
            ],
            unit="short",
            description="Messages per second through nats-server (prometheus-nats-exporter, gnatsd_varz_*). With "
            "the NATS request plane every request and response crosses it.",
        ),
        timeseries(
            "NATS bytes",
            [
                target(f"sum(rate(gnatsd_varz_in_bytes[{RATE}]))", "in"),
                target(f"sum(rate(gnatsd_varz_out_bytes[{RATE}]))", "out"),
            ],
            unit="Bps",
        ),
        row("Tracing: OpenTelemetry collector and Tempo"),
        timeseries(
            "Collector spans",
            [
                target(f'sum(rate({{__name__=~"otelcol_receiver_accepted_spans(_total)?"}}[{RATE}]))', "received"),
                target(f'sum(rate({{__name__=~"otelcol_receiver_refused_spans(_total)?"}}[{RATE}]))', "refused"),
                target(f'sum(rate({{__name__=~"otelcol_exporter_sent_spans(_total)?"}}[{RATE}]))', "exported"),
                target(
                    f'sum(rate({{__name__=~"otelcol_exporter_send_failed_spans(_total)?"}}[{RATE}]))',
                    "export failed",
                ),
            ],
            unit="short",
            description=collector_note,
        ),
        timeseries(
            "Collector export queue",
            [target("sum by (exporter) (otelcol_exporter_queue_size)", "{{exporter}}")],
            description=collector_note,
        ),
        timeseries(
            "Tempo spans received",
            [target(f"sum(rate(tempo_distributor_spans_received_total[{RATE}]))", "spans")],
            unit="short",
            description="Spans Tempo's distributor accepted (job tempo).",
        ),
        row("Prometheus"),
        timeseries(
            "Exemplars stored",
            [target(f"rate(prometheus_tsdb_exemplar_exemplars_appended_total[{RATE}])", "appended")],
            description="Exemplars (trace ids on latency buckets) Prometheus stores; 0 when the workers do not trace "
            "or exemplar storage is off (--enable-feature=exemplar-storage).",
        ),
        timeseries(
            "Series in memory",
            [target("prometheus_tsdb_head_series", "series")],
        ),
    ]
    return dashboard(
        "triton-dynamo-infrastructure",
        "triton-dynamo / Infrastructure",
        "What the service stands on: etcd, NATS, the tracing pipeline, Prometheus.",
        panels,
        [],
    )


DASHBOARDS = {
    "overview.json": overview,
    "model.json": model,
    "internals.json": internals,
    "infrastructure.json": infrastructure,
}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: json.dumps(build(), indent=2, sort_keys=False) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder of the dashboards' JSON")
    args = parser.parse_args(argv)
    stale = []
    for name, content in render().items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text() != content:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python grafana/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
