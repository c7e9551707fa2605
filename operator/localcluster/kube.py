"""Small helpers for tests that drive the cluster through kubectl with plain manifests (dicts)."""

from __future__ import annotations

import json
from typing import Any

from localcluster.fixtures import KubeCluster

# kwok nodes never pull or run these; on a real cluster (TPUSERVE_TEST_KUBECONFIG) they run as written.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
BUSYBOX_IMAGE = "busybox:1.37"


def create(cluster: KubeCluster, namespace: str, manifest: dict[str, Any]) -> None:
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(manifest))


def get(cluster: KubeCluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cluster.kubectl("get", "-n", namespace, kind, name, "-o", "json").stdout)
    return result


def list_items(cluster: KubeCluster, namespace: str, kind: str, selector: str) -> list[dict[str, Any]]:
    result = cluster.kubectl("get", "-n", namespace, kind, "-l", selector, "-o", "json")
    items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
    return items


def pod(name: str, spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": spec,
    }


def job(name: str, pod_spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations or {}, "labels": {"app": name}},
                "spec": {"restartPolicy": "Never", **pod_spec},
            },
        },
    }


def cpu_pod_spec(image: str = PAUSE_IMAGE, args: list[str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image}
    if args is not None:
        container["args"] = args
    return {"containers": [container]}


def shell_pod_spec(script: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """A container that runs `script` on a real node; on kwok nodes the sim annotations stand for its effect."""
    container: dict[str, Any] = {"name": "main", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", script]}
    if env:
        container["env"] = [{"name": key, "value": value} for key, value in env.items()]
    return {"containers": [container]}


def job_condition(job_object: dict[str, Any]) -> str | None:
    """Complete or Failed once the Job controller has decided, else None."""
    for condition in job_object.get("status", {}).get("conditions", []):
        if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
            return str(condition["type"])
    return None
