"""kopf entry points: thin. Each one finds the object to reconcile and calls its kind's reconcile_<kind>().

What triggers a reconcile:
- the object itself: create, spec update, operator start, and a slow resync thread (a safety net only);
- its children (Jobs, Deployments, Pods labelled by the operator): every change of the real state;
- its dependency: a LlamaCheckpoint turning Ready/Failed wakes the InferenceServers waiting for it, an
  InferenceServer turning Ready wakes the BenchmarkRuns waiting for it (kopf indexes find them; no polling).

What a reconcile reads comes from the cache (cache.py) that kopf indexes fill from the watch-streams kopf runs
anyway: no handler runs before every watched kind has been listed once, so the cache is never half-empty. kopf's
own bookkeeping stays in memory (handler_state.py) and no kopf timer is used, so kopf writes nothing to the
objects (no annotations, no finalizer): per BenchmarkRun the operator makes its Job, its Event and its status
writes, and nothing else (docs/operator.md, "Scale").
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import kopf

from tpuserve.api import (
    GROUP,
    VERSION,
    BenchmarkPhase,
    BenchmarkRun,
    CheckpointPhase,
    InferenceServer,
    LlamaCheckpoint,
    ServerPhase,
)
from tpuserve.api.conventions import KindInfo
from tpuserve.controllers import kube, naming, observe, outcomes, render
from tpuserve.controllers.benchmark import reconcile_benchmark
from tpuserve.controllers.cache import ClusterCache
from tpuserve.controllers.checkpoint import reconcile_checkpoint
from tpuserve.controllers.handler_state import MemoryDiffBaseStorage, MemoryProgressStorage
from tpuserve.controllers.resync import resync_forever
from tpuserve.controllers.server import reconcile_server
from tpuserve.controllers.workqueue import ReconcileQueue
from tpuserve.metrics import default_metrics
from tpuserve.settings import OperatorSettings

log = logging.getLogger(__name__)

# kopf's handler threads (create/update/resume) and the threads of the event-driven reconciles (workqueue.py):
# reconciles read from the cache, so they wait only on their writes. Together no more than the API client's
# connection pool (kube.load_api_client, 32), so no thread waits for a connection.
MAX_WORKERS = 24
QUEUE_WORKERS = 4
RECONCILERS: dict[str, Callable[[kube.Context, str, str], None]] = {
    LlamaCheckpoint.KIND: reconcile_checkpoint,
    InferenceServer.KIND: reconcile_server,
    BenchmarkRun.KIND: reconcile_benchmark,
}
# Retry delay after an unexpected error (an API hiccup); kopf's default is 60 s. TemporaryError sets its own.
BACKOFF_SECONDS = 10
MANAGED = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}
# The child kinds whose watch-streams carry MANAGED as a server-side label selector (see configure()).
CHILD_RESOURCES = (("batch", "v1", "jobs"), ("apps", "v1", "deployments"), ("", "v1", "pods"))
CHILD_LABEL_SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED.items())
PROGRESS_PREFIX = "tpuserve.dev"


def _ctx(memo: kopf.Memo) -> kube.Context:
    context: kube.Context = memo.ctx
    return context


def _cache(memo: kopf.Memo) -> ClusterCache:
    cache = _ctx(memo).cache
    assert cache is not None, "configure() sets the cache"
    return cache


def configure_kopf(settings: kopf.OperatorSettings, *, namespaced: bool) -> None:
    """kopf's settings for this operator."""
    # Our own Events say what happened; kopf's per-handler "Handler succeeded" events would double the API calls.
    settings.posting.level = logging.WARNING
    # kopf's bookkeeping stays in memory: annotations would cost a PATCH per object per handled change.
    settings.persistence.progress_storage = MemoryProgressStorage(PROGRESS_PREFIX)
    settings.persistence.diffbase_storage = MemoryDiffBaseStorage(PROGRESS_PREFIX)
    settings.execution.max_workers = MAX_WORKERS
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # `labels=` on a handler filters client-side, after every pod, Job and Deployment of the cluster has been
    # listed and streamed to the operator. kopf (1.45+) sends these selectors with the list and watch requests
    # themselves, so the API server sends only the operator's own children.
    for resource in CHILD_RESOURCES:
        settings.watching.label_selectors[resource] = CHILD_LABEL_SELECTOR
    # Exact namespace names need no namespace or CRD discovery; a namespaced install grants no cluster-wide
    # list/watch of namespaces or customresourcedefinitions (the chart's least-privilege RBAC).
    settings.scanning.disabled = namespaced


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    if getattr(memo, "ctx", None) is None:  # `kopf run -m tpuserve.controllers.handlers`: settings from env
        memo.ctx = kube.Context(kube.load_api_client(), OperatorSettings(), default_metrics())
    ctx = _ctx(memo)
    configure_kopf(settings, namespaced=bool(ctx.namespaces))
    memo.progress, memo.diffbase = settings.persistence.progress_storage, settings.persistence.diffbase_storage
    if ctx.cache is None:
        ctx.cache = ClusterCache()
    ctx.warm_up()
    memo.queue = ReconcileQueue(functools.partial(_reconcile_key, ctx), workers=QUEUE_WORKERS)
    memo.queue.start()
    memo.resync_stop = threading.Event()
    # The safety net: one thread, not a kopf timer per object (a timer adds a finalizer and a task per object).
    resync = threading.Thread(target=resync_forever, args=(ctx, RECONCILERS, memo.resync_stop), daemon=True)
    resync.start()


