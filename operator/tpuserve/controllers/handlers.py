"""kopf entry points: thin. Each one finds the object to reconcile and calls its kind's reconcile_<kind>().

What triggers a reconcile:
- the object itself: create, spec update, operator resume, and a slow resync timer (a safety net only);
- its children (Jobs, Deployments, Pods labelled by the operator): every change of the real state;
- its dependency: a LlamaCheckpoint turning Ready/Failed wakes the InferenceServers waiting for it, an
  InferenceServer turning Ready wakes the BenchmarkRuns waiting for it (kopf indexes find them; no polling).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import kopf

from tpuserve.api import GROUP, VERSION, BenchmarkPhase, CheckpointPhase, ServerPhase
from tpuserve.controllers import kube, naming, observe, outcomes, render
from tpuserve.controllers.benchmark import reconcile_benchmark
from tpuserve.controllers.checkpoint import reconcile_checkpoint
from tpuserve.controllers.server import reconcile_server
from tpuserve.metrics import default_metrics
from tpuserve.settings import OperatorSettings

log = logging.getLogger(__name__)

CHECKPOINTS, SERVERS, RUNS = "llamacheckpoints", "inferenceservers", "benchmarkruns"
# Safety-net resync of objects that are not finished (every state change also arrives as an event).
RESYNC_SECONDS = 300
# Retry delay after an unexpected error (an API hiccup); kopf's default is 60 s. TemporaryError sets its own.
BACKOFF_SECONDS = 10
MANAGED = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}
# The child kinds whose watch-streams carry MANAGED as a server-side label selector (see configure()).
CHILD_RESOURCES = (("batch", "v1", "jobs"), ("apps", "v1", "deployments"), ("", "v1", "pods"))
CHILD_LABEL_SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED.items())
PROGRESS_PREFIX = "tpuserve.dev"


def _ctx(memo: Any) -> kube.Context:
    context: kube.Context = memo.ctx
    return context


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    # Our own Events say what happened; kopf's per-handler "Handler succeeded" events would double the API calls.
    settings.posting.level = logging.WARNING
    # Status is structural (undeclared fields are pruned): keep kopf's progress in annotations only.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PROGRESS_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PROGRESS_PREFIX, key="last-handled-configuration"
    )
    settings.execution.max_workers = 16
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # `labels=` on a handler filters client-side, after every pod, Job and Deployment of the cluster has been
    # listed and streamed to the operator. kopf (1.45+) sends these selectors with the list and watch requests
    # themselves, so the API server sends only the operator's own children.
    for resource in CHILD_RESOURCES:
        settings.watching.label_selectors[resource] = CHILD_LABEL_SELECTOR
    if getattr(memo, "ctx", None) is None:  # `kopf run -m tpuserve.controllers.handlers`: settings from env
        memo.ctx = kube.Context(kube.load_api_client(), OperatorSettings(), default_metrics())
    if _ctx(memo).namespaces:
        # Exact namespace names need no namespace or CRD discovery; a namespaced install grants no cluster-wide
        # list/watch of namespaces or customresourcedefinitions (the chart's least-privilege RBAC).
        settings.scanning.disabled = True


@kopf.on.login()
def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
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
    kind: str, reconcile: Callable[[kube.Context, str, str], None], memo: Any, namespace: str, name: str, runtime: Any
) -> None:
    """A change handler's retries end: past TPUSERVE_RETRY_BUDGET_SECONDS (kopf's `runtime` counts from the first
    attempt, across operator restarts) the object is marked Failed/RetriesExhausted with the last reason."""
    ctx = _ctx(memo)
    try:
        reconcile(ctx, namespace, name)
    except kopf.PermanentError:
        raise
    except Exception as exc:
        budget = ctx.settings.retry_budget_seconds
        delay = exc.delay if isinstance(exc, kopf.TemporaryError) and exc.delay else BACKOFF_SECONDS
        spent = runtime.total_seconds() if isinstance(runtime, timedelta) else 0.0
        if spent + delay < budget:
            raise
        message = f"gave up after {spent:.0f}s of retries (TPUSERVE_RETRY_BUDGET_SECONDS={budget:g}): {exc}"
        outcomes.give_up(ctx, kind, namespace, name, message)
        raise kopf.PermanentError(message) from exc


@kopf.on.probe(id="api")
def probe(memo: Any, **_: Any) -> str:
    return "ok" if getattr(memo, "ctx", None) is not None else "starting"


# --- LlamaCheckpoint --------------------------------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, CHECKPOINTS, backoff=BACKOFF_SECONDS)
@kopf.on.create(GROUP, VERSION, CHECKPOINTS, backoff=BACKOFF_SECONDS)
@kopf.on.update(GROUP, VERSION, CHECKPOINTS, field="spec", backoff=BACKOFF_SECONDS)
def checkpoint_changed(namespace: str, name: str, memo: Any, runtime: Any = None, **_: Any) -> None:
    _bounded("LlamaCheckpoint", reconcile_checkpoint, memo, namespace, name, runtime)


@kopf.timer(
    GROUP,
    VERSION,
    CHECKPOINTS,
    interval=RESYNC_SECONDS,
    initial_delay=RESYNC_SECONDS,
    when=lambda status, **_: status.get("phase") not in (CheckpointPhase.READY, CheckpointPhase.FAILED),
)
def checkpoint_resync(namespace: str, name: str, memo: Any, **_: Any) -> None:
    reconcile_checkpoint(_ctx(memo), namespace, name)


@kopf.index(GROUP, VERSION, SERVERS)
def servers_by_checkpoint(namespace: str, name: str, spec: Any, status: Any, **_: Any) -> dict[Any, Any] | None:
    ref = (spec.get("checkpointRef") or {}).get("name")
    return {(namespace, ref): (name, status.get("phase"))} if ref else None


@kopf.on.event(GROUP, VERSION, CHECKPOINTS)
def checkpoint_event(
    type: str,
    namespace: str,
    name: str,
    meta: Any,
    status: Any,
    memo: Any,
    servers_by_checkpoint: kopf.Index,
    **_: Any,
) -> None:
    ctx = _ctx(memo)
    if type == "DELETED":
        ctx.metrics.set_phase("LlamaCheckpoint", namespace, name, None, meta.get("uid"))
        ctx.forget_lock("LlamaCheckpoint", namespace, name)
        return
    if status.get("phase") not in (CheckpointPhase.READY, CheckpointPhase.FAILED):
        return
    for server_name, server_phase in servers_by_checkpoint.get((namespace, name), []):
        if server_phase in (None, ServerPhase.PENDING, ServerPhase.WAITING_FOR_CHECKPOINT):
            ctx.metrics.wakeups.labels("InferenceServer").inc()
            reconcile_server(ctx, namespace, server_name)


# --- InferenceServer --------------------------------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, SERVERS, backoff=BACKOFF_SECONDS)
@kopf.on.create(GROUP, VERSION, SERVERS, backoff=BACKOFF_SECONDS)
@kopf.on.update(GROUP, VERSION, SERVERS, field="spec", backoff=BACKOFF_SECONDS)
def server_changed(namespace: str, name: str, memo: Any, runtime: Any = None, **_: Any) -> None:
    _bounded("InferenceServer", reconcile_server, memo, namespace, name, runtime)


@kopf.timer(GROUP, VERSION, SERVERS, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def server_resync(namespace: str, name: str, memo: Any, **_: Any) -> None:
    reconcile_server(_ctx(memo), namespace, name)


@kopf.index(GROUP, VERSION, RUNS)
def runs_by_server(namespace: str, name: str, spec: Any, status: Any, **_: Any) -> dict[Any, Any] | None:
    ref = (spec.get("serverRef") or {}).get("name")
    return {(namespace, ref): (name, status.get("phase"))} if ref else None


@kopf.on.event(GROUP, VERSION, SERVERS)
def server_event(
    type: str, namespace: str, name: str, meta: Any, status: Any, memo: Any, runs_by_server: kopf.Index, **_: Any
) -> None:
    ctx = _ctx(memo)
    if type == "DELETED":
        ctx.metrics.set_phase("InferenceServer", namespace, name, None, meta.get("uid"))
        ctx.forget_lock("InferenceServer", namespace, name)
        return
    if status.get("phase") != ServerPhase.READY:
        return
    for run_name, run_phase in runs_by_server.get((namespace, name), []):
        if run_phase in (None, BenchmarkPhase.PENDING, BenchmarkPhase.WAITING_FOR_SERVER):
            ctx.metrics.wakeups.labels("BenchmarkRun").inc()
            reconcile_benchmark(ctx, namespace, run_name)


# --- BenchmarkRun -----------------------------------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, RUNS, backoff=BACKOFF_SECONDS)
@kopf.on.create(GROUP, VERSION, RUNS, backoff=BACKOFF_SECONDS)
def run_changed(namespace: str, name: str, memo: Any, runtime: Any = None, **_: Any) -> None:
    _bounded("BenchmarkRun", reconcile_benchmark, memo, namespace, name, runtime)


@kopf.timer(
    GROUP,
    VERSION,
    RUNS,
    interval=RESYNC_SECONDS,
    initial_delay=RESYNC_SECONDS,
    when=lambda status, **_: status.get("phase") not in (BenchmarkPhase.SUCCEEDED, BenchmarkPhase.FAILED),
)
def run_resync(namespace: str, name: str, memo: Any, **_: Any) -> None:
    reconcile_benchmark(_ctx(memo), namespace, name)


@kopf.on.event(GROUP, VERSION, RUNS, value=kopf.PRESENT, field="metadata.name")
def run_event(type: str, namespace: str, name: str, meta: Any, memo: Any, **_: Any) -> None:
    if type == "DELETED":
        ctx = _ctx(memo)
        ctx.metrics.forget_run(namespace, name)
        ctx.metrics.set_phase("BenchmarkRun", namespace, name, None, meta.get("uid"))
        ctx.forget_lock("BenchmarkRun", namespace, name)


# --- children ---------------------------------------------------------------------------------------------


def _owner(meta: Any) -> tuple[str, str] | None:
    """(kind, name) of the operator object a labelled child or pod belongs to."""
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    for kind, label in naming.OWNER_LABELS.items():
        if label in labels:
            return kind, annotations.get(render.ANNOTATION_OWNER) or labels[label]
    return None


RECONCILERS = {
    "LlamaCheckpoint": reconcile_checkpoint,
    "InferenceServer": reconcile_server,
    "BenchmarkRun": reconcile_benchmark,
}


def _reconcile_owner(ctx: kube.Context, namespace: str, meta: Any) -> None:
    owner = _owner(meta)
    if owner is None:
        return
    kind, name = owner
    try:
        RECONCILERS[kind](ctx, namespace, name)
    except kopf.TemporaryError as exc:
        log.info("reconcile of %s %s/%s deferred: %s", kind, namespace, name, exc)


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
def job_event(namespace: str, meta: Any, memo: Any, **_: Any) -> None:
    _reconcile_owner(_ctx(memo), namespace, meta)


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
def deployment_event(namespace: str, meta: Any, memo: Any, **_: Any) -> None:
    _reconcile_owner(_ctx(memo), namespace, meta)


def _pod_matters(body: Any, meta: Any, **_: Any) -> bool:
    """Server pods always (scheduling and readiness); Job pods only while the scheduler refuses them
    (their outcome arrives as a Job event)."""
    if naming.LABEL_SERVER in (meta.get("labels") or {}):
        return True
    return observe.unschedulable_message([dict(body)]) is not None


@kopf.on.event("", "v1", "pods", labels=MANAGED, when=_pod_matters)
def pod_event(namespace: str, meta: Any, memo: Any, **_: Any) -> None:
    _reconcile_owner(_ctx(memo), namespace, meta)
