"""Every branch of the three reconciles, called in-process against the real API server with no operator running:
only the call under test writes, so each test can say exactly what one reconcile wrote, and that a reconcile with
nothing to do writes nothing (the object's resourceVersion and tpuserve_status_updates stay the same).

Real: kube-apiserver/etcd/controller-manager/scheduler (the Job and Deployment controllers act on what the
reconcile creates), kwok's simulated nodes and pods. Dependencies' statuses (a Ready InferenceServer, a Ready
LlamaCheckpoint) are written straight to their status subresource, as the operator would have.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import kopf
import pytest
from prometheus_client import CollectorRegistry

from localcluster import sim
from localcluster.wait import wait_for
from tests.operator.conftest import benchmark as benchmark_manifest
from tests.operator.conftest import checkpoint as checkpoint_manifest
from tests.operator.conftest import server as server_manifest
from tests.operator.conftest import summary_json
from tests.operator.test_mirror_lifecycle import hf_checkpoint
from tpuserve.api import InferenceServer, LlamaCheckpoint
from tpuserve.controllers import benchmark, checkpoint, kube, naming, server
from tpuserve.metrics import OperatorMetrics
from tpuserve.settings import OperatorSettings
from tpuserve_dev.operator_harness import Objects, condition, convert_summary_json

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crds")]

Reconcile = Callable[[kube.Context, str, str], None]


@dataclass
class InProcess:
    """The operator's Context on the test cluster, with its own metrics registry to count status writes."""

    ctx: kube.Context
    registry: CollectorRegistry
    objects: Objects
    namespace: str

    def writes(self, kind: str) -> float:
        return self.registry.get_sample_value("tpuserve_status_updates_total", {"kind": kind}) or 0.0

    def reconciles(self, kind: str, result: str) -> float:
        return self.registry.get_sample_value("tpuserve_reconcile_total", {"kind": kind, "result": result}) or 0.0

    def body(self, kind: str, name: str) -> dict[str, Any]:
        body = self.objects.get(kind, self.namespace, name)
        assert body is not None, f"{kind} {name} is gone"
        return body

    def status(self, kind: str, name: str) -> dict[str, Any]:
        return self.objects.status(kind, self.namespace, name)

    def patch_status(self, kind: str, name: str, status: dict[str, Any]) -> None:
        plural = {"InferenceServer": InferenceServer.PLURAL, "LlamaCheckpoint": LlamaCheckpoint.PLURAL}[kind]
        patch = json.dumps({"status": status})
        self.objects.kubectl(
            "patch", plural, name, "-n", self.namespace, "--subresource=status", "--type=merge", "-p", patch
        )

    def job(self, name: str) -> dict[str, Any] | None:
        return self.objects.get("jobs", self.namespace, name)

    def assert_idle(self, reconcile: Reconcile, kind: str, name: str) -> None:
        """A reconcile with nothing to do writes nothing."""
        before, writes = self.body(kind, name)["metadata"]["resourceVersion"], self.writes(kind)
        reconcile(self.ctx, self.namespace, name)
        assert self.body(kind, name)["metadata"]["resourceVersion"] == before
        assert self.writes(kind) == writes


@pytest.fixture(scope="module")
def context(kube_cluster: Any) -> Iterator[tuple[kube.Context, CollectorRegistry]]:
    registry = CollectorRegistry()
    api = kube.load_api_client(str(kube_cluster.kubeconfig))
    # No GCS in these tests: the checkpoint's GCS checks have their own tests (test_lifecycle, test_faults).
    settings = OperatorSettings(check_gcs=False, tpu_prices={})
    yield kube.Context(api, settings, OperatorMetrics(registry)), registry
    api.close()


@pytest.fixture
def env(context: tuple[kube.Context, CollectorRegistry], objects: Objects, namespace: str) -> InProcess:
    return InProcess(context[0], context[1], objects, namespace)


