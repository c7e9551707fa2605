"""Pure parts of the controllers: Job/Pod readings, conditions, and the cost and roofline figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tpuserve import llama, tpu
from tpuserve.api import KINDS, Condition, MeasuredServer
from tpuserve.controllers import measured, observe, render
from tpuserve.controllers.status import Reason, set_condition
from tpuserve.results import BenchmarkSummary, LatencyStats
from tpuserve.settings import OperatorSettings


def pod(
    *,
    container: str = render.BENCH_CONTAINER,
    terminated: dict[str, Any] | None = None,
    scheduled: dict[str, Any] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [scheduled] if scheduled else []}
    if terminated is not None:
        status["containerStatuses"] = [{"name": container, "state": {"terminated": terminated}}]
    return {"metadata": {"name": "p"}, "spec": {}, "status": status}


def test_job_state_reads_complete_and_failed_conditions() -> None:
    assert observe.job_state({"status": {}}).outcome is observe.JobOutcome.RUNNING
    done = observe.job_state(
        {"status": {"conditions": [{"type": "Complete", "status": "True"}], "completionTime": "t"}}
    )
    assert done.outcome is observe.JobOutcome.SUCCEEDED
    assert done.completion_time == "t"
    failed = observe.job_state(
        {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "m"}]}}
    )
    assert (failed.outcome, failed.reason, failed.message) == (observe.JobOutcome.FAILED, "DeadlineExceeded", "m")


def test_terminations_and_scheduler_verdicts() -> None:
    pods = [
        pod(terminated={"exitCode": 1, "message": "first", "finishedAt": "2026-01-01T00:00:01Z"}),
        pod(terminated={"exitCode": 0, "message": "last", "finishedAt": "2026-01-01T00:00:09Z"}),
        pod(container="other", terminated={"exitCode": 0, "message": "no"}),
    ]
    assert [t.message for t in observe.terminations(pods, render.BENCH_CONTAINER)] == ["first", "last"]
    refused = pod(
        scheduled={"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}
    )
    assert observe.unschedulable_message([pod(), refused]) == "0/3 nodes"
    assert observe.unschedulable_message([pod()]) is None
    assert not observe.all_scheduled([pod()])
    assert observe.all_scheduled([{"metadata": {}, "spec": {"nodeName": "n"}, "status": {}}])


def test_condition_transition_time_moves_only_with_the_status() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    t1 = t0 + timedelta(minutes=5)
    conds: list[Condition] = set_condition([], "Ready", False, Reason.CONVERTING, "a", 1, t0)
    conds = set_condition(conds, "Ready", False, Reason.CONVERTING, "b", 1, t1)
    assert conds[0].last_transition_time == t0
    assert conds[0].message == "b"
    conds = set_condition(conds, "Ready", True, Reason.CONVERTED, "c", 2, t1)
    assert conds[0].last_transition_time == t1
    assert conds[0].observed_generation == 2
    assert len(conds) == 1


def _summary_of_a_run() -> BenchmarkSummary:
    stats = LatencyStats(mean=1, median=1, p90=1, p95=1, p99=1, max=1)
    return BenchmarkSummary(
        successful_requests=1000,
        failed_requests=0,
        duration_seconds=100,
        total_input_tokens=200_000,
        total_output_tokens=300_000,
        request_throughput=10,
        input_throughput=2000,
        output_throughput=3000,
        ttft_ms=stats,
    )


def _measured(**typed: Any) -> MeasuredServer:
    values: dict[str, Any] = {"weight_dtype": "bfloat16", "decode_batch": 88, **typed}
    return MeasuredServer(
        name="s", model="llama2-7b", accelerator="tpu-v5-lite-podslice", topology="2x4", chips=8, replicas=1, **values
    )


def test_cost_and_roofline_follow_the_catalog() -> None:
    summary = _summary_of_a_run()
    settings = OperatorSettings(tpu_prices={"v5e": 1.0})
    cost, roofline = measured.derived(settings, "s", _measured(), summary)
    slice_ = tpu.resolve("v5e", "2x4")
    # Status figures are rounded to four significant figures (results.readable): compare at that precision.
    assert cost == pytest.approx(8 * 1.0 / 3600 / 3000 * 1e6, rel=1e-3)
    arch = llama.arch("llama2-7b")
    ceiling = tpu.decode_roofline_tokens_per_second(
        slice_, arch.weight_bytes(), arch.kv_bytes_per_token(), 88, 200 + 150
    )
    assert roofline == pytest.approx(3000 / ceiling, rel=1e-3)
    # An external target has no known slice: no cost, no roofline.
    assert measured.derived(settings, None, _measured(), summary) == (None, None)
    # No typed decode batch (a status recorded before it was): a cost, but no roofline rather than a guess.
    assert measured.derived(settings, "s", _measured(decode_batch=None), summary)[1] is None


@pytest.mark.parametrize(("quantization", "bytes_per_weight"), [(None, 2), ("int8", 1), ("fp8", 1), ("int4", 0.5)])
def test_roofline_counts_the_quantized_weight_bytes(quantization: str | None, bytes_per_weight: float) -> None:
    """int4 weights move half the bytes of int8 per decode step: each quantization has its own ceiling."""
    summary = _summary_of_a_run()
    _, roofline = measured.derived(OperatorSettings(), "s", _measured(quantization=quantization), summary)
    arch = llama.arch("llama2-7b")
    weight_bytes = int(arch.num_parameters * bytes_per_weight)
    ceiling = tpu.decode_roofline_tokens_per_second(
        tpu.resolve("v5e", "2x4"), weight_bytes, arch.kv_bytes_per_token(), 88, 200 + 150
    )
    assert roofline == pytest.approx(3000 / ceiling, rel=1e-3)


def test_measured_server_carries_typed_engine_facts() -> None:
    from tpuserve import images
    from tpuserve.api import InferenceServer

    spec = {
        "model": "llama2-7b",
        "checkpointPath": "gs://bucket/ckpt",
        "tpu": {"accelerator": "v5e", "topology": "2x4"},
        "engine": {"perDeviceBatchSize": 4, "quantization": "int4"},
    }
    server = InferenceServer.model_validate({"metadata": {"name": "s"}, "spec": spec})
    facts = measured.measured_server(server, {"readyReplicas": 1}, "s:9000", images.GOOGLE_SERVER_IMAGE)
    assert (facts.weight_dtype, facts.quantization, facts.decode_batch) == ("bfloat16", "int4", 32)


def test_container_problem_names_the_stuck_container() -> None:
    stuck = {
        "metadata": {"name": "srv-1"},
        "status": {
            "containerStatuses": [
                {"name": "jetstream-http", "state": {"running": {}}},
                {"name": "jetstream", "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m"}}},
            ]
        },
    }
    assert observe.container_problem([stuck]) == "srv-1/jetstream: CrashLoopBackOff: back-off 5m"
    starting = {
        "metadata": {"name": "p"},
        "status": {"containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}]},
    }
    assert observe.container_problem([starting]) is None


def test_child_watches_carry_a_server_side_label_selector() -> None:
    """kopf sends settings.watching.label_selectors with the list and watch requests of each matching resource
    (kopf._cogs.clients.watching.watch_objs); the operator's own kinds are watched whole."""
    import kopf
    from kopf._cogs.structs.references import Resource

    from tpuserve.controllers import handlers

    settings = kopf.OperatorSettings()
    handlers.configure_kopf(settings, namespaced=False)
    selector = "app.kubernetes.io/managed-by=tpuserve-operator"
    for group, version, plural in (("batch", "v1", "jobs"), ("apps", "v1", "deployments"), ("", "v1", "pods")):
        assert settings.watching.label_selectors.collect(Resource(group, version, plural)) == [selector]
    for kind in KINDS:
        assert settings.watching.label_selectors.collect(Resource(kind.GROUP, kind.VERSION, kind.PLURAL)) == []
    assert settings.watching.label_selectors.collect(Resource("", "v1", "services")) == []
