"""Grafana's dashboard JSON model, built from a few dataclasses: a Dashboard of Rows of Panels of PromQL Targets,
with query Variables; `dump` writes the JSON the chart ships (charts/tpuserve/dashboards/*.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


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


def server_dashboard(
    runtime: str, runtime_title: str, description: str, servers: Variable, rows: list[Row]
) -> Dashboard:
    """A serving runtime's own metrics (uid tpuserve-<runtime>): the last 3 hours, the servers picked by `servers`."""
    return Dashboard(
        uid=f"tpuserve-{runtime}",
        title=f"tpuserve / {runtime_title} servers",
        description=description,
        time_from="now-3h",
        variables=[servers],
        rows=rows,
    )


def rate(counter: str, window: str = "$__rate_interval") -> str:
    return f"rate({counter}[{window}])"


def increase(counter: str, window: str = "$__rate_interval") -> str:
    return f"increase({counter}[{window}])"


def by(aggregation: str, labels: str, expr: str, legend: str = "", *, instant: bool = False) -> Target:
    """`aggregation by (labels) (expr)`: one series per value of the labels, named by them unless `legend` says."""
    legend = legend or " ".join(f"{{{{{label.strip()}}}}}" for label in labels.split(","))
    return Target(f"{aggregation} by ({labels}) ({expr})", legend, instant=instant)


def histogram_quantile(q: str, histogram: str, *, by: str = "le", selector: str = "") -> str:
    """PromQL for quantile q of a Prometheus histogram; `by` lists the labels kept (it must include le)."""
    return f"histogram_quantile({q}, sum by ({by}) (rate({histogram}_bucket{selector}[$__rate_interval])))"


def p50_p99(
    histogram: str, *, by: str = "le", selector: str = "", legend: str = "p{p}", newer_server_only: bool = False
) -> list[Target]:
    """The median and 99th percentile of a histogram; "{p}" in the legend stands for 50 or 99."""
    return [
        Target(
            histogram_quantile(q, histogram, by=by, selector=selector),
            legend.replace("{p}", str(int(float(q) * 100))),
            newer_server_only=newer_server_only,
        )
        for q in ("0.5", "0.99")
    ]


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
