"""The Grafana dashboards of the chart, built from code (written to charts/tpuserve/dashboards/*.json by
`python -m tpuserve_dev.chart.generate`).

Every PromQL expression uses the metric names documented in docs/metrics.md (the operator's) and the JetStream
server's names (../shared/facts/jetstream-maxtext.md); `all_expressions()` lists them with the template variables
substituted so that a test can run each against a real Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# --- metric names (docs/metrics.md) -------------------------------------------------------------------------------
# Finished BenchmarkRuns, one series per run; labels namespace, name, server, model, accelerator, topology.
BENCH_LABELS = ("namespace", "name", "server", "model", "accelerator", "topology")
BENCH_OUTPUT_TPS = "tpuserve_benchmark_output_throughput_tokens"
BENCH_INPUT_TPS = "tpuserve_benchmark_input_throughput_tokens"
BENCH_RPS = "tpuserve_benchmark_request_throughput"
# Latency gauges carry label stat = mean | p50 | p90 | p95 | p99 | max.
BENCH_TTFT = "tpuserve_benchmark_ttft_seconds"
BENCH_TPOT = "tpuserve_benchmark_tpot_seconds"
BENCH_DECODE_TPOT = "tpuserve_benchmark_decode_tpot_seconds"
BENCH_GOODPUT = "tpuserve_benchmark_goodput_requests"  # requests/s meeting every SLO (runs with spec.slo)
BENCH_COST = "tpuserve_benchmark_cost_per_million_output_tokens_usd"
BENCH_ROOFLINE = "tpuserve_benchmark_roofline_efficiency"
BENCH_SUCCEEDED_REQUESTS = "tpuserve_benchmark_successful_requests"
BENCH_FAILED_REQUESTS = "tpuserve_benchmark_failed_requests"
BENCH_DURATION = "tpuserve_benchmark_duration_seconds"
BENCH_COMPLETION = "tpuserve_benchmark_completion_timestamp_seconds"
BENCH_SUCCEEDED = "tpuserve_benchmark_succeeded"
# The operator itself.
RECONCILES = "tpuserve_reconcile_total"  # counter; labels kind, result (ok | retry | error | invalid)
RECONCILE_DURATION = "tpuserve_reconcile_duration_seconds"  # histogram; label kind
OBJECTS = "tpuserve_objects"  # gauge; labels kind, namespace, phase
CHILDREN_CREATED = "tpuserve_children_created_total"  # counter; labels kind, child
STATUS_UPDATES = "tpuserve_status_updates_total"  # counter; label kind
WAKEUPS = "tpuserve_dependency_wakeups_total"  # counter; label kind
GCS_ERRORS = "tpuserve_gcs_errors_total"  # counter; label operation
OPERATOR_INFO = "tpuserve_operator_info"  # gauge 1; label version
PROCESS_RSS = "process_resident_memory_bytes"  # prometheus_client's default process collector
PROCESS_CPU = "process_cpu_seconds_total"
# The JetStream server (v0.2.2 names first; newer MaxText servers add the rest).
JS_PREFILL_BACKLOG = "jetstream_prefill_backlog_size"
JS_SLOTS_AVAILABLE = "jetstream_slots_available_percentage"
JS_NEWER = (
    "jetstream_transfer_backlog_size",
    "jetstream_generate_backlog_size",
    "jetstream_slots_used_percentage",
    "jetstream_time_to_first_token",
    "jetstream_time_per_output_token",
    "jetstream_request_success_count",
    "jetstream_queue_duration",
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
BENCH_FILTER = (
    'namespace=~"$namespace", server=~"$server", model=~"$model", accelerator=~"$accelerator", topology=~"$topology"'
)
RUN_FILTER = BENCH_FILTER + ', name=~"$run"'
RUN_LEGEND = "{{namespace}}/{{name}}"


@dataclass
class Target:
    expr: str
    legend: str = ""
    instant: bool = False
    # Metrics only newer JetStream/MaxText servers export (not v0.2.2): the Prometheus test cannot produce them.
    newer_server_only: bool = False


@dataclass
class Panel:
    title: str
    description: str
    targets: list[Target]
    kind: str = "timeseries"  # timeseries | stat | bargauge | table
    unit: str = "short"
    width: int = 12
    height: int = 8
    options: dict[str, Any] = field(default_factory=dict)
    transformations: list[dict[str, Any]] = field(default_factory=list)
    decimals: int | None = None


@dataclass
class Row:
    title: str
    panels: list[Panel]


@dataclass
class Variable:
    name: str
    label: str
    query: str  # label_values(...) expression
    multi: bool = True


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    rows: list[Row]
    variables: list[Variable] = field(default_factory=list)
    tags: tuple[str, ...] = ("tpuserve",)
    time_from: str = "now-7d"


# --- rendering to Grafana's JSON model -----------------------------------------------------------------------------


def _target_json(target: Target, ref: str, panel_kind: str) -> dict[str, Any]:
    return {
        "refId": ref,
        "datasource": DATASOURCE,
        "expr": target.expr,
        "legendFormat": target.legend or "__auto",
        "instant": target.instant,
        "range": not target.instant,
        # Tables merge instant queries as rows; other panels keep one series per run (named by the legend).
        "format": "table" if panel_kind == "table" else "time_series",
    }


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": [_target_json(t, chr(ord("A") + i), panel.kind) for i, t in enumerate(panel.targets)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": panel.options,
        "transformations": panel.transformations,
    }


def _variable_json(var: Variable) -> dict[str, Any]:
    return {
        "name": var.name,
        "label": var.label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": var.query,
        "query": {"query": var.query, "refId": f"{var.name}-values", "qryType": 1},
        "refresh": 2,
        "includeAll": True,
        "multi": var.multi,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def to_json(dashboard: Dashboard) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    panel_id = 1
    y = 0
    for row in dashboard.rows:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id += 1
        y += 1
        x = 0
        row_height = 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y, row_height = 0, y + row_height, 0
            panels.append(_panel_json(panel, panel_id, x, y))
            panel_id += 1
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    templating = [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
        },
        *(_variable_json(v) for v in dashboard.variables),
    ]
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "1m",
        "time": {"from": dashboard.time_from, "to": "now"},
        "timezone": "browser",
        "templating": {"list": templating},
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def dump(dashboard: Dashboard) -> str:
    return json.dumps(to_json(dashboard), indent=1, sort_keys=True) + "\n"


# --- the dashboards ------------------------------------------------------------------------------------------------


def _bench_variables(*, with_run: bool = False) -> list[Variable]:
    base = BENCH_OUTPUT_TPS
    chain = [
        Variable("namespace", "Namespace", f"label_values({base}, namespace)"),
        Variable("server", "Server", f'label_values({base}{{namespace=~"$namespace"}}, server)'),
        Variable("model", "Model", f'label_values({base}{{namespace=~"$namespace", server=~"$server"}}, model)'),
        Variable(
            "accelerator",
            "Accelerator",
            f'label_values({base}{{namespace=~"$namespace", server=~"$server", model=~"$model"}}, accelerator)',
        ),
        Variable(
            "topology",
            "Topology",
            f'label_values({base}{{namespace=~"$namespace", server=~"$server", model=~"$model", '
            f'accelerator=~"$accelerator"}}, topology)',
        ),
    ]
    if with_run:
        chain.append(Variable("run", "Runs", f"label_values({base}{{{BENCH_FILTER}}}, name)"))
    return chain


def _bars(title: str, description: str, expr: str, unit: str, *, width: int = 8, decimals: int | None = None) -> Panel:
    return Panel(
        title,
        description,
        [Target(expr, RUN_LEGEND, instant=True)],
        kind="bargauge",
        unit=unit,
        width=width,
        decimals=decimals,
        options={
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True},
        },
    )


def _histogram_quantile(q: str, histogram: str, by: str = "", selector: str = "") -> str:
    labels = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) (rate({histogram}_bucket{selector}[$__rate_interval])))"


def _quantile(metric: str, q: str, filt: str) -> str:
    """One latency statistic of the runs: q is the `stat` label (mean, p50, p90, p95, p99, max)."""
    return f'{metric}{{{filt}, stat="{q}"}}'


def _comparison_table(title: str, filt: str, *, width: int = 24, height: int = 10) -> Panel:
    """One row per run, one column per figure: instant queries merged on the run labels."""
    columns: list[tuple[str, str]] = [
        ("Output tok/s", f"{BENCH_OUTPUT_TPS}{{{filt}}}"),
        ("Req/s", f"{BENCH_RPS}{{{filt}}}"),
        ("TTFT p50 (s)", _quantile(BENCH_TTFT, "p50", filt)),
        ("TTFT p99 (s)", _quantile(BENCH_TTFT, "p99", filt)),
        ("TPOT p50 (s)", _quantile(BENCH_TPOT, "p50", filt)),
        ("TPOT p99 (s)", _quantile(BENCH_TPOT, "p99", filt)),
        ("Decode TPOT p50 (s)", _quantile(BENCH_DECODE_TPOT, "p50", filt)),
        ("Goodput req/s", f"{BENCH_GOODPUT}{{{filt}}}"),
        ("$ / M output tokens", f"{BENCH_COST}{{{filt}}}"),
        ("Roofline efficiency", f"{BENCH_ROOFLINE}{{{filt}}}"),
        ("Failed requests", f"{BENCH_FAILED_REQUESTS}{{{filt}}}"),
        ("Duration (s)", f"{BENCH_DURATION}{{{filt}}}"),
        ("Finished (unix s)", f"{BENCH_COMPLETION}{{{filt}}}"),
        ("Succeeded", f"{BENCH_SUCCEEDED}{{{filt}}}"),
    ]
    # `max by (labels)` drops the metric-specific labels (stat) so that every query joins on the run.
    by = ", ".join(BENCH_LABELS)
    targets = [Target(f"max by ({by}) ({expr})", instant=True) for _, expr in columns]
    renames = {f"Value #{chr(ord('A') + i)}": name for i, (name, _) in enumerate(columns)}
    return Panel(
        title,
        "Every finished BenchmarkRun matching the filters, one row each (the figures in its status.results).",
        targets,
        kind="table",
        width=width,
        height=height,
        options={"showHeader": True, "sortBy": [{"displayName": "Output tok/s", "desc": True}]},
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {"excludeByName": {"Time": True}, "renameByName": renames, "indexByName": {}},
            },
        ],
    )


def benchmarks_dashboard() -> Dashboard:
    f = BENCH_FILTER
    return Dashboard(
        uid="tpuserve-benchmarks",
        title="tpuserve / Benchmark results",
        description="Finished BenchmarkRuns across runs: throughput, latency percentiles, goodput, cost, roofline.",
        variables=_bench_variables(),
        rows=[
            Row("Runs", [_comparison_table("All runs", f)]),
            Row(
                "Throughput",
                [
                    _bars(
                        "Output tokens/s",
                        "Output tokens per second of each run.",
                        f"{BENCH_OUTPUT_TPS}{{{f}}}",
                        "short",
                    ),
                    _bars("Requests/s", "Successful requests per second.", f"{BENCH_RPS}{{{f}}}", "reqps", decimals=2),
                    _bars(
                        "Goodput (requests/s meeting the SLOs)",
                        "Requests per second that met every SLO of the run (spec.slo).",
                        f"{BENCH_GOODPUT}{{{f}}}",
                        "reqps",
                        decimals=2,
                    ),
                ],
            ),
            Row(
                "Latency",
                [
                    _bars("TTFT p50", "Median time to first token.", _quantile(BENCH_TTFT, "p50", f), "s", width=6),
                    _bars(
                        "TTFT p99",
                        "99th percentile time to first token.",
                        _quantile(BENCH_TTFT, "p99", f),
                        "s",
                        width=6,
                    ),
                    _bars(
                        "TPOT p50 (JetStream)",
                        "Median JetStream TPOT: latency / output tokens (TTFT included).",
                        _quantile(BENCH_TPOT, "p50", f),
                        "s",
                        width=6,
                    ),
                    _bars(
                        "Decode TPOT p50",
                        "Median decode TPOT: (latency - TTFT) / (output tokens - 1).",
                        _quantile(BENCH_DECODE_TPOT, "p50", f),
                        "s",
                        width=6,
                    ),
                ],
            ),
            Row(
                "Cost and efficiency",
                [
                    _bars(
                        "$ per million output tokens",
                        "On-demand TPU price of the slice (chart value tpuPrices) / output tokens per second.",
                        f"{BENCH_COST}{{{f}}}",
                        "currencyUSD",
                        width=12,
                        decimals=3,
                    ),
                    _bars(
                        "Roofline efficiency",
                        "Output tokens/s over the memory-bound decode ceiling of the slice for this model.",
                        f"{BENCH_ROOFLINE}{{{f}}}",
                        "percentunit",
                        width=12,
                    ),
                ],
            ),
            Row(
                "Over time",
                [
                    Panel(
                        "Output tokens/s by accelerator and topology (best run)",
                        "The best finished run per slice shape, as runs finish.",
                        [
                            Target(
                                f"max by (accelerator, topology) ({BENCH_OUTPUT_TPS}{{{f}}})",
                                "{{accelerator}} {{topology}}",
                            )
                        ],
                        unit="short",
                    ),
                    Panel(
                        "$ per million output tokens by model (cheapest run)",
                        "The cheapest finished run per model.",
                        [Target(f"min by (model) ({BENCH_COST}{{{f}}})", "{{model}}")],
                        unit="currencyUSD",
                        decimals=3,
                    ),
                ],
            ),
        ],
    )


def comparison_dashboard() -> Dashboard:
    f = RUN_FILTER
    return Dashboard(
        uid="tpuserve-compare",
        title="tpuserve / Compare runs",
        description="Pick runs and compare them side by side, figure by figure.",
        variables=_bench_variables(with_run=True),
        rows=[
            Row("Side by side", [_comparison_table("Selected runs", f, height=8)]),
            Row(
                "Figure by figure",
                [
                    _bars(
                        "Output tokens/s", "Output tokens per second.", f"{BENCH_OUTPUT_TPS}{{{f}}}", "short", width=6
                    ),
                    _bars(
                        "Requests/s",
                        "Successful requests per second.",
                        f"{BENCH_RPS}{{{f}}}",
                        "reqps",
                        width=6,
                        decimals=2,
                    ),
                    _bars(
                        "TTFT p99",
                        "99th percentile time to first token.",
                        _quantile(BENCH_TTFT, "p99", f),
                        "s",
                        width=6,
                    ),
                    _bars(
                        "Decode TPOT p50",
                        "Median (latency - TTFT) / (output tokens - 1).",
                        _quantile(BENCH_DECODE_TPOT, "p50", f),
                        "s",
                        width=6,
                    ),
                    _bars(
                        "Goodput share",
                        "Share of successful requests that met every SLO (runs with spec.slo).",
                        f"{BENCH_GOODPUT}{{{f}}} / {BENCH_RPS}{{{f}}}",
                        "percentunit",
                        width=6,
                    ),
                    _bars(
                        "$ per million output tokens",
                        "At the on-demand price of the slice.",
                        f"{BENCH_COST}{{{f}}}",
                        "currencyUSD",
                        width=6,
                        decimals=3,
                    ),
                    _bars(
                        "Roofline efficiency",
                        "Output tokens/s over the memory-bound decode ceiling.",
                        f"{BENCH_ROOFLINE}{{{f}}}",
                        "percentunit",
                        width=6,
                    ),
                    _bars(
                        "Failed requests",
                        "Requests that failed (any gRPC error) in the headline stage.",
                        f"{BENCH_FAILED_REQUESTS}{{{f}}}",
                        "short",
                        width=6,
                    ),
                ],
            ),
        ],
    )


def operator_dashboard() -> Dashboard:
    return Dashboard(
        uid="tpuserve-operator",
        title="tpuserve / Operator",
        description="The operator's health: reconciles, errors, durations, objects by phase, process resources.",
        time_from="now-6h",
        # The scrape job(s) of the operator: the ones that export its info metric (present from start-up).
        variables=[Variable("job", "Operator scrape job", f"label_values({OPERATOR_INFO}, job)")],
        rows=[
            Row(
                "Objects",
                [
                    Panel(
                        "Objects by kind and phase",
                        "LlamaCheckpoints, InferenceServers and BenchmarkRuns the operator sees, by phase.",
                        [Target(f"sum by (kind, phase) ({OBJECTS})", "{{kind}} {{phase}}")],
                        width=12,
                    ),
                    Panel(
                        "Failed objects",
                        "Objects in phase Failed: `kubectl describe` them for the reason.",
                        [Target(f'sum by (kind) ({OBJECTS}{{phase="Failed"}})', "{{kind}}", instant=True)],
                        kind="stat",
                        width=12,
                    ),
                ],
            ),
            Row(
                "Reconciles",
                [
                    Panel(
                        "Reconciles per second by kind and result",
                        "Handler runs; result=error retries with backoff.",
                        [
                            Target(
                                f"sum by (kind, result) (rate({RECONCILES}[$__rate_interval]))", "{{kind}} {{result}}"
                            )
                        ],
                        unit="ops",
                        width=8,
                    ),
                    Panel(
                        "Reconcile errors (last hour)",
                        "Reconciles that raised, by kind.",
                        # The operator pre-initialises every (kind, result): no errors shows 0, not "No data".
                        [
                            Target(
                                f'sum by (kind) (increase({RECONCILES}{{result=~"error|invalid"}}[1h]))',
                                "{{kind}}",
                            )
                        ],
                        width=8,
                    ),
                    Panel(
                        "Reconcile duration p50 / p99",
                        "From the reconcile duration histogram.",
                        [
                            Target(_histogram_quantile("0.5", RECONCILE_DURATION, "kind"), "p50 {{kind}}"),
                            Target(_histogram_quantile("0.99", RECONCILE_DURATION, "kind"), "p99 {{kind}}"),
                        ],
                        unit="s",
                        width=8,
                    ),
                ],
            ),
            Row(
                "Work",
                [
                    Panel(
                        "Children created",
                        "Jobs, Deployments, Services and monitors created; flat across an operator restart.",
                        [Target(f"sum by (kind, child) (increase({CHILDREN_CREATED}[$__rate_interval]))", "{{child}}")],
                        kind="timeseries",
                        width=6,
                    ),
                    Panel(
                        "Status updates",
                        "Status patches written (only when something changed).",
                        [Target(f"sum by (kind) (rate({STATUS_UPDATES}[$__rate_interval]))", "{{kind}}")],
                        unit="ops",
                        width=6,
                    ),
                    Panel(
                        "Dependency wake-ups",
                        "Servers woken by a checkpoint becoming Ready, runs woken by a server becoming Ready.",
                        [Target(f"sum by (kind) (increase({WAKEUPS}[$__rate_interval]))", "{{kind}}")],
                        width=6,
                    ),
                    Panel(
                        "GCS retries (last hour)",
                        "GCS calls that failed transiently and were retried; 0 is normal.",
                        [Target(f"sum by (operation) (increase({GCS_ERRORS}[1h]))", "{{operation}}")],
                        width=6,
                    ),
                ],
            ),
            Row(
                "Process",
                [
                    Panel(
                        "Up",
                        "1 when Prometheus can scrape the operator.",
                        [Target('up{job=~"$job"}', "{{instance}}", instant=True)],
                        kind="stat",
                        width=4,
                    ),
                    Panel(
                        "Version",
                        "The operator version running.",
                        [Target(f'{OPERATOR_INFO}{{job=~"$job"}}', "{{version}}", instant=True)],
                        kind="stat",
                        width=4,
                        options={"textMode": "name", "reduceOptions": {"calcs": ["lastNotNull"], "values": False}},
                    ),
                    Panel(
                        "Resident memory",
                        "Operator RSS (grows with the number of watched objects).",
                        [Target(f'{PROCESS_RSS}{{job=~"$job"}}', "{{instance}}")],
                        unit="bytes",
                        width=8,
                    ),
                    Panel(
                        "CPU",
                        "Operator CPU cores used.",
                        [Target(f'rate({PROCESS_CPU}{{job=~"$job"}}[$__rate_interval])', "{{instance}}")],
                        unit="short",
                        width=8,
                    ),
                ],
            ),
        ],
    )


def jetstream_dashboard() -> Dashboard:
    pod = 'id=~"$pod"'
    newer = [
        Panel(
            "Time to first token p50 / p99 (server side)",
            "From jetstream_time_to_first_token (newer MaxText servers only).",
            [
                Target(
                    "histogram_quantile(0.5, sum by (le) (rate(jetstream_time_to_first_token_bucket"
                    f"{{{pod}}}[$__rate_interval])))",
                    "p50",
                    newer_server_only=True,
                ),
                Target(
                    "histogram_quantile(0.99, sum by (le) (rate(jetstream_time_to_first_token_bucket"
                    f"{{{pod}}}[$__rate_interval])))",
                    "p99",
                    newer_server_only=True,
                ),
            ],
            unit="s",
        ),
        Panel(
            "Time per output token p50 / p99 (server side)",
            "From jetstream_time_per_output_token (newer MaxText servers only).",
            [
                Target(
                    "histogram_quantile(0.5, sum by (le) (rate(jetstream_time_per_output_token_bucket"
                    f"{{{pod}}}[$__rate_interval])))",
                    "p50",
                    newer_server_only=True,
                ),
                Target(
                    "histogram_quantile(0.99, sum by (le) (rate(jetstream_time_per_output_token_bucket"
                    f"{{{pod}}}[$__rate_interval])))",
                    "p99",
                    newer_server_only=True,
                ),
            ],
            unit="s",
        ),
        Panel(
            "Generate and transfer backlogs",
            "Requests waiting between prefill and decode (newer servers only).",
            [
                Target(f"jetstream_generate_backlog_size{{{pod}}}", "generate {{id}}", newer_server_only=True),
                Target(f"jetstream_transfer_backlog_size{{{pod}}}", "transfer {{id}}", newer_server_only=True),
            ],
        ),
        Panel(
            "Successful requests per second",
            "From jetstream_request_success_count (newer servers only).",
            [
                Target(
                    f"sum by (id) (rate(jetstream_request_success_count_total{{{pod}}}[$__rate_interval]))",
                    "{{id}}",
                    newer_server_only=True,
                )
            ],
            unit="reqps",
        ),
    ]
    return Dashboard(
        uid="tpuserve-jetstream",
        title="tpuserve / JetStream servers",
        description=(
            "The JetStream/MaxText servers' own metrics, when an InferenceServer sets spec.metrics.podMonitoring or "
            "serviceMonitor (label id = pod name). v0.2.2 servers export the backlog and slot gauges only."
        ),
        time_from="now-3h",
        variables=[Variable("pod", "Server pod", "label_values(jetstream_prefill_backlog_size, id)")],
        rows=[
            Row(
                "Queue and slots (every JetStream version)",
                [
                    Panel(
                        "Prefill backlog",
                        "Requests waiting for prefill; GKE autoscales on it.",
                        [Target(f"{JS_PREFILL_BACKLOG}{{{pod}}}", "{{id}}")],
                    ),
                    Panel(
                        "Decode slots available",
                        "Free decode slots in the batch, per generate engine (idx); 0 means the batch is full.",
                        [Target(f"avg by (id) ({JS_SLOTS_AVAILABLE}{{{pod}}})", "{{id}}")],
                        unit="percentunit",
                    ),
                ],
            ),
            Row("Latency and throughput (newer MaxText servers)", newer),
        ],
    )


def all_dashboards() -> dict[str, Dashboard]:
    """File name -> dashboard (one server dashboard per runtime)."""
    from tpuserve_dev.chart.dashboards_vllm import vllm_dashboard  # it builds on this module's types

    return {
        "tpuserve-benchmarks.json": benchmarks_dashboard(),
        "tpuserve-compare.json": comparison_dashboard(),
        "tpuserve-operator.json": operator_dashboard(),
        "tpuserve-jetstream.json": jetstream_dashboard(),
        "tpuserve-vllm.json": vllm_dashboard(),
    }


# --- expressions for verification ----------------------------------------------------------------------------------

# What Grafana substitutes for the variables, for running an expression outside Grafana: "All" is ".*".
_SUBSTITUTIONS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def substitute(expr: str, variables: dict[str, str] | None = None) -> str:
    for key, value in _SUBSTITUTIONS.items():
        expr = expr.replace(key, value)
    values = variables or {}
    return re.sub(r"\$(\w+)", lambda m: values.get(m.group(1), ".*"), expr)


@dataclass(frozen=True)
class Expression:
    dashboard: str
    panel: str
    expr: str  # variables substituted
    newer_server_only: bool


def variable_query_to_promql(query: str) -> str:
    """label_values(METRIC{sel}, label) -> a PromQL expression that has data exactly when the variable has values."""
    m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
    if not m:
        raise ValueError(f"unsupported variable query {query!r}")
    return f"count by ({m.group(2)}) ({m.group(1)})"


def all_expressions() -> Iterator[Expression]:
    for file_name, dashboard in all_dashboards().items():
        for var in dashboard.variables:
            yield Expression(
                file_name,
                f"variable {var.name}",
                substitute(variable_query_to_promql(var.query)),
                newer_server_only=False,
            )
        for row in dashboard.rows:
            for panel in row.panels:
                for target in panel.targets:
                    yield Expression(file_name, panel.title, substitute(target.expr), target.newer_server_only)
