"""Which objects an owner may touch: only children whose controller ownerReference carries the owner's uid.

A name alone proves nothing: a hand-made Service can carry the server's name, and a BenchmarkRun deleted and
recreated under the same name finds the old run's Job (garbage collection is asynchronous). Such an object is
a `NameConflict` for the owner: named in its status, never patched, deleted or read for results. Pure.
"""

from __future__ import annotations

from typing import Any

# The Job controller labels its pods with the Job's uid (Kubernetes >= 1.27; `controller-uid` before that).
LABEL_JOB_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"


class NameConflict(Exception):
    """A child's name is taken by an object the owner does not control."""

    def __init__(self, kind: str, namespace: str, name: str, holder: str) -> None:
        self.kind, self.namespace, self.name, self.holder = kind, namespace, name, holder
        super().__init__(
            f"{kind} {namespace}/{name} already exists and is not controlled by this object ({holder}); "
            f"nothing was changed: delete or rename that {kind}, or give this object another name"
        )


def controller_reference(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The ownerReference with controller: true, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            found: dict[str, Any] = ref
            return found
    return None


def controller_uid(obj: dict[str, Any]) -> str | None:
    ref = controller_reference(obj)
    return str(ref["uid"]) if ref and ref.get("uid") else None


def holder(obj: dict[str, Any]) -> str:
    """Who controls an object, in words."""
    ref = controller_reference(obj)
    if ref is None:
        return "it has no controller"
    return f"its controller is {ref.get('kind')} {ref.get('name')} uid {ref.get('uid')}"


def check_controlled(live: dict[str, Any], kind: str, owner_uid: str) -> dict[str, Any]:
    """`live` itself when `owner_uid` controls it; NameConflict otherwise."""
    meta = live.get("metadata") or {}
    if not owner_uid or controller_uid(live) != owner_uid:
        raise NameConflict(kind, meta.get("namespace", ""), meta.get("name", ""), holder(live))
    return live


def pods_of_job(pods: list[dict[str, Any]], job_uid: str) -> list[dict[str, Any]]:
    """The pods a Job controls (its controller uid), whatever their `job-name` label says."""
    return [pod for pod in pods if controller_uid(pod) == job_uid]