@kopf.on.cleanup()
def stop_background(memo: kopf.Memo, **_: Any) -> None:
    memo.resync_stop.set()
    memo.queue.stop()


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf uses the same credentials as our API client (in-cluster, or the --kubeconfig file)."""
    config = _ctx(memo).api.configuration
    header = (config.api_key or {}).get("authorization") or (config.api_key or {}).get("BearerToken")
    if config.refresh_api_key_hook is not None:
        config.refresh_api_key_hook(config)
        header = (config.api_key or {}).get("authorization") or header
    token = header.split(" ", 1)[1] if header and " " in header else header
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
        scheme="Bearer" if token else None,
        token=token,
    )


def _bounded(
    kind: str,
    reconcile: Callable[[kube.Context, str, str], None],
    memo: kopf.Memo,
    namespace: str,
    name: str,
    runtime: timedelta,
) -> None:
    """A change handler's retries end: past TPUSERVE_RETRY_BUDGET_SECONDS (kopf's `runtime` counts from the first
    attempt of this operator process) the object is marked Failed/RetriesExhausted with the last reason."""
    ctx = _ctx(memo)
    try:
        reconcile(ctx, namespace, name)
    except kopf.PermanentError:
        raise
    except Exception as exc:
        budget = ctx.settings.retry_budget_seconds
        delay = exc.delay if isinstance(exc, kopf.TemporaryError) and exc.delay else BACKOFF_SECONDS
        spent = runtime.total_seconds()
        if spent + delay < budget:
            raise
        message = f"gave up after {spent:.0f}s of retries (TPUSERVE_RETRY_BUDGET_SECONDS={budget:g}): {exc}"
        outcomes.give_up(ctx, kind, namespace, name, message)
        raise kopf.PermanentError(message) from exc


def _forget(memo: kopf.Memo, kind: str, body: kopf.Body) -> None:
    """A DELETED event: the object leaves the cache, kopf's memory of it, the metrics and the lock table."""
    ctx = _ctx(memo)
    _cache(memo).forget(kind, body)
    uid = body.metadata.uid or ""
    memo.progress.forget(uid)
    memo.diffbase.forget(uid)
    if kind in RECONCILERS:
        ctx.metrics.set_phase(kind, body.metadata.namespace or "", body.metadata.name or "", None, uid)
        ctx.forget_lock(kind, body.metadata.namespace or "", body.metadata.name or "")


@kopf.on.probe(id="api")
def probe(memo: kopf.Memo, **_: Any) -> str:
    return "ok" if getattr(memo, "ctx", None) is not None else "starting"


