"""The Grafana dashboards of the chart, built from code (written to charts/tpuserve/dashboards/*.json by
`python -m tpuserve_dev.chart.generate`): one module per dashboard family, on the model in grafana.py.

Every PromQL expression uses the metric names documented in docs/metrics.md (the operator's) and the servers'
names (../shared/facts/jetstream-maxtext.md, vllm-tpu.md); `all_expressions()` lists them with the template
variables substituted so that a test can run each against a real Prometheus.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from tpuserve_dev.chart.dashboards_bench import benchmarks_dashboard, comparison_dashboard
from tpuserve_dev.chart.dashboards_jetstream import jetstream_dashboard
from tpuserve_dev.chart.dashboards_operator import operator_dashboard
from tpuserve_dev.chart.dashboards_vllm import vllm_dashboard
from tpuserve_dev.chart.grafana import Dashboard, dump

__all__ = ["Expression", "all_dashboards", "all_expressions", "dump", "substitute", "variable_query_to_promql"]


def all_dashboards() -> dict[str, Dashboard]:
    """File name -> dashboard (one server dashboard per runtime)."""
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
