"""docs/metrics.md is a contract with the chart's dashboards: every metric the operator registers is
documented there with its type and labels, and nothing documented is missing from the code."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from tpuserve.metrics import RUN_LABELS, OperatorMetrics
from tpuserve.results import BenchmarkSummary, LatencyStats

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def registered() -> dict[str, tuple[str, set[str]]]:
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    metrics.started()
    stats = LatencyStats(mean=1, median=1, p90=1, p95=1, p99=1, max=1)
    summary = BenchmarkSummary(
        successful_requests=1,
        failed_requests=0,
        duration_seconds=1,
        total_input_tokens=1,
        total_output_tokens=1,
        request_throughput=1,
        input_throughput=1,
        output_throughput=1,
        ttft_ms=stats,
        tpot_ms=stats,
        decode_tpot_ms=stats,
        itl_ms=stats,
        latency_ms=stats,
        goodput={"requests": 1, "share": 1, "rate": 1},
    )
    labels = dict.fromkeys(RUN_LABELS, "x")
    metrics.record_run(labels, summary, succeeded=True, completion_timestamp=1.0, cost=1.0, roofline=0.5)
    metrics.set_phase("BenchmarkRun", "ns", "n", "Succeeded")
    found: dict[str, tuple[str, set[str]]] = {}
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        label_names: set[str] = set()
        for sample in family.samples:
            label_names |= set(sample.labels) - {"le"}
        found[name] = (family.type, label_names)
    return found


def documented() -> dict[str, tuple[str, set[str]]]:
    rows: dict[str, tuple[str, set[str]]] = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"^\| `(tpuserve_[a-z_]+)` \| (gauge|counter|histogram) \|([^|]*)\|", line)
        if match:
            name, kind, labels = match.groups()
            names = set(re.findall(r"`([a-z_]+)`", labels))
            rows[name] = (kind, names)
    return rows


def test_every_metric_is_documented_with_its_type_and_labels() -> None:
    code, doc = registered(), documented()
    assert set(code) == set(doc), set(code) ^ set(doc)
    for name, (kind, labels) in code.items():
        doc_kind, doc_labels = doc[name]
        assert doc_kind == kind, name
        expected = doc_labels | (set(RUN_LABELS) if name.startswith("tpuserve_benchmark_") else set())
        assert labels == expected, (name, labels, expected)