def run_job(name: str) -> str:
    return naming.job_name_bench(name)


# --- BenchmarkRun -----------------------------------------------------------------------------------------


def test_benchmark_waits_for_a_missing_then_an_unready_server(env: InProcess) -> None:
    env.objects.apply(env.namespace, benchmark_manifest("b", server_ref="srv"))
    benchmark.reconcile_benchmark(env.ctx, env.namespace, "b")
    status = env.status("BenchmarkRun", "b")
    assert status["phase"] == "WaitingForServer"
    assert condition(status, "ServerReady")["reason"] == "ServerNotFound"
    assert env.job(run_job("b")) is None
    env.assert_idle(benchmark.reconcile_benchmark, "BenchmarkRun", "b")

    env.objects.apply(env.namespace, server_manifest("srv", path="gs://bkt/ckpt/0/items"))
    env.patch_status("InferenceServer", "srv", {"phase": "Deploying", "message": "loading weights"})
    benchmark.reconcile_benchmark(env.ctx, env.namespace, "b")
    status = env.status("BenchmarkRun", "b")
    assert condition(status, "ServerReady")["reason"] == "WaitingForServer"
    assert status["message"] == "waiting for InferenceServer srv to become Ready (now Deploying: loading weights)"
    assert env.job(run_job("b")) is None


def test_benchmark_against_a_ready_server_records_typed_engine_facts(env: InProcess) -> None:
    engine = {"perDeviceBatchSize": 2, "quantization": "int4"}
    env.objects.apply(
        env.namespace,
        server_manifest("srv", path="gs://bkt/ckpt/0/items", engine=engine),
        benchmark_manifest("b", server_ref="srv"),
    )
    env.patch_status("InferenceServer", "srv", {"phase": "Ready", "readyReplicas": 1})
    benchmark.reconcile_benchmark(env.ctx, env.namespace, "b")
    status = env.status("BenchmarkRun", "b")
    assert status["phase"] == "Running"
    assert condition(status, "ServerReady")["status"] == "True"
    measured = status["server"]
    assert (measured["quantization"], measured["weightDtype"], measured["decodeBatch"]) == ("int4", "bfloat16", 16)
    assert env.job(run_job("b")) is not None


def test_benchmark_succeeds_with_readable_figures_then_stays(env: InProcess) -> None:
    summary = summary_json(request_throughput=0.5307101048601143, results_uri="gs://bkt/results/b/results.json")
    annotations = {sim.EXIT_CODE_ANNOTATION: "0", sim.TERMINATION_MESSAGE_ANNOTATION: summary}
    env.objects.apply(env.namespace, benchmark_manifest("b", target="10.1.2.3:9000", podAnnotations=annotations))
    benchmark.reconcile_benchmark(env.ctx, env.namespace, "b")
    status = env.status("BenchmarkRun", "b")
    assert status["phase"] == "Running"
    assert condition(status, "ServerReady")["reason"] == "ExternalTarget"
    assert status["message"] == "benchmark Job b-bench started against 10.1.2.3:9000"
    job_done(env, run_job("b"), "Complete")

    benchmark.reconcile_benchmark(env.ctx, env.namespace, "b")
    status = env.status("BenchmarkRun", "b")
    assert status["phase"] == "Succeeded", status
    assert status["results"]["requestThroughput"] == 0.5307  # four significant figures in status
    assert status["resultsURI"] == "gs://bkt/results/b/results.json"
    assert "resultsUri" not in status["results"]  # the URI is spelled once in status
    env.assert_idle(benchmark.reconcile_benchmark, "BenchmarkRun", "b")


