"""Kubernetes API helpers shared by the controllers: clients, create-or-patch, status patches, events.

Everything here touches the API (`ensure_*`, `get_*`, `patch_*`, `post_*`); rendering is in render.py.
The synchronous `kubernetes` client is used from kopf's handler threads.

Reads (`get_custom`, `get_owned_job`, `job_pods`, `list_pods`, the live child in `ensure_child`) answer from
`ctx.cache` (cache.py, filled from kopf's watch-streams) when the Context has one, else from the API server; every
write's answer goes into the cache, so a reconcile never reads something older than the operator's own writes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from tpuserve.api import GROUP, KINDS, VERSION
from tpuserve.controllers import naming
from tpuserve.controllers.cache import ClusterCache
from tpuserve.controllers.child_api import ChildApi, child_api, json_body
from tpuserve.controllers.ownership import LABEL_JOB_CONTROLLER_UID, check_controlled, controller_uid, pods_of_job
from tpuserve.metrics import OperatorMetrics
from tpuserve.settings import OperatorSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

PLURALS = {kind.KIND: kind.PLURAL for kind in KINDS}
# Child kinds the operator watches (handlers.py), so the cache holds them; the others are read from the API.
CACHED_CHILDREN = ("Job", "Deployment")
CACHED_KINDS = (*PLURALS, *CACHED_CHILDREN, "Pod")


def load_api_client(kubeconfig: str | None = None, pool_size: int = 32) -> k8s.ApiClient:
    """In-cluster config when running in a pod, else the kubeconfig (KUBECONFIG or the given file)."""
    configuration = k8s.Configuration()
    try:
        if kubeconfig:
            raise k8s_config.ConfigException("explicit kubeconfig")
        k8s_config.load_incluster_config(client_configuration=configuration)
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    configuration.connection_pool_maxsize = pool_size
    return k8s.ApiClient(configuration)


class _GroupApi(Generic[T]):
    """A Context attribute: the client's API class of one group, over the Context's ApiClient (built per access:
    cheap, every API class shares the client and its connection pool)."""

    def __init__(self, api_class: Callable[[k8s.ApiClient], T]) -> None:
        self.api_class = api_class

    def __get__(self, ctx: Context, owner: type[Context] | None = None) -> T:
        return self.api_class(ctx.api)


@dataclass
class Context:
    """What every reconcile needs: API clients, settings, metrics; kept in kopf's memo."""

    api: k8s.ApiClient
    settings: OperatorSettings
    metrics: OperatorMetrics
    gcs_client_factory: Callable[[], Any] | None = None
    namespaces: list[str] = field(default_factory=list)  # empty: cluster-wide
    cache: ClusterCache | None = None  # set by handlers.py under kopf; None: every read goes to the API server
    fresh_reads: bool = False  # the resync: read from the API server (and refresh the cache with what it says)
    _locks: dict[tuple[str, str, str], threading.Lock] = field(default_factory=dict)
    _locks_guard: threading.Lock = field(default_factory=threading.Lock)
    _api_groups: dict[str, bool] = field(default_factory=dict)
    _gcs_client: Any = None

    core = _GroupApi(k8s.CoreV1Api)
    apps = _GroupApi(k8s.AppsV1Api)
    batch = _GroupApi(k8s.BatchV1Api)
    custom = _GroupApi(k8s.CustomObjectsApi)

    def warm_up(self) -> None:
        """Import the client's API classes now: the kubernetes client loads them on first use, and core_v1_api
        alone costs seconds of CPU on a busy machine, which the first burst of objects would otherwise wait for."""
        self.core, self.apps, self.batch, self.custom  # noqa: B018 (each property builds its API class)

    def lock(self, kind: str, namespace: str, name: str) -> threading.Lock:
        """One reconcile at a time per object (handlers run in a thread pool)."""
        key = (kind, namespace, name)
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def forget_lock(self, kind: str, namespace: str, name: str) -> None:
        with self._locks_guard:
            self._locks.pop((kind, namespace, name), None)

    def gcs(self) -> Any:
        if self._gcs_client is None:
            if self.gcs_client_factory is not None:
                self._gcs_client = self.gcs_client_factory()
            else:
                from google.cloud import storage

                self._gcs_client = storage.Client(project=self.settings.gcs_project)
        return self._gcs_client

    def has_api_resource(self, group_version: str, plural: str) -> bool:
        """Whether the cluster serves a resource (discovery, cached): PodMonitoring/ServiceMonitor are optional."""
        key = f"{group_version}/{plural}"
        if key not in self._api_groups:
            try:
                group, version = group_version.split("/")
                resources = k8s.CustomObjectsApi(self.api).get_api_resources(group, version)
                self._api_groups[key] = any(r.name == plural for r in resources.resources)
            except ApiException as exc:
                if exc.status not in (403, 404):
                    raise
                self._api_groups[key] = False
        return self._api_groups[key]


