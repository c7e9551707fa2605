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


# The built-in child kinds: the client API class and the noun of its `{read,create,patch}_namespaced_<noun>` calls.
_BUILT_IN: dict[str, tuple[type[Any], str]] = {
    "Job": (k8s.BatchV1Api, "job"),
    "Deployment": (k8s.AppsV1Api, "deployment"),
    "Service": (k8s.CoreV1Api, "service"),
}


def child_api(client: k8s.ApiClient, kind: str) -> ChildApi:
    """Typed read/create/patch of the child kinds; results are plain dicts (sanitized)."""
    sanitize = client.sanitize_for_serialization

    def wrap(call: Callable[..., Any]) -> Callable[..., Any]:
        def inner(*args: Any) -> Any:
            result = call(*args)
            return result if isinstance(result, dict) else sanitize(result)

        return inner

    if kind in _BUILT_IN:
        api_class, noun = _BUILT_IN[kind]
        api = api_class(client)
        read, create, patch = (getattr(api, f"{verb}_namespaced_{noun}") for verb in ("read", "create", "patch"))
        return ChildApi(
            kind,
            wrap(lambda ns, n: read(n, ns)),
            # The answer as JSON: the client's model classes cost more CPU than the rest of a reconcile (a Job is
            # created once per BenchmarkRun; the other kinds are few).
            (lambda ns, body: json_body(create(ns, body, _preload_content=False)))
            if kind == "Job"
            else wrap(lambda ns, body: create(ns, body)),
            wrap(lambda ns, n, body: patch(n, ns, body)),
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