def test_benchmark_job_vanished_while_running_fails_the_run(env: InProcess, caplog: pytest.LogCaptureFixture) -> None:
    annotations = {sim.RUN_DURATION_ANNOTATION: "600s"}
    env.objects.apply(env.namespace, benchmark_manifest("b", target="10.1.2.3:9000", podAnnotations=annotations))
    benchmark.reconcile_benchmark(env.ctx, env.namespace, "b")
    assert env.status("BenchmarkRun", "b")["phase"] == "Running"
    benchmark.reconcile_benchmark(env.ctx, env.namespace, "b")  # the Job seen: "is running", then nothing new
    assert env.status("BenchmarkRun", "b")["message"] == "benchmark Job b-bench is running"
    env.assert_idle(benchmark.reconcile_benchmark, "BenchmarkRun", "b")
    env.objects.kubectl("delete", "job", run_job("b"), "-n", env.namespace, "--wait=true")

    with caplog.at_level(logging.INFO, logger="tpuserve.controllers.status"):
        benchmark.reconcile_benchmark(env.ctx, env.namespace, "b")
    status = env.status("BenchmarkRun", "b")
    assert status["phase"] == "Failed"
    assert condition(status, "Failed")["reason"] == "JobFailed"
    assert "disappeared before its results were recorded" in status["message"]
    # A phase change is logged and posted as an Event, once.
    assert f"BenchmarkRun {env.namespace}/b: phase Running -> Failed (JobFailed)" in caplog.text
    failed_events = [e for e in env.objects.events(env.namespace, "b") if e["reason"] == "JobFailed"]
    assert len(failed_events) == 1
    assert failed_events[0]["type"] == "Warning"
    assert env.job(run_job("b")) is None  # not run a second time under the same name
    env.assert_idle(benchmark.reconcile_benchmark, "BenchmarkRun", "b")


def test_benchmark_past_its_deadline_says_so(env: InProcess) -> None:
    annotations = {sim.RUN_DURATION_ANNOTATION: "600s"}
    env.objects.apply(
        env.namespace, benchmark_manifest("b", target="10.1.2.3:9000", timeout="1s", podAnnotations=annotations)
    )
    benchmark.reconcile_benchmark(env.ctx, env.namespace, "b")
    # The rendered deadline is spec.timeout plus a grace of minutes for partial results; a Job's deadline is
    # mutable, so the test shortens it rather than wait.
    deadline = json.dumps({"spec": {"activeDeadlineSeconds": 1}})
    env.objects.kubectl("patch", "job", run_job("b"), "-n", env.namespace, "--type=merge", "-p", deadline)
    job_done(env, run_job("b"), "Failed")

    benchmark.reconcile_benchmark(env.ctx, env.namespace, "b")
    status = env.status("BenchmarkRun", "b")
    assert status["phase"] == "Failed"
    assert condition(status, "Failed")["reason"] == "DeadlineExceeded"
    assert "ran past spec.timeout (1s)" in status["message"]


def test_benchmark_with_a_spec_the_model_refuses_fails_as_invalid(env: InProcess) -> None:
    env.objects.apply(env.namespace, benchmark_manifest("b", target="10.1.2.3:9000"))
    invalid_spec_reconcile(env, benchmark.CONTROLLER.run, "BenchmarkRun", "b", {"numPrompts": -1})
    status = env.status("BenchmarkRun", "b")
    assert status["phase"] == "Failed"
    assert condition(status, "Failed")["reason"] == "InvalidSpec"
    assert status["message"].startswith("invalid spec:")
    assert "numPrompts" in status["message"]
    assert env.job(run_job("b")) is None