@contextmanager
def reconciling(ctx: Context, kind: str) -> Iterator[None]:
    """Time a reconcile and count the ones that raised: `retry` (TemporaryError) or `error` (anything else)."""
    import kopf

    with ctx.metrics.reconciling(kind):
        try:
            yield
        except kopf.TemporaryError:
            ctx.metrics.reconciles.labels(kind, "retry").inc()
            raise
        except Exception:
            ctx.metrics.reconciles.labels(kind, "error").inc()
            raise


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def get_or_none(call: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    try:
        return call(*args, **kwargs)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def reconcile_latest(
    ctx: Context, kind: str, namespace: str, name: str, reconcile: Callable[[Context, dict[str, Any]], None]
) -> None:
    """Reconcile one object from a fresh read, one reconcile per object at a time (events, timers and
    dependency wake-ups may arrive together), timed and counted; an object already gone is a no-op."""
    with ctx.lock(kind, namespace, name), reconciling(ctx, kind):
        body = get_custom(ctx, kind, namespace, name)
        if body is not None:
            reconcile(ctx, body)


def _cache_reads(ctx: Context) -> ClusterCache | None:
    return None if ctx.fresh_reads else ctx.cache


def get_custom(ctx: Context, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    cache = _cache_reads(ctx)
    if cache is not None:
        return cache.get(kind, namespace, name)
    obj: dict[str, Any] | None = get_or_none(
        ctx.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURALS[kind], name
    )
    _remember(ctx, kind, obj, namespace, name)
    return obj


def list_custom(ctx: Context, kind: str, namespace: str) -> list[dict[str, Any]]:
    """Every object of one of this operator's kinds in `namespace`."""
    listing = ctx.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind])
    items: list[dict[str, Any]] = listing.get("items", [])
    return items


def patch_status(ctx: Context, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
    """Merge-patch the /status subresource. Keys whose value is None are removed."""
    patched = ctx.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURALS[kind], name, {"status": status}
    )
    ctx.metrics.status_updates.labels(kind).inc()
    _remember(ctx, kind, patched)


def _remember(ctx: Context, kind: str, body: Any, namespace: str = "", name: str = "") -> None:
    """Put the answer to one of our own reads or writes into the cache (see the module docstring); a read that
    found nothing (`body` None, `namespace`/`name` given) removes the object."""
    if ctx.cache is None or kind not in CACHED_KINDS:
        return
    if isinstance(body, dict) and body.get("metadata"):
        ctx.cache.observe(kind, body)
    elif body is None and name:
        ctx.cache.absent(kind, namespace, name)


# --- children ---------------------------------------------------------------------------------------------


def ensure_child(ctx: Context, owner_kind: str, desired: dict[str, Any], *, patchable: bool = True) -> dict[str, Any]:
    """Create the child if absent; patch it when its rendered hash changed (and it may be patched).

    409 on create (another reconcile or a previous operator process won) and 404 on patch (deleted meanwhile)
    are normal outcomes: the live object is read back (or created) instead. An object of that name that this
    owner does not control (ownerReference uid) is never patched: NameConflict.
    """
    kind = desired["kind"]
    api = child_api(ctx.api, kind)
    ns, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
    owner_uid = controller_uid(desired) or ""
    live = _read_child(ctx, api, ns, name)
    if live is None:
        try:
            created: dict[str, Any] = api.create(ns, desired)
            ctx.metrics.children_created.labels(owner_kind, kind).inc()
            return _wrote(ctx, "created", desired, created)
        except ApiException as exc:
            if exc.status != 409:
                raise
            live = api.read(ns, name)
            assert live is not None
            _remember(ctx, kind, live)
    check_controlled(live, kind, owner_uid)
    wanted = desired["metadata"]["annotations"][naming.ANNOTATION_SPEC_HASH]
    have = (live.get("metadata", {}).get("annotations") or {}).get(naming.ANNOTATION_SPEC_HASH)
    if patchable and have != wanted:
        try:
            return _wrote(ctx, "patched", desired, api.patch(ns, name, desired))
        except ApiException as exc:
            if exc.status != 404:
                raise
            if ctx.cache is not None:  # gone: the cache learns it now, not when the watch says so
                ctx.cache.deleted(kind, ns, name, live["metadata"].get("uid") or "")
            return ensure_child(ctx, owner_kind, desired, patchable=patchable)
    return live


