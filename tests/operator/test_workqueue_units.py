"""The coalescing reconcile queue (controllers/workqueue.py) and the resync pass (controllers/resync.py), with
plain functions as reconcilers: which objects are reconciled, how often, and with which Context."""

from __future__ import annotations

import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from localcluster.wait import wait_for
from tpuserve.controllers import kube
from tpuserve.controllers.cache import ClusterCache
from tpuserve.controllers.resync import resync_once
from tpuserve.controllers.workqueue import ReconcileQueue
from tpuserve.metrics import OperatorMetrics
from tpuserve.settings import OperatorSettings


def test_requests_for_an_object_already_waiting_run_once() -> None:
    calls: list[str] = []
    queue = ReconcileQueue(lambda *key: calls.append("/".join(key)), workers=1, delay=0.05)
    for name in ("a", "a", "b", "a"):
        queue.add("BenchmarkRun", "ns", name)
    queue.start()
    try:
        wait_for(lambda: len(calls) >= 2, description="both objects reconciled")
        wait_for(lambda: queue.waiting() == 0, description="nothing left waiting")
        assert calls == ["BenchmarkRun/ns/a", "BenchmarkRun/ns/b"]
    finally:
        queue.stop()


def test_a_request_during_the_objects_reconcile_runs_it_again() -> None:
    calls: list[str] = []
    started, release = threading.Event(), threading.Event()

    def reconcile(*key: str) -> None:
        calls.append("/".join(key))
        if len(calls) == 1:
            started.set()
            release.wait(30)

    queue = ReconcileQueue(reconcile, workers=2, delay=0.01)
    queue.add("BenchmarkRun", "ns", "a")
    queue.start()
    try:
        assert started.wait(30)
        queue.add("BenchmarkRun", "ns", "a")  # the running reconcile may have read the state before this change
        release.set()
        wait_for(lambda: len(calls) == 2, description="the object reconciled again")
    finally:
        queue.stop()


def test_a_failing_reconcile_does_not_stop_the_queue() -> None:
    calls: list[str] = []

    def reconcile(*key: str) -> None:
        calls.append(key[2])
        if key[2] == "broken":
            raise RuntimeError("an API hiccup")

    queue = ReconcileQueue(reconcile, workers=1, delay=0.01)
    queue.add("BenchmarkRun", "ns", "broken")
    queue.add("BenchmarkRun", "ns", "fine")
    queue.start()
    try:
        wait_for(lambda: calls == ["broken", "fine"], description="the next object after a failure")
    finally:
        queue.stop()


def test_resync_reconciles_unfinished_objects_reading_from_the_api_server() -> None:
    cache = ClusterCache()
    for kind, name, phase in (
        ("BenchmarkRun", "running", "Running"),
        ("BenchmarkRun", "done", "Succeeded"),
        ("LlamaCheckpoint", "ready", "Ready"),
        ("LlamaCheckpoint", "converting", "Converting"),
        ("InferenceServer", "srv", "Ready"),  # a server is never finished: its children can drift
    ):
        cache.observe(kind, {"metadata": {"namespace": "ns", "name": name, "uid": name}, "status": {"phase": phase}})
    ctx = kube.Context(api=None, settings=OperatorSettings(), metrics=OperatorMetrics(CollectorRegistry()), cache=cache)
    seen: list[tuple[str, bool]] = []

    def reconciler(kind: str) -> Callable[[kube.Context, str, str], None]:
        def reconcile(context: kube.Context, namespace: str, name: str) -> None:
            assert context.lock(kind, namespace, name) is ctx.lock(kind, namespace, name)  # one lock table
            seen.append((f"{kind}/{name}", context.fresh_reads))

        return reconcile

    kinds = ("LlamaCheckpoint", "InferenceServer", "BenchmarkRun")
    resync_once(ctx, {kind: reconciler(kind) for kind in kinds}, threading.Event())
    assert sorted(seen) == [
        ("BenchmarkRun/running", True),
        ("InferenceServer/srv", True),
        ("LlamaCheckpoint/converting", True),
    ]
    assert not ctx.fresh_reads