@pytest.mark.parametrize(
    ("exit_code", "message", "reason", "words"),
    [
        ("1", None, "JobFailed", "BackoffLimitExceeded"),
        ("1", summary_json(message="server died mid-run"), "BenchmarkFailed", "server died mid-run"),
        ("0", "not a summary", "JobFailed", "left no readable summary (not a summary)"),
    ],
)
def test_benchmark_job_failures_keep_their_reason(
    env: InProcess, exit_code: str, message: str | None, reason: str, words: str
) -> None:
    annotations = {sim.EXIT_CODE_ANNOTATION: exit_code}
    if message is not None:
        annotations[sim.TERMINATION_MESSAGE_ANNOTATION] = message
    env.objects.apply(env.namespace, benchmark_manifest("b", target="10.1.2.3:9000", podAnnotations=annotations))
    benchmark.reconcile_benchmark(env.ctx, env.namespace, "b")
    job_done(env, run_job("b"), "Complete" if exit_code == "0" else "Failed")
    benchmark.reconcile_benchmark(env.ctx, env.namespace, "b")
    status = env.status("BenchmarkRun", "b")
    assert status["phase"] == "Failed"
    assert condition(status, "Failed")["reason"] == reason
    assert words in status["message"]
    env.assert_idle(benchmark.reconcile_benchmark, "BenchmarkRun", "b")


# --- InferenceServer --------------------------------------------------------------------------------------


def test_server_waits_for_a_missing_then_unready_checkpoint(env: InProcess) -> None:
    env.objects.apply(env.namespace, server_manifest("srv", ref="ckpt"))
    server.reconcile_server(env.ctx, env.namespace, "srv")
    status = env.status("InferenceServer", "srv")
    assert status["phase"] == "WaitingForCheckpoint"
    assert condition(status, "CheckpointReady")["reason"] == "CheckpointNotFound"
    env.assert_idle(server.reconcile_server, "InferenceServer", "srv")

    env.objects.apply(env.namespace, checkpoint_manifest("ckpt", "gs://bkt/meta/x", "gs://bkt/out"))
    server.reconcile_server(env.ctx, env.namespace, "srv")
    status = env.status("InferenceServer", "srv")
    assert condition(status, "CheckpointReady")["reason"] == "WaitingForCheckpoint"
    assert env.objects.items("deployments", env.namespace) == []

    env.patch_status("LlamaCheckpoint", "ckpt", {"phase": "Ready", "unscannedPath": "gs://bkt/out/unscanned"})
    server.reconcile_server(env.ctx, env.namespace, "srv")
    status = env.status("InferenceServer", "srv")
    assert status["phase"] == "Deploying"
    assert status["checkpointPath"] == "gs://bkt/out/unscanned"


def test_server_becomes_ready_restores_drifted_children_then_stays(env: InProcess) -> None:
    env.objects.apply(env.namespace, server_manifest("srv", path="gs://bkt/ckpt/0/items"))
    server.reconcile_server(env.ctx, env.namespace, "srv")
    assert env.status("InferenceServer", "srv")["phase"] == "Deploying"
    name = naming.server_name("srv")
    wait_for(
        lambda: (env.objects.get("deployments", env.namespace, name) or {}).get("status", {}).get("readyReplicas"),
        timeout=60,
        description="the server pod ready (kwok)",
    )
    server.reconcile_server(env.ctx, env.namespace, "srv")
    status = env.status("InferenceServer", "srv")
    assert status["phase"] == "Ready"
    assert condition(status, "Available")["status"] == "True"
    env.assert_idle(server.reconcile_server, "InferenceServer", "srv")

    # A hand edit that leaves the rendered hash behind (a stale manifest applied) is patched back...
    stale = {"metadata": {"annotations": {naming.ANNOTATION_SPEC_HASH: "hand-edited"}}, "spec": {"replicas": 3}}
    env.objects.kubectl("patch", "deployment", name, "-n", env.namespace, "--type=merge", "-p", json.dumps(stale))
    # ...and a Service deleted by hand is created again.
    env.objects.kubectl("delete", "service", name, "-n", env.namespace, "--wait=true")
    server.reconcile_server(env.ctx, env.namespace, "srv")
    deployment = env.objects.get("deployments", env.namespace, name) or {}
    assert deployment["spec"]["replicas"] == 1
    assert deployment["metadata"]["annotations"][naming.ANNOTATION_SPEC_HASH] != "hand-edited"
    assert env.objects.get("services", env.namespace, name) is not None


