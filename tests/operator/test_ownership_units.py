"""Pure parts of issue 13's operator changes: who controls a child, which API answers are final, what a
conversion summary must say before a checkpoint is Ready."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tpuserve.api import LlamaCheckpointSpec
from tpuserve.controllers import checkpoint_guard, outcomes, ownership
from tpuserve.convert.summary import ConvertSummary, Outcome


def child(uid: str | None, *, controller: bool = True, labels: dict[str, str] | None = None) -> dict[str, Any]:
    refs = [{"kind": "BenchmarkRun", "name": "run", "uid": uid, "controller": controller}] if uid else []
    return {"metadata": {"name": "run-bench", "namespace": "ns", "ownerReferences": refs, "labels": labels or {}}}


def test_only_the_controller_uid_counts() -> None:
    assert ownership.check_controlled(child("u1"), "Job", "u1")["metadata"]["name"] == "run-bench"
    with pytest.raises(
        ownership.NameConflict, match=r"Job ns/run-bench .*\(its controller is BenchmarkRun run uid u0\)"
    ):
        ownership.check_controlled(child("u0"), "Job", "u1")
    with pytest.raises(ownership.NameConflict, match="it has no controller"):
        ownership.check_controlled(child("u1", controller=False), "Job", "u1")
    with pytest.raises(ownership.NameConflict, match="it has no controller"):
        ownership.check_controlled(child(None), "Job", "u1")
    with pytest.raises(ownership.NameConflict):  # an owner without a uid controls nothing
        ownership.check_controlled(child("u1"), "Job", "")


def test_pods_of_a_job_are_found_by_its_uid_not_its_name() -> None:
    same_name = {"job-name": "run-bench"}
    pods = [child("old", labels=same_name), child("new", labels=same_name), child(None, labels=same_name)]
    assert ownership.pods_of_job(pods, "new") == [pods[1]]


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(400, True), (401, True), (403, True), (404, False), (409, False), (410, True), (422, True), (429, False),
     (499, True), (500, False), (503, False)],
)  # fmt: skip
def test_which_api_answers_are_final(status: int, permanent: bool) -> None:
    assert outcomes.is_permanent(ApiException(status=status)) is permanent


def test_api_message_is_the_status_message() -> None:
    exc = ApiException(status=422, reason="Unprocessable Entity")
    exc.body = '{"kind": "Status", "message": "Service \\"a.b\\" is invalid: metadata.name: Invalid value"}'
    expected = '422 Unprocessable Entity: Service "a.b" is invalid: metadata.name: Invalid value'
    assert outcomes.api_message(exc) == expected
    exc.body = "not json"
    assert outcomes.api_message(exc) == "422 Unprocessable Entity: not json"


def spec(output: str = "gs://bkt/out") -> LlamaCheckpointSpec:
    return LlamaCheckpointSpec(source="gs://bkt/meta", output=output)


def summary(**fields: Any) -> ConvertSummary:
    values: dict[str, Any] = {
        "ok": True,
        "outcome": Outcome.CONVERTED,
        "model": "llama2-7b",
        "weight_dtype": "bfloat16",
        "scanned_path": "gs://bkt/out/scanned/0/items",
        "unscanned_path": "gs://bkt/out/unscanned/checkpoints/0/items",
        **fields,
    }
    return ConvertSummary(**values)


def test_ready_needs_a_summary_with_paths_under_the_output() -> None:
    assert checkpoint_guard.summary_problem(spec(), summary()) is None
    assert "no readable summary" in (checkpoint_guard.summary_problem(spec(), None) or "")
    assert "says it failed" in (checkpoint_guard.summary_problem(spec(), summary(ok=False)) or "")
    elsewhere = summary(unscanned_path="gs://bkt/out-old/unscanned/checkpoints/0/items")
    assert "unscannedPath" in (checkpoint_guard.summary_problem(spec(), elsewhere) or "")
    assert "scannedPath" in (checkpoint_guard.summary_problem(spec(), summary(scanned_path=None)) or "")
    # A trailing slash on spec.output changes nothing; a sibling prefix is not "under".
    assert checkpoint_guard.summary_problem(spec("gs://bkt/out/"), summary()) is None
    assert checkpoint_guard.summary_problem(spec("gs://bkt/ou"), summary()) is not None