def _wrote(ctx: Context, verb: str, desired: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """The API server's answer to a write of `desired`: logged, and into the cache."""
    kind, meta = desired["kind"], desired["metadata"]
    log.info("%s %s %s/%s", verb, kind, meta["namespace"], meta["name"])
    _remember(ctx, kind, answer)
    return answer


def _read_child(ctx: Context, api: ChildApi, namespace: str, name: str) -> dict[str, Any] | None:
    cache = _cache_reads(ctx)
    if cache is not None and api.kind in CACHED_CHILDREN:
        return cache.get(api.kind, namespace, name)
    live: dict[str, Any] | None = get_or_none(api.read, namespace, name)
    _remember(ctx, api.kind, live, namespace, name)
    return live


def get_owned_job(ctx: Context, namespace: str, name: str, owner_uid: str) -> dict[str, Any] | None:
    """The Job `name` as a dict if it exists and `owner_uid` controls it; None if absent; NameConflict otherwise."""
    cache = _cache_reads(ctx)
    if cache is not None:
        cached = cache.get("Job", namespace, name)
        return None if cached is None else check_controlled(cached, "Job", owner_uid)
    job = get_or_none(ctx.batch.read_namespaced_job, name, namespace)
    if job is None:
        _remember(ctx, "Job", None, namespace, name)
        return None
    job_dict: dict[str, Any] = ctx.api.sanitize_for_serialization(job)
    _remember(ctx, "Job", job_dict)
    return check_controlled(job_dict, "Job", owner_uid)


def get_deployment(ctx: Context, namespace: str, name: str) -> dict[str, Any] | None:
    """The Deployment `name` as a dict, or None if absent (not checked for ownership: ensure_child does that)."""
    return _read_child(ctx, child_api(ctx.api, "Deployment"), namespace, name)


def delete_job(ctx: Context, job: dict[str, Any]) -> None:
    """Delete exactly this Job (uid precondition: never a same-named Job created meanwhile)."""
    meta = job["metadata"]
    options = k8s.V1DeleteOptions(propagation_policy="Background", preconditions=k8s.V1Preconditions(uid=meta["uid"]))
    try:
        json_body(
            ctx.batch.delete_namespaced_job(meta["name"], meta["namespace"], body=options, _preload_content=False)
        )
    except ApiException as exc:
        if exc.status not in (404, 409):  # gone, or already replaced (uid precondition failed)
            raise
    if ctx.cache is not None:
        ctx.cache.deleted("Job", meta["namespace"], meta["name"], meta["uid"])


def job_pods(ctx: Context, job: dict[str, Any]) -> list[dict[str, Any]]:
    """The pods of this Job, found by its controller uid (label and ownerReference), not by its name."""
    uid = job["metadata"]["uid"]
    return pods_of_job(list_pods(ctx, job["metadata"]["namespace"], {LABEL_JOB_CONTROLLER_UID: uid}), uid)


def list_pods(ctx: Context, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
    """The pods of the namespace that carry every label of `selector` (the operator's own pods, when cached)."""
    cache = _cache_reads(ctx)
    if cache is not None:
        return cache.pods(namespace, selector)
    label_selector = ",".join(f"{k}={v}" for k, v in selector.items())
    pods = ctx.core.list_namespaced_pod(namespace, label_selector=label_selector)
    items: list[dict[str, Any]] = ctx.api.sanitize_for_serialization(pods).get("items", [])
    for pod in items:
        _remember(ctx, "Pod", pod)
    return items


# --- events -----------------------------------------------------------------------------------------------


def post_event(ctx: Context, owner: dict[str, Any], event_type: str, reason: str, message: str) -> None:
    """A Kubernetes Event on the owner (type Normal or Warning). Failures are logged, never raised."""
    meta = owner["metadata"]
    ts = now()
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": owner.get("apiVersion"),
            "kind": owner.get("kind"),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": event_type,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": naming.MANAGED_BY},
        "reportingComponent": naming.MANAGED_BY,
        "reportingInstance": naming.MANAGED_BY,
        "firstTimestamp": ts.isoformat(),
        "lastTimestamp": ts.isoformat(),
        "count": 1,
    }
    try:
        json_body(ctx.core.create_namespaced_event(meta["namespace"], body, _preload_content=False))
    except ApiException as exc:
        log.warning(
            "could not post event %s on %s/%s: %s %s", reason, meta["namespace"], meta["name"], exc.reason, exc.body
        )
