"""Issue 13 on the local cluster with the real operator: children are touched only when the owner controls them
(ownerReference uid), results come only from the owner's own Job and its pods (controller uid), and a request
the API server refuses for good ends the object in Failed with the API server's message, not in endless retries.

Simulated: the Job pods (kwok: exit code and termination message from pod annotations) and the server pods.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from localcluster import sim
from localcluster.wait import wait_for
from tests.operator.conftest import benchmark, server, summary_json
from tpuserve_dev.operator_harness import Objects, condition

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _condition_reason(objects: Objects, kind: str, namespace: str, name: str, type_: str, reason: str) -> Any:
    def reached() -> dict[str, Any] | None:
        status = objects.status(kind, namespace, name)
        conds = {c["type"]: c for c in status.get("conditions") or []}
        return status if conds.get(type_, {}).get("reason") == reason else None

    return wait_for(reached, timeout=60, interval=0.5, description=f"{kind} {name}: {type_} reason {reason}")


@pytest.mark.usefixtures("operator")
def test_hand_made_service_is_a_name_conflict_and_left_alone(objects: Objects, namespace: str) -> None:
    hand_made = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "taken", "labels": {"team": "web"}},
        "spec": {"ports": [{"name": "http", "port": 80}], "selector": {"app": "web"}},
    }
    objects.apply(namespace, hand_made)
    before = objects.get("services", namespace, "taken")
    assert before is not None
    objects.apply(namespace, server("taken", path="gs://bkt/ckpt/0/items"))

    status = _condition_reason(objects, "InferenceServer", namespace, "taken", "Available", "NameConflict")
    message = condition(status, "Available")["message"]
    assert f"Service {namespace}/taken already exists and is not controlled by this object" in message
    assert "it has no controller" in message
    assert status["message"] == message
    assert any(e["reason"] == "NameConflict" and e["type"] == "Warning" for e in objects.events(namespace, "taken"))
    after = objects.get("services", namespace, "taken")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # not patched
    assert "ownerReferences" not in after["metadata"]  # not adopted (so never garbage-collected with the server)
    assert after["spec"]["selector"] == {"app": "web"}

    # Once the other Service is gone, the operator makes its own and the server proceeds.
    objects.kubectl("delete", "service", "taken", "-n", namespace, "--wait=true")
    status = objects.wait_phase("InferenceServer", namespace, "taken", "Ready", timeout=90)
    ours = objects.get("services", namespace, "taken")
    assert ours is not None
    assert ours["metadata"]["ownerReferences"][0]["kind"] == "InferenceServer"
    assert ours["spec"]["selector"] != {"app": "web"}


@pytest.mark.usefixtures("operator")
def test_recreated_run_does_not_adopt_the_old_jobs_results(objects: Objects, namespace: str) -> None:
    target = "10.1.2.3:9000"
    first = {sim.EXIT_CODE_ANNOTATION: "0", sim.TERMINATION_MESSAGE_ANNOTATION: summary_json(successful_requests=100)}
    objects.apply(namespace, benchmark("rerun", target=target, podAnnotations=first))
    status = objects.wait_phase("BenchmarkRun", namespace, "rerun", "Succeeded", "Failed", timeout=90)
    assert status["phase"] == "Succeeded"
    assert status["results"]["successfulRequests"] == 100
    old_job = objects.get("jobs", namespace, "rerun-bench")
    assert old_job is not None

    # The run is deleted but its Job stays (orphaned: as if garbage collection had not reached it yet), and a new
    # run of the same name whose benchmark will leave no summary is created.
    objects.kubectl("delete", "benchmarkrun", "rerun", "-n", namespace, "--cascade=orphan", "--wait=true")
    second = {sim.EXIT_CODE_ANNOTATION: "0"}
    objects.apply(namespace, benchmark("rerun", target=target, podAnnotations=second))
    status = _condition_reason(objects, "BenchmarkRun", namespace, "rerun", "Complete", "NameConflict")
    assert f"Job {namespace}/rerun-bench already exists and is not controlled by this object" in status["message"]
    assert "results" not in status
    assert status.get("phase") == "Pending"
    job = objects.get("jobs", namespace, "rerun-bench")
    assert job is not None
    assert job["metadata"]["uid"] == old_job["metadata"]["uid"]

    # The old Job goes, its pods stay (orphaned, still labelled job-name=rerun-bench with the old summary):
    # the new run gets its own Job and reads only that Job's pods.
    # --wait=false: the operator recreates a Job of the same name at once, and kubectl's wait for the deletion
    # can then hang (seen on a loaded machine); the phase wait below is what matters.
    objects.kubectl("delete", "job", "rerun-bench", "-n", namespace, "--cascade=orphan", "--wait=false")
    status = objects.wait_phase("BenchmarkRun", namespace, "rerun", "Succeeded", "Failed", timeout=90)
    new_job = objects.get("jobs", namespace, "rerun-bench")
    assert new_job is not None
    assert new_job["metadata"]["uid"] != old_job["metadata"]["uid"]
    old_pods = objects.items("pods", namespace, f"batch.kubernetes.io/controller-uid={old_job['metadata']['uid']}")
    assert old_pods, "the old Job's pods were meant to stay"
    assert status["phase"] == "Failed", status
    assert condition(status, "Failed")["reason"] == "JobFailed"
    assert "left no readable summary" in status["message"]
    assert "results" not in status


@pytest.mark.usefixtures("operator")
def test_api_server_refusal_fails_with_its_message_and_is_not_retried(objects: Objects, namespace: str) -> None:
    """A namespace whose quota allows no Jobs: the API server answers 403 to the Job's create, for good."""
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-jobs"},
        "spec": {"hard": {"count/jobs.batch": "0"}},
    }
    objects.apply(namespace, quota)
    # This test cluster runs no quota controller: its status (what quota admission checks) is written here.
    used = {"status": {"hard": {"count/jobs.batch": "0"}, "used": {"count/jobs.batch": "0"}}}
    objects.kubectl(
        "patch",
        "resourcequota",
        "no-jobs",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(used),
    )
    objects.apply(namespace, benchmark("refused", target="10.1.2.3:9000"))
    status = objects.wait_phase("BenchmarkRun", namespace, "refused", "Failed", timeout=60)
    failed = condition(status, "Failed")
    assert failed["status"] == "True"
    assert failed["reason"] == "ApiRejected"
    assert "403 Forbidden" in status["message"], status["message"]
    assert "exceeded quota: no-jobs" in status["message"], status["message"]
    events = [e for e in objects.events(namespace, "refused") if e["reason"] == "ApiRejected"]
    assert len(events) == 1
    assert events[0]["type"] == "Warning"
    assert objects.items("jobs", namespace) == []
