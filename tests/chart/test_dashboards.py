"""The Grafana dashboards: well-formed JSON models, every PromQL expression accepted by a real Prometheus, the
JetStream panels answered by a real JetStream 0.2.2 server's metrics and the vLLM panels by a real vLLM server's.
(Data for the operator and benchmark panels comes from a real operator run: test_operator_run.py.)"""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.chart.prometheus import running_jetstream_with_metrics, running_prometheus, unanswered
from tpuserve_dev.chart import dashboards, dashboards_bench
from tpuserve_dev.chart.tools import CHART

FILES = sorted((CHART / "dashboards").glob("*.json"))


def _panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in model["panels"] if p["type"] != "row"]


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_dashboard_json_is_a_well_formed_grafana_model(path: Path) -> None:
    model = json.loads(path.read_text())
    assert model["uid"]
    assert model["title"].startswith("tpuserve / ")
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in model["templating"]["list"]}
    assert "datasource" in variables
    for panel in _panels(model):
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["description"], f"{panel['title']} has no description"
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval", "__interval", "__range"}
            assert used <= variables, f"{panel['title']}: undefined variables {used - variables}"


def test_the_issue_figures_are_on_the_benchmark_dashboard() -> None:
    """Output tok/s, req/s, TTFT and TPOT percentiles, goodput, cost per million tokens, roofline efficiency,
    filterable by namespace, server, model, accelerator and topology."""
    model = json.loads((CHART / "dashboards" / "tpuserve-benchmarks.json").read_text())
    exprs = " ".join(t["expr"] for p in _panels(model) for t in p["targets"])
    for metric in (
        dashboards_bench.BENCH_OUTPUT_TPS,
        dashboards_bench.BENCH_RPS,
        dashboards_bench.BENCH_TTFT,
        dashboards_bench.BENCH_TPOT,
        dashboards_bench.BENCH_GOODPUT,
        dashboards_bench.BENCH_COST,
        dashboards_bench.BENCH_ROOFLINE,
    ):
        assert metric in exprs, metric
    assert 'stat="p50"' in exprs
    assert 'stat="p99"' in exprs
    names = [v["name"] for v in model["templating"]["list"]]
    assert names == ["datasource", "namespace", "server", "model", "accelerator", "topology"]


@pytest.mark.slow
def test_every_expression_is_valid_promql_for_a_real_prometheus(tmp_path: Path) -> None:
    """A syntax or type error in any panel or variable query fails here (Prometheus answers 400)."""
    expressions = list(dashboards.all_expressions())
    assert len(expressions) > 40
    with running_prometheus({}, tmp_path / "prometheus") as prometheus:
        errors = []
        for expression in expressions:
            try:
                prometheus.query(expression.expr)
            except Exception as error:  # urllib raises HTTPError 400 with Prometheus' message in the body
                body = getattr(error, "read", lambda: b"")().decode()
                errors.append(f"{expression.dashboard} / {expression.panel}: {expression.expr}: {error} {body}")
    assert not errors, "\n".join(errors)


@pytest.mark.jetstream
@pytest.mark.slow
def test_jetstream_panels_answer_from_a_real_jetstream_server(tmp_path: Path) -> None:
    """JetStream 0.2.2 (its orchestrator with the mock engine, prometheus_port on, as in MaxText's server) scraped by
    a real Prometheus: every expression of the JetStream dashboard that v0.2.2 can answer returns data."""
    jetstream = [e for e in dashboards.all_expressions() if e.dashboard == "tpuserve-jetstream.json"]
    answerable = [e for e in jetstream if not e.newer_server_only]
    assert len(answerable) >= 3
    with (
        running_jetstream_with_metrics(tmp_path / "jetstream") as (_grpc, metrics),
        running_prometheus({"jetstream": [metrics]}, tmp_path / "prometheus") as prometheus,
    ):
        prometheus.wait_for_targets_up()
        missing = unanswered(prometheus, answerable, timeout=30)
        assert not missing, [f"{e.panel}: {e.expr}" for e in missing]
        # Newer-server panels must still be valid PromQL (they are empty against v0.2.2).
        for expression in jetstream:
            if expression.newer_server_only:
                assert prometheus.query(expression.expr) == [], expression.expr


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_panels_answer_from_a_real_vllm_server(tmp_path: Path) -> None:
    """vLLM's real OpenAI API server (its CPU build, started with the arguments the operator renders for a vllm-tpu
    InferenceServer, tpuserve_dev.vllm_rendered) scraped by a real Prometheus while streaming completions run: every
    expression of the vLLM dashboard returns data."""
    from tpuserve.api import InferenceServerSpec
    from tpuserve.controllers import render_vllm
    from tpuserve_dev.vllm_rendered import start_rendered_server

    vllm = [e for e in dashboards.all_expressions() if e.dashboard == "tpuserve-vllm.json"]
    assert len(vllm) >= 10
    spec = InferenceServerSpec.model_validate(
        {
            "runtime": "vllm-tpu",
            "model": "llama3.1-8b",
            "checkpointPath": "gs://models/llama3.1-8b/hf",
            "tpu": {"accelerator": "v6e", "topology": "2x4"},
            "vllm": {"maxModelLen": 256, "maxNumSeqs": 4},
        }
    )
    args = render_vllm.vllm_args(spec, render_vllm.WeightSource("gs://models/llama3.1-8b/hf"))
    with start_rendered_server(args, tmp_path / "vllm.log") as server:
        stop = threading.Event()

        def load() -> None:  # streaming completions, two at a time (queue, KV cache, prefix cache all move)
            body = json.dumps(
                {"model": "llama3.1-8b", "prompt": "the tensor processing unit serves", "max_tokens": 8, "stream": True}
            ).encode()
            while not stop.is_set():
                request = urllib.request.Request(
                    f"{server.base_url}/v1/completions", body, {"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    response.read()

        workers = [threading.Thread(target=load, daemon=True) for _ in range(2)]
        for worker in workers:
            worker.start()
        try:
            host_port = server.base_url.removeprefix("http://")
            with running_prometheus({"vllm": [host_port]}, tmp_path / "prometheus") as prometheus:
                prometheus.wait_for_targets_up()
                missing = unanswered(prometheus, vllm, timeout=90)
                assert not missing, [f"{e.panel}: {e.expr}" for e in missing]
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=30)
