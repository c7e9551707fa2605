"""The benchmark dashboards: every finished BenchmarkRun's figures (the operator's `tpuserve_benchmark_*` gauges,
docs/metrics.md), across runs ("Benchmark results") and for runs picked side by side ("Compare runs")."""

from __future__ import annotations

from tpuserve_dev.chart.grafana import Dashboard, Panel, Row, Target, Variable

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

BENCH_FILTER = (
    'namespace=~"$namespace", server=~"$server", model=~"$model", accelerator=~"$accelerator", topology=~"$topology"'
)
RUN_FILTER = BENCH_FILTER + ', name=~"$run"'
RUN_LEGEND = "{{namespace}}/{{name}}"


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


def _latency_bars(title: str, description: str, metric: str, stat: str, filt: str) -> Panel:
    """Bars of one latency statistic (the `stat` label) of each run."""
    return _bars(title, description, _quantile(metric, stat, filt), "s", width=6)


def _requests_per_second_bars(filt: str, *, width: int = 8) -> Panel:
    return _bars(
        "Requests/s", "Successful requests per second.", f"{BENCH_RPS}{{{filt}}}", "reqps", width=width, decimals=2
    )


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


def _bench_dashboard(name: str, title: str, description: str, rows: list[Row], *, with_run: bool) -> Dashboard:
    """A dashboard of finished runs (uid tpuserve-<name>), filtered by server, model, slice and, with_run, run."""
    return Dashboard(
        uid=f"tpuserve-{name}",
        title=f"tpuserve / {title}",
        description=description,
        variables=_bench_variables(with_run=with_run),
        rows=rows,
    )


def benchmarks_dashboard() -> Dashboard:
    f = BENCH_FILTER
    description = "Finished BenchmarkRuns across runs: throughput, latency percentiles, goodput, cost, roofline."
    return _bench_dashboard(
        "benchmarks",
        "Benchmark results",
        description,
        with_run=False,
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
                    _requests_per_second_bars(f),
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
                    _latency_bars("TTFT p50", "Median time to first token.", BENCH_TTFT, "p50", f),
                    _latency_bars("TTFT p99", "99th percentile time to first token.", BENCH_TTFT, "p99", f),
                    _latency_bars(
                        "TPOT p50 (JetStream)",
                        "Median JetStream TPOT: latency / output tokens (TTFT included).",
                        BENCH_TPOT,
                        "p50",
                        f,
                    ),
                    _latency_bars(
                        "Decode TPOT p50",
                        "Median decode TPOT: (latency - TTFT) / (output tokens - 1).",
                        BENCH_DECODE_TPOT,
                        "p50",
                        f,
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
    description = "Pick runs and compare them side by side, figure by figure."
    return _bench_dashboard(
        "compare",
        "Compare runs",
        description,
        with_run=True,
        rows=[
            Row("Side by side", [_comparison_table("Selected runs", f, height=8)]),
            Row(
                "Figure by figure",
                [
                    _bars(
                        "Output tokens/s", "Output tokens per second.", f"{BENCH_OUTPUT_TPS}{{{f}}}", "short", width=6
                    ),
                    _requests_per_second_bars(f, width=6),
                    _latency_bars("TTFT p99", "99th percentile time to first token.", BENCH_TTFT, "p99", f),
                    _latency_bars(
                        "Decode TPOT p50", "Median (latency - TTFT) / (output tokens - 1).", BENCH_DECODE_TPOT, "p50", f
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