# --- the cache: every watched object as kopf delivers it (indexes: no handler runs before all are listed) -----


@kopf.index(GROUP, VERSION, LlamaCheckpoint.PLURAL)
async def checkpoints_seen(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _cache(memo).observe(LlamaCheckpoint.KIND, body)


@kopf.index(GROUP, VERSION, InferenceServer.PLURAL)
async def servers_seen(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _cache(memo).observe(InferenceServer.KIND, body)


@kopf.index(GROUP, VERSION, BenchmarkRun.PLURAL)
async def runs_seen(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _cache(memo).observe(BenchmarkRun.KIND, body)


@kopf.index("batch", "v1", "jobs", labels=MANAGED)
async def jobs_seen(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _cache(memo).observe("Job", body)


@kopf.index("apps", "v1", "deployments", labels=MANAGED)
async def deployments_seen(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _cache(memo).observe("Deployment", body)


@kopf.index("", "v1", "pods", labels=MANAGED)
async def pods_seen(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _cache(memo).observe("Pod", body)


def _deleted(type: str | None, **_: Any) -> bool:
    return type == "DELETED"


@kopf.on.event("", "v1", "pods", labels=MANAGED, when=_deleted)
async def pod_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _forget(memo, "Pod", body)


# --- dependencies: (namespace, name of the dependency) → (name, phase) of each object waiting for it ---------
Dependency = tuple[str, str]
Dependent = tuple[str, str | None]
DependencyIndex = kopf.Index[Dependency, Dependent]


@dataclass(frozen=True)
class Waiting:
    """Objects of kind `dependent` name a `dependency` in `spec.<ref>`: the dependency reaching one of `wakes_at`
    wakes those still in a `waiting` phase (None: not reconciled yet). `index` names the kopf index (and the
    handler keyword) that finds them."""

    dependency: type[KindInfo]
    dependent: type[KindInfo]
    ref: str
    wakes_at: tuple[str, ...]
    waiting: tuple[str | None, ...]
    index: str


WAITING = (
    Waiting(
        LlamaCheckpoint,
        InferenceServer,
        ref="checkpointRef",
        wakes_at=(CheckpointPhase.READY, CheckpointPhase.FAILED),
        waiting=(None, ServerPhase.PENDING, ServerPhase.WAITING_FOR_CHECKPOINT),
        index="servers_by_checkpoint",
    ),
    Waiting(
        InferenceServer,
        BenchmarkRun,
        ref="serverRef",
        wakes_at=(ServerPhase.READY,),
        waiting=(None, BenchmarkPhase.PENDING, BenchmarkPhase.WAITING_FOR_SERVER),
        index="runs_by_server",
    ),
)


def _dependents(index: DependencyIndex | None, key: Dependency) -> list[Dependent]:
    return list(index[key]) if index is not None and key in index else []


def _register_waiting(waiting: Waiting) -> None:
    """A kopf index of the dependents by the dependency they name, and the dependency's event handler that wakes
    them (it also forgets a deleted dependency's cache entry)."""

    async def index(
        namespace: str | None, name: str, spec: kopf.Spec, status: kopf.Status, **_: Any
    ) -> dict[Dependency, Dependent] | None:
        ref = (spec.get(waiting.ref) or {}).get("name")
        return {(namespace or "", ref): (name, status.get("phase"))} if ref else None

    async def event(type: str, body: kopf.Body, status: kopf.Status, memo: kopf.Memo, **kwargs: Any) -> None:
        if type == "DELETED":
            _forget(memo, waiting.dependency.KIND, body)
            return
        if status.get("phase") not in waiting.wakes_at:
            return
        ctx, namespace, name = _ctx(memo), body.metadata.namespace or "", body.metadata.name or ""
        for dependent_name, dependent_phase in _dependents(kwargs.get(waiting.index), (namespace, name)):
            if dependent_phase in waiting.waiting:
                ctx.metrics.wakeups.labels(waiting.dependent.KIND).inc()
                memo.queue.add(waiting.dependent.KIND, namespace, dependent_name)

    kopf.index(GROUP, VERSION, waiting.dependent.PLURAL, id=waiting.index)(index)
    kopf.on.event(GROUP, VERSION, waiting.dependency.PLURAL, id=f"{waiting.dependency.PLURAL}_event")(event)


for _waiting in WAITING:
    _register_waiting(_waiting)


# --- LlamaCheckpoint --------------------------------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, LlamaCheckpoint.PLURAL, backoff=BACKOFF_SECONDS)
@kopf.on.create(GROUP, VERSION, LlamaCheckpoint.PLURAL, backoff=BACKOFF_SECONDS)
@kopf.on.update(GROUP, VERSION, LlamaCheckpoint.PLURAL, field="spec", backoff=BACKOFF_SECONDS)
def checkpoint_changed(namespace: str | None, name: str, memo: kopf.Memo, runtime: timedelta, **_: Any) -> None:
    _bounded(LlamaCheckpoint.KIND, reconcile_checkpoint, memo, namespace or "", name, runtime)


# --- InferenceServer --------------------------------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, InferenceServer.PLURAL, backoff=BACKOFF_SECONDS)
@kopf.on.create(GROUP, VERSION, InferenceServer.PLURAL, backoff=BACKOFF_SECONDS)
@kopf.on.update(GROUP, VERSION, InferenceServer.PLURAL, field="spec", backoff=BACKOFF_SECONDS)
def server_changed(namespace: str | None, name: str, memo: kopf.Memo, runtime: timedelta, **_: Any) -> None:
    _bounded(InferenceServer.KIND, reconcile_server, memo, namespace or "", name, runtime)


# --- BenchmarkRun -----------------------------------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, BenchmarkRun.PLURAL, backoff=BACKOFF_SECONDS)
@kopf.on.create(GROUP, VERSION, BenchmarkRun.PLURAL, backoff=BACKOFF_SECONDS)
def run_changed(namespace: str | None, name: str, memo: kopf.Memo, runtime: timedelta, **_: Any) -> None:
    _bounded(BenchmarkRun.KIND, reconcile_benchmark, memo, namespace or "", name, runtime)


@kopf.on.event(GROUP, VERSION, BenchmarkRun.PLURAL, when=_deleted)
async def run_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _ctx(memo).metrics.forget_run(body.metadata.namespace or "", body.metadata.name or "")
    _forget(memo, BenchmarkRun.KIND, body)


# --- children ---------------------------------------------------------------------------------------------


def _owner(meta: kopf.Meta) -> tuple[str, str] | None:
    """(kind, name) of the operator object a labelled child or pod belongs to."""
    labels, annotations = meta.labels, meta.annotations
    for kind, label in naming.OWNER_LABELS.items():
        if label in labels:
            return kind, annotations.get(render.ANNOTATION_OWNER) or labels[label]
    return None


def _reconcile_key(ctx: kube.Context, kind: str, namespace: str, name: str) -> None:
    RECONCILERS[kind](ctx, namespace, name)


def _reconcile_owner(memo: kopf.Memo, meta: kopf.Meta) -> None:
    owner = _owner(meta)
    if owner is not None and meta.namespace is not None:
        memo.queue.add(owner[0], meta.namespace, owner[1])


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
async def job_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if type == "DELETED":
        _forget(memo, "Job", body)
    _reconcile_owner(memo, body.metadata)


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
async def deployment_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if type == "DELETED":
        _forget(memo, "Deployment", body)
    _reconcile_owner(memo, body.metadata)


def _pod_matters(body: kopf.Body, meta: kopf.Meta, **_: Any) -> bool:
    """Server pods always (scheduling and readiness); Job pods only while the scheduler refuses them
    (their outcome arrives as a Job event)."""
    if naming.LABEL_SERVER in meta.labels:
        return True
    return observe.unschedulable_message([dict(body)]) is not None


@kopf.on.event("", "v1", "pods", labels=MANAGED, when=_pod_matters)
async def pod_event(meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> None:
    _reconcile_owner(memo, meta)
