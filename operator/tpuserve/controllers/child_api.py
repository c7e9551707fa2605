"""Typed read/create/patch of each child kind the operator makes (Job, Deployment, Service, PodMonitoring,
ServiceMonitor), answering plain dicts; used by kube.ensure_child."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from tpuserve.controllers import monitors


def json_body(response: Any) -> dict[str, Any]:
    """The body of a `_preload_content=False` answer, read whole: only then does urllib3 put the connection back in
    its pool (an unread answer costs a new connection, and a TLS handshake, for a later request)."""
    decoded: dict[str, Any] = json.loads(response.data)
    return decoded


@dataclass(frozen=True)
class ChildApi:
    kind: str
    read: Callable[[str, str], Any]
    create: Callable[[str, dict[str, Any]], Any]
    patch: Callable[[str, str, dict[str, Any]], Any]


def child_api(client: k8s.ApiClient, kind: str) -> ChildApi:
    """Typed read/create/patch of the child kinds; results are plain dicts (sanitized)."""
    sanitize = client.sanitize_for_serialization

    def wrap(call: Callable[..., Any]) -> Callable[..., Any]:
        def inner(*args: Any) -> Any:
            result = call(*args)
            return result if isinstance(result, dict) else sanitize(result)

        return inner

    if kind == "Job":
        b = k8s.BatchV1Api(client)
        return ChildApi(
            kind,
            wrap(lambda ns, n: b.read_namespaced_job(n, ns)),
            # The answer as JSON: the client's model classes cost more CPU than the rest of a reconcile.
            lambda ns, body: json_body(b.create_namespaced_job(ns, body, _preload_content=False)),
            wrap(lambda ns, n, body: b.patch_namespaced_job(n, ns, body)),
        )
    if kind == "Deployment":
        a = k8s.AppsV1Api(client)
        return ChildApi(
            kind,
            wrap(lambda ns, n: a.read_namespaced_deployment(n, ns)),
            wrap(lambda ns, body: a.create_namespaced_deployment(ns, body)),
            wrap(lambda ns, n, body: a.patch_namespaced_deployment(n, ns, body)),
        )
    if kind == "Service":
        c = k8s.CoreV1Api(client)
        return ChildApi(
            kind,
            wrap(lambda ns, n: c.read_namespaced_service(n, ns)),
            wrap(lambda ns, body: c.create_namespaced_service(ns, body)),
            wrap(lambda ns, n, body: c.patch_namespaced_service(n, ns, body)),
        )
    if kind in monitors.BY_KIND:
        monitor = monitors.BY_KIND[kind]
        group, version, plural = monitor.group, monitor.version, monitor.plural
        cu = k8s.CustomObjectsApi(client)
        return ChildApi(
            kind,
            wrap(lambda ns, n: cu.get_namespaced_custom_object(group, version, ns, plural, n)),
            wrap(lambda ns, body: cu.create_namespaced_custom_object(group, version, ns, plural, body)),
            wrap(lambda ns, n, body: cu.patch_namespaced_custom_object(group, version, ns, plural, n, body)),
        )
    raise ValueError(f"unknown child kind {kind}")
