"""Faults the operator must survive: killed and restarted in the middle of each phase, and GCS briefly
unavailable. Each test runs its own operator process (it kills it), against the shared local cluster."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster import sim
from localcluster.ports import free_port
from localcluster.wait import wait_for
from tests.operator.conftest import benchmark, checkpoint, operator_env, server, summary_json
from tpuserve_dev.gcs_emulator import make_client, running_gcs_emulator
from tpuserve_dev.operator_harness import Objects, OperatorProcess, condition, convert_summary_json, metric_value

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture
def own_operator(
    kube_cluster: Any,
    crds: None,  # noqa: ARG001 -- requested for its effect (the CRDs installed); marks do not apply to fixtures
    gcs_emulator: str,
    tiny_arch_file: Path,
    tmp_path: Path,
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        kube_cluster.kubeconfig, tmp_path / "operator.log", operator_env(gcs_emulator, tiny_arch_file)
    )
    process.start()
    yield process
    process.stop()


def job_names(objects: Objects, namespace: str) -> list[str]:
    return sorted(j["metadata"]["name"] for j in objects.items("jobs", namespace))


def test_operator_killed_mid_phase_resumes_without_duplicates_or_lost_results(
    own_operator: OperatorProcess,
    objects: Objects,
    namespace: str,
    gcs_bucket: str,
    meta_source: Callable[..., str],
) -> None:
    slow = {sim.RUN_DURATION_ANNOTATION: "8s"}
    run_annotations = {**slow, sim.TERMINATION_MESSAGE_ANNOTATION: summary_json(output_throughput=2500.0)}
    output = f"gs://{gcs_bucket}/out"
    converted = {**slow, sim.TERMINATION_MESSAGE_ANNOTATION: convert_summary_json(output)}
    objects.apply(
        namespace,
        checkpoint("ckpt", meta_source(), output, podAnnotations=converted),
        server("srv", ref="ckpt"),
        benchmark("run", server_ref="srv", podAnnotations=run_annotations),
    )
    # Phase 1: the conversion Job is running. Kill the operator (SIGKILL: no clean-up) and restart it.
    objects.wait_phase("LlamaCheckpoint", namespace, "ckpt", "Converting")
    objects.wait_phase("BenchmarkRun", namespace, "run", "WaitingForServer")
    own_operator.stop(kill=True)
    own_operator.start()
    objects.wait_phase("LlamaCheckpoint", namespace, "ckpt", "Ready", timeout=60)
    # Phase 2: the benchmark Job is running (8 s simulated). Kill again mid-run.
    objects.wait_phase("BenchmarkRun", namespace, "run", "Running", timeout=60)
    own_operator.stop(kill=True)
    # While the operator is down the Job finishes; nothing is lost: the result is in the pod's termination message.
    wait_for(
        lambda: any(
            c.get("type") == "Complete" and c.get("status") == "True"
            for c in (objects.items("jobs", namespace, "tpuserve.dev/benchmarkrun=run")[0].get("status") or {}).get(
                "conditions"
            )
            or []
        ),
        timeout=60,
        description="the benchmark Job completing while the operator is down",
    )
    own_operator.start()
    status = objects.wait_phase("BenchmarkRun", namespace, "run", "Succeeded", "Failed", timeout=60)
    assert status["phase"] == "Succeeded", status
    assert status["results"]["outputThroughput"] == 2500.0
    assert job_names(objects, namespace) == ["ckpt-convert", "run-bench"]  # one Job each, never duplicated
    assert len(objects.items("deployments", namespace)) == 1
    # A restart after the run still exports its figures (re-read from status on resume).
    own_operator.stop()
    own_operator.start()
    labels = {"namespace": namespace, "name": "run", "server": "srv"}
    wait_for(
        lambda: metric_value(own_operator.metrics(), "tpuserve_benchmark_output_throughput_tokens", labels) == 2500.0,
        timeout=30,
        description="the finished run's gauge after a restart",
    )
    assert (
        metric_value(
            own_operator.metrics(), "tpuserve_children_created_total", {"kind": "BenchmarkRun", "child": "Job"}
        )
        == 0
    )


@pytest.mark.usefixtures("crds")
def test_gcs_briefly_unavailable_is_retried_not_failed(
    kube_cluster: Any, objects: Objects, namespace: str, tiny_arch_file: Path, tmp_path: Path
) -> None:
    """The operator's GCS is an emulator on a port where nothing listens at first, then starts (a real outage
    as the client sees it: connection refused), then the source appears."""
    # The source is staged first into an on-disk emulator store on another port, so that when GCS "comes
    # back" on the operator's port it serves the complete source at once (no upload racing the retry).
    storage_base = tmp_path / "gcs-store"
    storage_base.mkdir()
    with running_gcs_emulator(storage_base=storage_base) as staging_endpoint:
        staging_client = make_client(staging_endpoint)
        staging_client.create_bucket("outage-bucket")
        from tpuserve_dev.tiny_checkpoint import TINY, upload_dir, write_meta_source

        write_meta_source(tmp_path / "meta", TINY)
        upload_dir(staging_client, "outage-bucket", tmp_path / "meta", "meta")

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = operator_env(endpoint, tiny_arch_file, TPUSERVE_GCS_TIMEOUT_SECONDS="3")
    process = OperatorProcess(kube_cluster.kubeconfig, tmp_path / "operator.log", env)
    process.start()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(process.stop)
        objects.apply(namespace, checkpoint("ckpt", "gs://outage-bucket/meta", "gs://outage-bucket/out"))

        def unavailable() -> dict[str, Any] | None:
            status = objects.status("LlamaCheckpoint", namespace, "ckpt")
            conds = {c["type"]: c for c in status.get("conditions") or []}
            return status if conds.get("Ready", {}).get("reason") == "GcsUnavailable" else None

        status = wait_for(unavailable, timeout=60, description="Ready=False/GcsUnavailable")
        assert status["phase"] == "Pending"
        assert "retrying" in condition(status, "Ready")["message"]
        # GCS comes back on the operator's port, serving the store staged above.
        cleanup.enter_context(running_gcs_emulator(port=port, storage_base=storage_base))
        status = objects.wait_phase("LlamaCheckpoint", namespace, "ckpt", "Converting", "Ready", "Failed", timeout=60)
        assert status["phase"] in ("Converting", "Ready"), status
        assert job_names(objects, namespace) == ["ckpt-convert"]
        errors = metric_value(process.metrics(), "tpuserve_gcs_errors_total", {"operation": "check_source"})
        assert errors is not None
        assert errors >= 1


@pytest.mark.usefixtures("crds")
def test_retries_end_in_failed_with_the_last_reason(
    kube_cluster: Any, objects: Objects, namespace: str, tiny_arch_file: Path, tmp_path: Path
) -> None:
    """GCS never answers: past TPUSERVE_RETRY_BUDGET_SECONDS the checkpoint is Failed/RetriesExhausted with the
    last reason, instead of Pending forever."""
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = operator_env(endpoint, tiny_arch_file, TPUSERVE_GCS_TIMEOUT_SECONDS="2", TPUSERVE_RETRY_BUDGET_SECONDS="8")
    process = OperatorProcess(kube_cluster.kubeconfig, tmp_path / "operator.log", env)
    process.start()
    try:
        objects.apply(namespace, checkpoint("ckpt", "gs://nowhere-bucket/meta", "gs://nowhere-bucket/out"))
        status = objects.wait_phase("LlamaCheckpoint", namespace, "ckpt", "Failed", timeout=90)
        ready = condition(status, "Ready")
        assert ready["reason"] == "RetriesExhausted"
        assert "TPUSERVE_RETRY_BUDGET_SECONDS=8" in status["message"]
        assert "GCS unavailable" in status["message"]
        assert status["observedGeneration"] == 1
        assert any(e["reason"] == "RetriesExhausted" for e in objects.events(namespace, "ckpt"))
        assert job_names(objects, namespace) == []
    finally:
        process.stop()
