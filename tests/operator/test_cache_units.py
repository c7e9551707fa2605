"""The operator's watch cache (controllers/cache.py) on plain dicts: which version wins, the operator's own writes
seen before the watch delivers them, deletions, a same-named object recreated, and pod lookups by label."""

from __future__ import annotations

from typing import Any

from tpuserve.controllers.cache import LAST_APPLIED, ClusterCache, trimmed
from tpuserve.controllers.ownership import LABEL_JOB_CONTROLLER_UID


def obj(name: str, version: int, uid: str = "u1", **extra: Any) -> dict[str, Any]:
    labels = extra.pop("labels", {})
    meta = {"namespace": "ns", "name": name, "uid": uid, "resourceVersion": str(version), "labels": labels}
    return {"metadata": meta, **extra}


def test_an_older_version_never_replaces_a_newer_one() -> None:
    cache = ClusterCache()
    cache.observe("Job", obj("a", 5, status={"active": 1}))
    cache.observe("Job", obj("a", 4, status={"active": 0}))  # late event from before the operator's write
    assert cache.get("Job", "ns", "a") == obj("a", 5, status={"active": 1}, spec={})
    cache.observe("Job", obj("a", 6, status={"succeeded": 1}))
    found = cache.get("Job", "ns", "a")
    assert found is not None
    assert found["status"] == {"succeeded": 1}


def test_callers_get_copies() -> None:
    cache = ClusterCache()
    cache.observe("BenchmarkRun", obj("run", 1, status={"phase": "Running"}))
    first = cache.get("BenchmarkRun", "ns", "run")
    assert first is not None
    first["status"]["phase"] = "Changed by the caller"
    second = cache.get("BenchmarkRun", "ns", "run")
    assert second is not None
    assert second["status"]["phase"] == "Running"


def test_a_deleted_object_stays_gone_until_its_deleted_event_even_if_older_events_arrive() -> None:
    cache = ClusterCache()
    cache.observe("Job", obj("a", 5, uid="old"))
    cache.deleted("Job", "ns", "a", "old")
    assert cache.get("Job", "ns", "a") is None
    cache.observe("Job", obj("a", 7, uid="old", metadata_note="deletionTimestamp set"))  # a MODIFIED on its way out
    assert cache.get("Job", "ns", "a") is None
    cache.observe("Job", obj("a", 9, uid="new"))  # recreated under the same name
    assert (cache.get("Job", "ns", "a") or {})["metadata"]["uid"] == "new"
    cache.forget("Job", obj("a", 8, uid="old"))  # the old one's DELETED event arrives after that: new one stays
    assert (cache.get("Job", "ns", "a") or {})["metadata"]["uid"] == "new"
    cache.forget("Job", obj("a", 10, uid="new"))
    assert cache.get("Job", "ns", "a") is None


def test_a_read_that_finds_nothing_drops_the_object() -> None:
    cache = ClusterCache()
    cache.observe("Deployment", obj("srv", 3))
    cache.absent("Deployment", "ns", "srv")
    assert cache.get("Deployment", "ns", "srv") is None
    assert cache.names("Deployment") == []


def test_pods_by_label_follow_relabels_and_deletions() -> None:
    cache = ClusterCache()
    pod = obj("p1", 1, labels={LABEL_JOB_CONTROLLER_UID: "job-1", "app": "bench"}, spec={"nodeName": "n1"})
    cache.observe("Pod", pod)
    cache.observe("Pod", obj("p2", 2, uid="u2", labels={LABEL_JOB_CONTROLLER_UID: "job-2", "app": "bench"}))
    assert [p["metadata"]["name"] for p in cache.pods("ns", {LABEL_JOB_CONTROLLER_UID: "job-1"})] == ["p1"]
    assert [p["metadata"]["name"] for p in cache.pods("ns", {"app": "bench"})] == ["p1", "p2"]
    assert cache.pods("other", {"app": "bench"}) == []
    cache.observe("Pod", obj("p1", 3, labels={LABEL_JOB_CONTROLLER_UID: "job-3"}))
    assert cache.pods("ns", {LABEL_JOB_CONTROLLER_UID: "job-1"}) == []
    assert [p["metadata"]["name"] for p in cache.pods("ns", {LABEL_JOB_CONTROLLER_UID: "job-3"})] == ["p1"]
    cache.forget("Pod", obj("p1", 4))
    assert cache.pods("ns", {LABEL_JOB_CONTROLLER_UID: "job-3"}) == []


def test_trimmed_keeps_what_reconciles_read() -> None:
    pod = obj("p", 1, spec={"nodeName": "n1", "containers": [{"name": "bench"}]}, status={"phase": "Running"})
    pod["metadata"]["managedFields"] = [{"manager": "kubelet"}]
    pod["metadata"]["annotations"] = {LAST_APPLIED: "{...}", "kept": "yes"}
    kept = trimmed("Pod", pod)
    assert kept["spec"] == {"nodeName": "n1"}
    assert kept["status"] == {"phase": "Running"}
    assert "managedFields" not in kept["metadata"]
    assert kept["metadata"]["uid"] == "u1"
    assert kept["metadata"]["annotations"] == {"kept": "yes"}
    assert pod["metadata"]["annotations"][LAST_APPLIED] == "{...}"  # the watched body itself is left alone
    job = obj("j", 1, spec={"backoffLimit": 0, "template": {"spec": {}}}, status={"active": 1})
    assert trimmed("Job", job)["spec"] == {"backoffLimit": 0}
    run = obj("r", 1, spec={"numPrompts": 5}, status={"phase": "Pending"})
    assert trimmed("BenchmarkRun", run) == run