def test_server_that_no_node_can_take_says_why(env: InProcess) -> None:
    # The v5p 2x2x1 pool has two hosts; a third replica cannot be placed.
    tpu = {"accelerator": "v5p", "topology": "2x2x1"}
    env.objects.apply(env.namespace, server_manifest("srv", path="gs://bkt/ckpt/0/items", tpu=tpu, replicas=3))
    server.reconcile_server(env.ctx, env.namespace, "srv")

    def unschedulable() -> bool:
        pods = env.objects.items("pods", env.namespace)
        return any(
            c.get("reason") == "Unschedulable" for p in pods for c in (p.get("status") or {}).get("conditions") or []
        )

    wait_for(unschedulable, timeout=60, description="the scheduler's verdict on the third server pod")
    server.reconcile_server(env.ctx, env.namespace, "srv")
    status = env.status("InferenceServer", "srv")
    assert status["phase"] == "Deploying"
    assert condition(status, "Scheduled")["reason"] == "Unschedulable"
    assert condition(status, "Available")["reason"] == "Unschedulable"
    assert "Add a matching TPU node pool" in condition(status, "Scheduled")["message"]


def test_server_that_cannot_fit_its_slice_fails_before_any_pod(env: InProcess) -> None:
    engine = {"perDeviceBatchSize": 512, "maxTargetLength": 8192}
    env.objects.apply(env.namespace, server_manifest("srv", path="gs://bkt/ckpt/0/items", engine=engine))
    server.reconcile_server(env.ctx, env.namespace, "srv")
    status = env.status("InferenceServer", "srv")
    assert status["phase"] == "Failed"
    assert condition(status, "Available")["reason"] == "InsufficientHbm"
    assert env.objects.items("deployments", env.namespace) == []
    assert env.reconciles("InferenceServer", "invalid") >= 1
    env.assert_idle(server.reconcile_server, "InferenceServer", "srv")


def test_server_with_a_slice_the_catalog_refuses_fails_as_invalid(env: InProcess) -> None:
    env.objects.apply(env.namespace, server_manifest("srv", path="gs://bkt/ckpt/0/items"))
    invalid_spec_reconcile(env, server.CONTROLLER.run, "InferenceServer", "srv", {"tpu": {"topology": "9x9"}})
    status = env.status("InferenceServer", "srv")
    assert status["phase"] == "Failed"
    assert condition(status, "Available")["reason"] == "InvalidSpec"
    assert env.objects.items("deployments", env.namespace) == []


# --- LlamaCheckpoint --------------------------------------------------------------------------------------


def test_checkpoint_job_of_a_stale_generation_is_replaced(env: InProcess) -> None:
    running = {"podAnnotations": {sim.RUN_DURATION_ANNOTATION: "600s"}}
    env.objects.apply(env.namespace, checkpoint_manifest("ckpt", "gs://bkt/meta/x", "gs://bkt/out1", **running))
    checkpoint.reconcile_checkpoint(env.ctx, env.namespace, "ckpt")
    job_name = naming.job_name_convert("ckpt")
    first = env.job(job_name)
    assert first is not None
    assert env.status("LlamaCheckpoint", "ckpt")["phase"] == "Converting"
    checkpoint.reconcile_checkpoint(env.ctx, env.namespace, "ckpt")  # the Job seen: "is running", then nothing new
    env.assert_idle(checkpoint.reconcile_checkpoint, "LlamaCheckpoint", "ckpt")

    env.objects.apply(env.namespace, checkpoint_manifest("ckpt", "gs://bkt/meta/x", "gs://bkt/out2", **running))
    with pytest.raises(kopf.TemporaryError, match="older generation"):
        checkpoint.reconcile_checkpoint(env.ctx, env.namespace, "ckpt")
    wait_for(
        lambda: (env.job(job_name) or {"metadata": {"uid": None}})["metadata"]["uid"] != first["metadata"]["uid"],
        timeout=60,
        description="the old conversion Job deleted",
    )
    checkpoint.reconcile_checkpoint(env.ctx, env.namespace, "ckpt")
    second = env.job(job_name)
    assert second is not None
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    assert second["metadata"]["annotations"][naming.ANNOTATION_GENERATION] == "2"
    status = env.status("LlamaCheckpoint", "ckpt")
    assert status["observedGeneration"] == 2
    assert "gs://bkt/out2" in status["message"]


