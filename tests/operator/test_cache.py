"""The operator reads from its watch cache (controllers/cache.py), not the API server: objects changed behind its
back (by hand, with kubectl) must still be reconciled from what they are now, not from what the operator last
wrote. Real cluster and operator process (tests/operator/conftest.py)."""

from __future__ import annotations

import json

import pytest

from localcluster import sim
from localcluster.wait import wait_for
from tests.operator.conftest import benchmark
from tpuserve_dev.operator_harness import Objects, OperatorProcess, condition, metric_value

pytestmark = pytest.mark.cluster

LONG_RUN = {sim.RUN_DURATION_ANNOTATION: "1h"}


def children_created(operator: OperatorProcess) -> float:
    return metric_value(operator.metrics(), "tpuserve_children_created_total", {"kind": "BenchmarkRun"}) or 0.0


def test_a_job_deleted_by_hand_fails_its_run_and_is_not_recreated(
    operator: OperatorProcess, objects: Objects, namespace: str
) -> None:
    objects.apply(namespace, benchmark("vanish", target="10.1.2.3:9000", podAnnotations=LONG_RUN))
    objects.wait_phase("BenchmarkRun", namespace, "vanish", "Running", timeout=60)
    created = children_created(operator)
    objects.kubectl("delete", "job", "vanish-bench", "-n", namespace, "--wait=true")

    status = objects.wait_phase("BenchmarkRun", namespace, "vanish", "Failed", timeout=60)
    assert "disappeared before its results were recorded" in status["message"], status
    assert condition(status, "Failed")["reason"] == "JobFailed"
    assert objects.get("jobs", namespace, "vanish-bench") is None
    assert children_created(operator) == created  # the cache forgot the Job: no second run under one name


@pytest.mark.usefixtures("operator")
def test_a_status_edited_by_hand_is_rewritten_from_what_it_now_says(objects: Objects, namespace: str) -> None:
    objects.apply(namespace, benchmark("edited", target="10.1.2.3:9000", podAnnotations=LONG_RUN))
    objects.wait_phase("BenchmarkRun", namespace, "edited", "Running", timeout=60)
    wait_for(
        lambda: objects.status("BenchmarkRun", namespace, "edited").get("message", "").endswith("is running"),
        timeout=60,
        description="the run's status after its Job's first events",
    )

    # Behind the operator's back: the status says something the operator did not write. An operator that
    # compared against its own last write would find nothing to change and leave the edit in place.
    edit = {"status": {"message": "edited by hand", "jobName": "someone-elses-job"}}
    patch = ["--subresource=status", "--type=merge", "-p", json.dumps(edit)]
    objects.kubectl("patch", "benchmarkrun", "edited", "-n", namespace, *patch)
    # Any change of the Job wakes the run's reconcile (here: a label put on it by hand).
    objects.kubectl("label", "job", "edited-bench", "-n", namespace, "touched=by-hand")

    def restored() -> dict[str, str] | None:
        status = objects.status("BenchmarkRun", namespace, "edited")
        return status if status.get("message") != "edited by hand" else None

    status = wait_for(restored, timeout=60, interval=0.5, description="the operator rewriting the edited status")
    assert status["jobName"] == "edited-bench", status
    assert status["phase"] == "Running", status
    assert status["message"].startswith("benchmark "), status
