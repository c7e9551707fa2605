"""Each kind's lifecycle on the local cluster with the real operator process: success, failure, and the chain
checkpoint → server → benchmark end to end, with the benchmark really running against JetStream's server.

Real: kube-apiserver/etcd/controller-manager/scheduler, the operator, the GCS emulator, the converter
(`tpuserve convert run`, synthetic MaxText step) and the benchmark (`tpuserve bench run`) as local processes on
node `tpuserve-local`, and JetStream 0.2.2's orchestrator + gRPC server (mock engine). Simulated: the TPU
nodes and the server pods on them (kwok), and Job pods on kwok nodes (exit code / termination message from
pod annotations, where a test says so).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from localcluster import sim
from localcluster.wait import wait_for
from tests.operator.conftest import LOCAL, benchmark, checkpoint, server, sim_service, summary_json
from tpuserve_dev.operator_harness import Objects, OperatorProcess, condition, convert_summary_json, metric_value

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def jobs(objects: Objects, namespace: str) -> list[str]:
    return sorted(j["metadata"]["name"] for j in objects.items("jobs", namespace))


@pytest.mark.jetstream
def test_chain_checkpoint_server_benchmark_with_real_numbers(
    kube_cluster: Any,
    operator: OperatorProcess,
    objects: Objects,
    namespace: str,
    gcs_bucket: str,
    meta_source: Callable[..., str],
    jetstream_mock_server: str,
) -> None:
    if not kube_cluster.has_local_node:
        pytest.skip("needs the local node (real processes)")
    source = meta_source()
    output = f"gs://{gcs_bucket}/maxtext/llama2-7b"
    objects.apply(
        namespace,
        checkpoint("llama2-7b", source, output, **LOCAL),
        server("llama", ref="llama2-7b"),
        benchmark("openorca-like", server_ref="llama", **LOCAL),
    )
    # The server's Service, made while the server waits for its checkpoint and controlled by it: its annotation
    # is the simulated DNS entry that points the benchmark at the local JetStream server.
    srv_body = objects.get("InferenceServer", namespace, "llama")
    assert srv_body is not None
    objects.apply(namespace, sim_service("llama", jetstream_mock_server, srv_body))
    # Everything waits on its dependency first.
    run = objects.wait_phase("BenchmarkRun", namespace, "openorca-like", "WaitingForServer", "Running", "Succeeded")
    assert run["phase"] != "Succeeded" or condition(run, "ServerReady")["status"] == "True"

    ckpt = objects.wait_phase("LlamaCheckpoint", namespace, "llama2-7b", "Ready", "Failed", timeout=180)
    assert ckpt["phase"] == "Ready", ckpt
    assert ckpt["unscannedPath"] == f"{output}/unscanned/checkpoints/0/items"
    assert ckpt["scannedPath"] == f"{output}/scanned/0/items"
    assert ckpt["manifestPath"] == f"{output}/tpuserve-manifest.json"
    assert ckpt["parameterCount"] > 0
    assert condition(ckpt, "Converted")["reason"] == "Converted"

    srv = objects.wait_phase("InferenceServer", namespace, "llama", "Ready", timeout=60)
    assert srv["checkpointPath"] == ckpt["unscannedPath"]
    assert srv["endpoints"]["grpc"] == f"llama.{namespace}.svc.cluster.local:9000"
    assert srv["tpu"] == {
        "accelerator": "tpu-v5-lite-podslice",
        "topology": "2x4",
        "chips": 8,
        "machineType": "ct5lp-hightpu-8t",
    }
    assert condition(srv, "Scheduled")["status"] == "True"
    (deployment,) = objects.items("deployments", namespace)
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"load_parameters_path={ckpt['unscannedPath']}" in args
    node = objects.items("pods", namespace, "tpuserve.dev/inferenceserver=llama")[0]["spec"]["nodeName"]
    assert node.startswith("gke-tpuserve-tpu-v5e-2x4-")

    run = objects.wait_phase("BenchmarkRun", namespace, "openorca-like", "Succeeded", "Failed", timeout=240)
    assert run["phase"] == "Succeeded", run
    results = run["results"]
    assert results["successfulRequests"] == 8
    assert results["failedRequests"] == 0
    assert results["totalOutputTokens"] > 0
    assert results["outputThroughput"] > 0
    assert results["ttftMs"]["median"] > 0
    assert run["server"]["name"] == "llama"
    assert run["server"]["chips"] == 8
    assert f"load_parameters_path={ckpt['unscannedPath']}" in run["server"]["engineArgs"]
    # $/M tokens from the catalog price of a v5e 2x4 host (8 chips x $1.20/h) at the measured rate.
    expected_cost = 8 * 1.20 / 3600 / results["outputThroughput"] * 1e6
    assert run["costPerMillionOutputTokens"] == pytest.approx(expected_cost, rel=1e-3)
    assert 0 < run["rooflineEfficiency"] < 1
    assert jobs(objects, namespace) == ["llama2-7b-convert", "openorca-like-bench"]

    # The same numbers on the operator's metrics endpoint.
    labels = {
        "namespace": namespace,
        "name": "openorca-like",
        "server": "llama",
        "model": "llama2-7b",
        "accelerator": "tpu-v5-lite-podslice",
        "topology": "2x4",
    }
    text = operator.metrics()
    assert metric_value(text, "tpuserve_benchmark_output_throughput_tokens", labels) == pytest.approx(
        results["outputThroughput"]
    )
    assert metric_value(text, "tpuserve_benchmark_ttft_seconds", {**labels, "stat": "p50"}) == pytest.approx(
        results["ttftMs"]["median"] / 1000
    )
    assert metric_value(text, "tpuserve_benchmark_succeeded", labels) == 1
    assert (
        metric_value(text, "tpuserve_objects", {"kind": "BenchmarkRun", "namespace": namespace, "phase": "Succeeded"})
        == 1
    )

    # Every phase change posted an Event.
    reasons = {e["reason"] for e in objects.events(namespace, "llama2-7b")}
    assert {"Converting", "Converted"} <= reasons
    reasons = {e["reason"] for e in objects.events(namespace, "openorca-like")}
    assert {"BenchmarkRunning", "BenchmarkSucceeded"} <= reasons

    # A second checkpoint with the same output reuses the verified conversion: Ready without a Job.
    objects.apply(namespace, checkpoint("again", source, output, **LOCAL))
    again = objects.wait_phase("LlamaCheckpoint", namespace, "again", "Ready", "Failed", timeout=60)
    assert condition(again, "Ready")["reason"] == "ReusedVerifiedOutput"
    assert again["unscannedPath"] == ckpt["unscannedPath"]
    assert "again-convert" not in jobs(objects, namespace)


@pytest.mark.usefixtures("operator")
def test_source_missing_and_incomplete_fail_without_a_job(
    objects: Objects, namespace: str, gcs_bucket: str, meta_source: Callable[..., str]
) -> None:
    incomplete = meta_source("meta/partial", skip=("params.json",))
    objects.apply(
        namespace,
        checkpoint("missing", f"gs://{gcs_bucket}/nothing/here", f"gs://{gcs_bucket}/out1"),
        checkpoint("partial", incomplete, f"gs://{gcs_bucket}/out2"),
    )
    missing = objects.wait_phase("LlamaCheckpoint", namespace, "missing", "Failed")
    assert condition(missing, "Ready")["reason"] == "SourceNotFound"
    assert f"gs://{gcs_bucket}/nothing/here" in missing["message"]
    partial = objects.wait_phase("LlamaCheckpoint", namespace, "partial", "Failed")
    assert condition(partial, "Ready")["reason"] == "SourceIncomplete"
    assert "params.json" in partial["message"]
    assert partial["observedGeneration"] == 1
    assert jobs(objects, namespace) == []
    assert any(
        e["reason"] == "SourceIncomplete" and e["type"] == "Warning" for e in objects.events(namespace, "partial")
    )


@pytest.mark.usefixtures("operator")
def test_conversion_job_failure_reports_the_converters_reason(
    objects: Objects, namespace: str, gcs_bucket: str, meta_source: Callable[..., str]
) -> None:
    from tpuserve.convert.summary import ConvertSummary, FailureReason, Outcome

    message = ConvertSummary(
        ok=False,
        outcome=Outcome.FAILED,
        reason=FailureReason.VERIFICATION_FAILED,
        model="llama2-7b",
        weight_dtype="bfloat16",
        message="decoder.layers_0 has shape (4, 4), expected (64, 64)",
    ).to_termination_message()
    annotations = {sim.EXIT_CODE_ANNOTATION: "6", sim.TERMINATION_MESSAGE_ANNOTATION: message}
    objects.apply(namespace, checkpoint("broken", meta_source(), f"gs://{gcs_bucket}/out", podAnnotations=annotations))
    status = objects.wait_phase("LlamaCheckpoint", namespace, "broken", "Failed", timeout=90)
    assert condition(status, "Converted")["status"] == "False"
    assert condition(status, "Converted")["reason"] == "ConversionFailed"
    assert "VerificationFailed" in status["message"]
    assert "expected (64, 64)" in status["message"]
    assert status["jobName"] == "broken-convert"


@pytest.mark.usefixtures("operator")
def test_server_unschedulable_then_scheduled_status(objects: Objects, namespace: str) -> None:
    # The v5p 2x2x1 pool has two hosts; a third replica cannot be placed.
    objects.apply(
        namespace,
        server("big", path="gs://bkt/ckpt/0/items", tpu={"accelerator": "v5p", "topology": "2x2x1"}, replicas=3),
    )

    def unschedulable() -> dict[str, Any] | None:
        status = objects.status("InferenceServer", namespace, "big")
        conds = {c["type"]: c for c in status.get("conditions") or []}
        scheduled = conds.get("Scheduled")
        return status if scheduled and scheduled["status"] == "False" else None

    status = wait_for(unschedulable, timeout=60, description="Scheduled=False on the server")
    cond = condition(status, "Scheduled")
    assert cond["reason"] == "Unschedulable"
    assert "google.com/tpu" in cond["message"] or "node(s)" in cond["message"]
    assert status["phase"] == "Deploying"
    assert any(e["reason"] == "Unschedulable" for e in objects.events(namespace, "big"))
    # Scale to what fits: every pod gets bound and the server becomes Ready.
    objects.kubectl("patch", "inferenceserver", "big", "-n", namespace, "--type=merge", "-p", '{"spec":{"replicas":2}}')
    status = objects.wait_phase("InferenceServer", namespace, "big", "Ready", timeout=60)
    assert status["readyReplicas"] == 2
    assert status["observedGeneration"] == 2
    assert condition(status, "Scheduled")["status"] == "True"


def test_benchmark_failure_keeps_the_reason_and_partial_results(
    operator: OperatorProcess, objects: Objects, namespace: str
) -> None:
    partial = summary_json(message="server died mid-run: UNAVAILABLE after 100 requests")
    annotations = {sim.EXIT_CODE_ANNOTATION: "1", sim.TERMINATION_MESSAGE_ANNOTATION: partial}
    objects.apply(namespace, benchmark("doomed", target="10.1.2.3:9000", podAnnotations=annotations))
    status = objects.wait_phase("BenchmarkRun", namespace, "doomed", "Failed", timeout=60)
    assert "server died mid-run" in status["message"]
    assert condition(status, "Failed")["status"] == "True"
    assert condition(status, "Failed")["reason"] == "BenchmarkFailed"
    assert status["results"]["successfulRequests"] == 100  # what was measured is kept
    assert "costPerMillionOutputTokens" not in status  # external target: no known slice
    labels = {"namespace": namespace, "name": "doomed"}
    assert metric_value(operator.metrics(), "tpuserve_benchmark_succeeded", labels) == 0


def test_child_deleted_by_hand_is_recreated_and_owner_deletion_collects_children(
    operator: OperatorProcess, objects: Objects, namespace: str
) -> None:
    objects.apply(
        namespace,
        server(
            "srv",
            path="gs://bkt/ckpt/0/items",
            tpu={"accelerator": "v6e", "topology": "2x4"},
            metrics={"podMonitoring": True},
        ),
    )
    status = objects.wait_phase("InferenceServer", namespace, "srv", "Ready", timeout=60)
    # This cluster has no Google Managed Prometheus: detected, said, not an error.
    assert "PodMonitoring not created" in status["message"]
    (old,) = objects.items("deployments", namespace)
    objects.kubectl("delete", "deployment", "srv", "-n", namespace, "--wait=true")

    def recreated() -> bool:
        items = objects.items("deployments", namespace)
        return bool(items) and items[0]["metadata"]["uid"] != old["metadata"]["uid"]

    wait_for(recreated, timeout=60, description="the Deployment recreated")
    objects.kubectl("delete", "service", "srv", "-n", namespace, "--wait=true")
    wait_for(lambda: objects.items("services", namespace), timeout=60, description="the Service recreated")
    objects.wait_phase("InferenceServer", namespace, "srv", "Ready", timeout=60)

    objects.kubectl("delete", "inferenceserver", "srv", "-n", namespace, "--wait=true")
    wait_for(
        lambda: not objects.items("deployments", namespace) and not objects.items("services", namespace),
        timeout=60,
        description="the garbage collector removing the server's children",
    )
    wait_for(
        lambda: (
            not metric_value(
                operator.metrics(),
                "tpuserve_objects",
                {"kind": "InferenceServer", "namespace": namespace, "phase": "Ready"},
            )
        ),
        timeout=30,
        description="the deleted server gone from tpuserve_objects",
    )


@pytest.mark.usefixtures("operator")
def test_waiting_server_proceeds_when_its_checkpoint_appears(
    objects: Objects, namespace: str, gcs_bucket: str, meta_source: Callable[..., str]
) -> None:
    objects.apply(namespace, server("late", ref="later"))
    status = objects.wait_phase("InferenceServer", namespace, "late", "WaitingForCheckpoint")
    assert condition(status, "CheckpointReady")["reason"] == "CheckpointNotFound"
    assert objects.items("deployments", namespace) == []
    # The checkpoint's conversion is simulated by kwok (exit 0 and the converter's summary).
    output = f"gs://{gcs_bucket}/later"
    converted = {sim.TERMINATION_MESSAGE_ANNOTATION: convert_summary_json(output)}
    objects.apply(namespace, checkpoint("later", meta_source(), output, podAnnotations=converted))
    objects.wait_phase("LlamaCheckpoint", namespace, "later", "Ready", timeout=60)
    status = objects.wait_phase("InferenceServer", namespace, "late", "Ready", timeout=60)
    assert status["checkpointPath"] == f"gs://{gcs_bucket}/later/unscanned/checkpoints/0/items"
    assert condition(status, "CheckpointReady")["status"] == "True"