def test_checkpoint_refuses_an_output_a_ready_server_loads(env: InProcess) -> None:
    env.objects.apply(
        env.namespace,
        checkpoint_manifest("ckpt", "gs://bkt/meta/x", "gs://bkt/out"),
        server_manifest("srv", path="gs://bkt/out/unscanned/0/items"),
    )
    env.patch_status("InferenceServer", "srv", {"phase": "Ready", "checkpointPath": "gs://bkt/out/unscanned/0/items"})
    checkpoint.reconcile_checkpoint(env.ctx, env.namespace, "ckpt")
    status = env.status("LlamaCheckpoint", "ckpt")
    assert status["phase"] == "Failed"
    assert condition(status, "Ready")["reason"] == "OutputInUse"
    assert env.job(naming.job_name_convert("ckpt")) is None
    env.assert_idle(checkpoint.reconcile_checkpoint, "LlamaCheckpoint", "ckpt")


def test_checkpoint_with_a_spec_the_model_refuses_fails_as_invalid(env: InProcess) -> None:
    env.objects.apply(env.namespace, checkpoint_manifest("ckpt", "gs://bkt/meta/x", "gs://bkt/out"))
    invalid_spec_reconcile(env, checkpoint.CONTROLLER.run, "LlamaCheckpoint", "ckpt", {"model": "llama9-1t"})
    status = env.status("LlamaCheckpoint", "ckpt")
    assert status["phase"] == "Failed"
    assert condition(status, "Ready")["reason"] == "InvalidSpec"


@pytest.mark.parametrize(
    ("exit_code", "summary", "phase", "reason"),
    [
        ("0", "converted", "Ready", "Converted"),
        ("0", None, "Failed", "InvalidSummary"),
        ("6", "VerificationFailed", "Failed", "ConversionFailed"),
        ("3", "SourceNotFound", "Failed", "SourceNotFound"),
    ],
)
def test_checkpoint_conversion_job_outcomes(
    env: InProcess, exit_code: str, summary: str | None, phase: str, reason: str
) -> None:
    output = "gs://bkt/out"
    annotations = {sim.EXIT_CODE_ANNOTATION: exit_code}
    if summary is not None:
        annotations[sim.TERMINATION_MESSAGE_ANNOTATION] = convert_summary(output, summary)
    manifest = checkpoint_manifest("ckpt", "gs://bkt/meta/x", output, podAnnotations=annotations)
    env.objects.apply(env.namespace, manifest)
    checkpoint.reconcile_checkpoint(env.ctx, env.namespace, "ckpt")
    job_done(env, naming.job_name_convert("ckpt"), "Complete" if exit_code == "0" else "Failed")

    checkpoint.reconcile_checkpoint(env.ctx, env.namespace, "ckpt")
    status = env.status("LlamaCheckpoint", "ckpt")
    assert status["phase"] == phase
    assert condition(status, "Ready")["reason"] == reason
    assert status["completionTime"]
    if phase == "Ready":
        assert status["unscannedPath"].startswith(output)
    event_reasons = {e["reason"] for e in env.objects.events(env.namespace, "ckpt")}
    assert {"Converting", reason} <= event_reasons  # an Event on every phase change
    env.assert_idle(checkpoint.reconcile_checkpoint, "LlamaCheckpoint", "ckpt")


