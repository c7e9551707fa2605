"""What the operator last saw of the objects it watches, kept in memory so a reconcile reads no API.

Filled from the watch-streams kopf already runs (handlers.py: `observe` on every event, `forget` on DELETED),
and from the answers to the operator's own reads and writes (`observe`, `absent`, `deleted`): a reconcile that
runs before the watch has delivered the operator's last write still sees that write, so it neither repeats a
status patch (and its Event) nor takes a Job it has just created for one that vanished.

Ordering: a body replaces the kept one only when its resourceVersion is not older (etcd revisions are integers;
a version that is not one is taken as newer). A uid the operator deleted is ignored until its DELETED event.

Kept per object (memory at 1,000s of objects): everything but `metadata.managedFields` and kubectl's
last-applied annotation; Pods keep only
`spec.nodeName` of their spec, Jobs no pod template (no reconcile reads them). Callers get deep copies.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from tpuserve.controllers import naming
from tpuserve.controllers.ownership import LABEL_JOB_CONTROLLER_UID

Body = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)
# Labels the pod lookups select by: answered through an index instead of a scan of every pod of the namespace.
INDEXED_POD_LABELS = (LABEL_JOB_CONTROLLER_UID, naming.LABEL_SERVER)
# `kubectl apply`'s copy of the whole object as applied: as large as the spec again, and nothing reads it.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def trimmed(kind: str, body: Mapping[str, Any]) -> Body:
    """The parts of a watched object a reconcile reads (see the module docstring)."""
    kept = {k: v for k, v in body.items() if k != "metadata"}
    meta = kept["metadata"] = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    if LAST_APPLIED in (meta.get("annotations") or {}):
        meta["annotations"] = {k: v for k, v in meta["annotations"].items() if k != LAST_APPLIED}
    spec = body.get("spec") or {}
    if kind == "Pod":
        kept["spec"] = {"nodeName": spec["nodeName"]} if spec.get("nodeName") else {}
    elif kind == "Job":
        kept["spec"] = {k: v for k, v in spec.items() if k != "template"}
    return kept


def _version(body: Mapping[str, Any]) -> int | None:
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or "")
    except ValueError:
        return None


def _not_older(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    new_version, old_version = _version(new), _version(old)
    return new_version is None or old_version is None or new_version >= old_version


def _uid(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("uid") or "")


class ClusterCache:
    """The watched objects by kind and (namespace, name); thread-safe (watch events arrive on kopf's event loop,
    reconciles read from its handler threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, dict[Key, Body]] = {}
        self._pods_by_label: dict[tuple[str, str, str], set[str]] = {}  # (namespace, label, value) → pod names
        self._deleted: set[str] = set()  # uids the operator deleted whose DELETED event has not arrived

    # --- writers ------------------------------------------------------------------------------------------

    def observe(self, kind: str, body: Mapping[str, Any]) -> None:
        """A watch event (ADDED/MODIFIED, or the initial listing), or the API server's answer to a read or to one
        of the operator's own creates and patches."""
        self._keep(kind, trimmed(kind, body))

    def absent(self, kind: str, namespace: str, name: str) -> None:
        """A read from the API server found no such object."""
        with self._lock:
            kept = self._objects.get(kind, {}).get((namespace, name))
            if kept is not None:
                self._drop(kind, (namespace, name), kept)

    def forget(self, kind: str, body: Mapping[str, Any]) -> None:
        """A DELETED event: the object goes, unless what is kept is already a newer object of that name."""
        meta = body.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        uid = _uid(body)
        with self._lock:
            self._deleted.discard(uid)
            kept = self._objects.get(kind, {}).get(key)
            if kept is not None and _uid(kept) == uid:
                self._drop(kind, key, kept)

    def deleted(self, kind: str, namespace: str, name: str, uid: str) -> None:
        """The operator deleted this object (by uid): gone now for its reconciles, before the watch says so."""
        with self._lock:
            self._deleted.add(uid)
            kept = self._objects.get(kind, {}).get((namespace, name))
            if kept is not None and _uid(kept) == uid:
                self._drop(kind, (namespace, name), kept)

    def _keep(self, kind: str, body: Body) -> None:
        meta = body["metadata"]
        key = (meta.get("namespace") or "", meta.get("name") or "")
        with self._lock:
            if _uid(body) in self._deleted:
                return
            objects = self._objects.setdefault(kind, {})
            kept = objects.get(key)
            if kept is not None:
                if not _not_older(body, kept):
                    return
                self._drop(kind, key, kept)
            objects[key] = body
            if kind == "Pod":
                for label in INDEXED_POD_LABELS:
                    value = (meta.get("labels") or {}).get(label)
                    if value is not None:
                        self._pods_by_label.setdefault((key[0], label, value), set()).add(key[1])

    def _drop(self, kind: str, key: Key, kept: Body) -> None:
        del self._objects[kind][key]
        if kind == "Pod":
            for label in INDEXED_POD_LABELS:
                value = (kept["metadata"].get("labels") or {}).get(label)
                names = self._pods_by_label.get((key[0], label, value or ""))
                if names is not None:
                    names.discard(key[1])
                    if not names:
                        del self._pods_by_label[(key[0], label, value or "")]

    # --- readers ------------------------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> Body | None:
        with self._lock:
            kept = self._objects.get(kind, {}).get((namespace, name))
            return copy.deepcopy(kept) if kept is not None else None

    def names(self, kind: str) -> list[Key]:
        with self._lock:
            return list(self._objects.get(kind, {}))

    def pods(self, namespace: str, selector: Mapping[str, str]) -> list[Body]:
        """The pods of the namespace whose labels match every key=value of `selector`."""
        with self._lock:
            pods = self._objects.get("Pod", {})
            indexed = next((label for label in INDEXED_POD_LABELS if label in selector), None)
            if indexed is not None:
                names = self._pods_by_label.get((namespace, indexed, selector[indexed]), set())
                candidates = [pods[(namespace, name)] for name in sorted(names)]
            else:
                candidates = [pod for (ns, _), pod in sorted(pods.items()) if ns == namespace]
            return [
                copy.deepcopy(pod)
                for pod in candidates
                if all((pod["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
            ]