def test_mirror_of_an_unavailable_hub_is_retried_with_a_new_job(env: InProcess) -> None:
    job_name = failed_mirror_job(env, "HubUnavailable")

    writes = env.writes("LlamaCheckpoint")
    with pytest.raises(kopf.TemporaryError, match="a new mirror Job starts"):
        checkpoint.reconcile_checkpoint(env.ctx, env.namespace, "ckpt")
    assert env.writes("LlamaCheckpoint") == writes + 1  # written, then retried
    status = env.status("LlamaCheckpoint", "ckpt")
    assert status["phase"] == "Pending"
    assert condition(status, "Ready")["reason"] == "HubUnavailable"
    wait_for(lambda: env.job(job_name) is None, timeout=60, description="the failed mirror Job deleted")


def test_mirror_refused_by_the_hub_names_the_token_secret(env: InProcess) -> None:
    failed_mirror_job(env, "HubUnauthorized")
    checkpoint.reconcile_checkpoint(env.ctx, env.namespace, "ckpt")
    status = env.status("LlamaCheckpoint", "ckpt")
    assert status["phase"] == "Failed"
    assert condition(status, "Ready")["reason"] == "HubUnauthorized"
    assert f"Secret {env.namespace}/hf-secret" in status["message"]
    env.assert_idle(checkpoint.reconcile_checkpoint, "LlamaCheckpoint", "ckpt")


# --- helpers ----------------------------------------------------------------------------------------------


def invalid_spec_reconcile(
    env: InProcess, run: Callable[[kube.Context, dict[str, Any]], None], kind: str, name: str, bad: dict[str, Any]
) -> None:
    """Reconcile the live object with `bad` merged into its spec in memory: a spec the CRD of the day accepts
    but the models refuse (an object written under an older CRD) cannot be created through today's API server,
    so the read is the one thing this test fakes; the status write goes to the real API server."""
    body = env.body(kind, name)
    for key, value in bad.items():
        current = body["spec"].get(key)
        body["spec"][key] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
    run(env.ctx, body)
    assert env.reconciles(kind, "invalid") >= 1


def job_done(env: InProcess, job_name: str, condition_type: str) -> None:
    """Wait for the Job controller to mark the Job Complete or Failed (kwok runs its pod)."""

    def finished() -> bool:
        job = env.job(job_name) or {}
        conds = (job.get("status") or {}).get("conditions") or []
        return any(c.get("type") == condition_type and c.get("status") == "True" for c in conds)

    wait_for(finished, timeout=90, description=f"Job {job_name} {condition_type}")


def convert_summary(output: str, outcome: str, model: str = "llama2-7b") -> str:
    """What the converter leaves in its termination message: success ("converted") or a FailureReason."""
    from tpuserve.convert.summary import ConvertSummary, FailureReason, Outcome

    if outcome == "converted":
        return convert_summary_json(output, model)
    failure = FailureReason(outcome)
    return ConvertSummary(
        ok=False, outcome=Outcome.FAILED, reason=failure, model=model, weight_dtype="bfloat16", message=f"{outcome}!"
    ).to_termination_message()


def failed_mirror_job(env: InProcess, reason: str) -> str:
    """A format-huggingface LlamaCheckpoint whose mirror Job started (Mirroring) and failed with `reason`."""
    output = "gs://bkt/hf-out"
    manifest = hf_checkpoint("ckpt", output)
    manifest["spec"]["converter"] = {
        "podAnnotations": {
            sim.EXIT_CODE_ANNOTATION: "1",
            sim.TERMINATION_MESSAGE_ANNOTATION: convert_summary(output, reason, "llama3.1-8b"),
        }
    }
    env.objects.apply(env.namespace, manifest)
    checkpoint.reconcile_checkpoint(env.ctx, env.namespace, "ckpt")
    status = env.status("LlamaCheckpoint", "ckpt")
    assert status["phase"] == "Converting"
    assert condition(status, "Converted")["reason"] == "Mirroring"
    job_name = naming.job_name_mirror("ckpt")
    job_done(env, job_name, "Failed")
    return job_name
