"""Tests of the cluster itself: real scheduling against the (simulated) GKE node pools, pod lifecycles, the
controllers (Job, Deployment, garbage collector, namespace) and authentication/RBAC. The local node's tests are
in test_local_node.py.

They run unchanged against GKE (TPUSERVE_TEST_KUBECONFIG): containers that must exit, fail or stay unready do it
for real on a real node (busybox scripts, a failing readiness probe) and through the sim.tpuserve.dev
annotations on kwok's nodes, so both kinds of cluster meet the same assertions.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s_client

from localcluster import sim
from localcluster.fixtures import KubeCluster, create_test_namespace
from localcluster.kube import (
    PAUSE_IMAGE,
    cpu_pod_spec,
    create,
    get,
    job,
    job_condition,
    list_items,
    pod,
    shell_pod_spec,
)
from localcluster.wait import wait_for
from tpuserve import tpu
from tpuserve_dev import cluster as cluster_config

pytestmark = pytest.mark.cluster


def tpu_toleration() -> dict[str, str]:
    return {"key": tpu.TPU_TAINT_KEY, "operator": "Equal", "value": tpu.TPU_TAINT_VALUE, "effect": tpu.TPU_TAINT_EFFECT}


def tpu_pod_spec(accelerator: str, topology: str, chips: int, *, tolerate: bool = True) -> dict[str, Any]:
    """A pod spec as the operator renders for a TPU slice: node selector, whole-host request, toleration."""
    return {
        "nodeSelector": {tpu.ACCELERATOR_LABEL: accelerator, tpu.TOPOLOGY_LABEL: topology},
        "tolerations": [tpu_toleration()] if tolerate else [],
        "containers": [
            {
                "name": "server",
                "image": PAUSE_IMAGE,
                "resources": {"requests": {tpu.TPU_RESOURCE: str(chips)}, "limits": {tpu.TPU_RESOURCE: str(chips)}},
            }
        ],
    }


def failed_scheduling_message(cluster: KubeCluster, namespace: str, pod_name: str) -> str | None:
    result = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector",
        f"involvedObject.name={pod_name},reason=FailedScheduling", "-o", "json",
    )  # fmt: skip
    events = json.loads(result.stdout)["items"]
    return str(events[-1]["message"]) if events else None


def test_tpu_pod_is_scheduled_on_the_v5e_2x4_pool(kube_cluster: KubeCluster, namespace: str) -> None:
    create(kube_cluster, namespace, pod("server", tpu_pod_spec("tpu-v5-lite-podslice", "2x4", 8)))

    running = wait_for(
        lambda: (p := get(kube_cluster, namespace, "pod", "server"))["status"].get("phase") == "Running" and p,
        timeout=30,
        description="the TPU pod Running",
    )

    node = get(kube_cluster, "default", "node", running["spec"]["nodeName"])
    labels = node["metadata"]["labels"]
    assert labels[tpu.INSTANCE_TYPE_LABEL] == "ct5lp-hightpu-8t"
    assert labels[tpu.ACCELERATOR_COUNT_LABEL] == "8"
    assert node["status"]["allocatable"][tpu.TPU_RESOURCE] == "8"
    if kube_cluster.has_local_node:  # the simulated pools: the node is one of the generated v5e 2x4 nodes
        assert running["spec"]["nodeName"] in cluster_config.find_pool("v5e", "2x4").node_names()
        assert {c["type"]: c["status"] for c in running["status"]["conditions"]}["Ready"] == "True"


@pytest.mark.parametrize(
    ("topology", "chips", "why"),
    [("4x4", 8, "node affinity/selector"), ("2x4", 9, "Insufficient google.com/tpu")],
    ids=["multi-host-topology", "nine-chips"],
)
def test_unsatisfiable_tpu_pod_stays_pending(
    kube_cluster: KubeCluster, namespace: str, topology: str, chips: int, why: str
) -> None:
    create(kube_cluster, namespace, pod("server", tpu_pod_spec("tpu-v5-lite-podslice", topology, chips)))

    message = wait_for(
        lambda: failed_scheduling_message(kube_cluster, namespace, "server"),
        timeout=30,
        description="a FailedScheduling event",
    )

    assert why in message
    stuck = get(kube_cluster, namespace, "pod", "server")
    assert stuck["status"]["phase"] == "Pending"
    assert "nodeName" not in stuck["spec"]


def test_pod_without_toleration_is_kept_off_tpu_nodes(kube_cluster: KubeCluster, namespace: str) -> None:
    create(kube_cluster, namespace, pod("plain", cpu_pod_spec()))
    create(
        kube_cluster, namespace, pod("no-toleration", tpu_pod_spec("tpu-v5-lite-podslice", "2x4", 8, tolerate=False))
    )

    placed = wait_for(
        lambda: get(kube_cluster, namespace, "pod", "plain")["spec"].get("nodeName"),
        timeout=30,
        description="the plain pod scheduled",
    )
    message = wait_for(
        lambda: failed_scheduling_message(kube_cluster, namespace, "no-toleration"),
        timeout=30,
        description="a FailedScheduling event for the TPU pod without toleration",
    )

    node_labels = get(kube_cluster, "default", "node", placed)["metadata"]["labels"]
    assert tpu.ACCELERATOR_LABEL not in node_labels
    # The only nodes matching the selector are the v5e 2x4 nodes, and their google.com/tpu taint rejects it.
    assert "untolerated taint" in message
    assert get(kube_cluster, namespace, "pod", "no-toleration")["status"]["phase"] == "Pending"


def test_job_succeeds(kube_cluster: KubeCluster, namespace: str) -> None:
    create(kube_cluster, namespace, job("convert", shell_pod_spec("exit 0")))

    outcome = wait_for(lambda: job_condition(get(kube_cluster, namespace, "job", "convert")), 30, description="Job end")

    assert outcome == "Complete"
    (finished,) = list_items(kube_cluster, namespace, "pod", "app=convert")
    assert finished["status"]["phase"] == "Succeeded"
    terminated = finished["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")


def test_job_fails_with_exit_code_and_termination_message(kube_cluster: KubeCluster, namespace: str) -> None:
    message = '{"ok": false, "message": "boom"}'
    annotations = {sim.EXIT_CODE_ANNOTATION: "3", sim.TERMINATION_MESSAGE_ANNOTATION: message}
    spec = shell_pod_spec('printf %s "$MESSAGE" > /dev/termination-log; exit 3', env={"MESSAGE": message})
    create(kube_cluster, namespace, job("convert", spec, annotations))

    outcome = wait_for(lambda: job_condition(get(kube_cluster, namespace, "job", "convert")), 30, description="Job end")

    assert outcome == "Failed"
    (failed,) = list_items(kube_cluster, namespace, "pod", "app=convert")
    assert failed["status"]["phase"] == "Failed"
    terminated = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    assert terminated["reason"] == "Error"
    assert json.loads(terminated["message"]) == {"ok": False, "message": "boom"}


def deployment(name: str, pod_spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}, "annotations": annotations or {}}, "spec": pod_spec},
        },
    }


def deployment_available(cluster: KubeCluster, namespace: str, name: str) -> str | None:
    conditions = get(cluster, namespace, "deployment", name).get("status", {}).get("conditions", [])
    return next((c["status"] for c in conditions if c["type"] == "Available"), None)


def test_deployment_becomes_available(kube_cluster: KubeCluster, namespace: str) -> None:
    create(kube_cluster, namespace, deployment("server", tpu_pod_spec("tpu-v5-lite-podslice", "2x4", 8)))

    wait_for(
        lambda: deployment_available(kube_cluster, namespace, "server") == "True",
        timeout=30,
        description="Deployment Available",
    )

    assert get(kube_cluster, namespace, "deployment", "server")["status"]["readyReplicas"] == 1


def test_not_ready_annotation_keeps_a_server_unavailable(kube_cluster: KubeCluster, namespace: str) -> None:
    spec = shell_pod_spec("sleep 3600")
    spec["containers"][0]["readinessProbe"] = {"exec": {"command": ["false"]}, "periodSeconds": 2}
    create(kube_cluster, namespace, deployment("server", spec, {sim.READY_ANNOTATION: "false"}))

    (running,) = wait_for(
        lambda: [
            p for p in list_items(kube_cluster, namespace, "pod", "app=server") if p["status"].get("phase") == "Running"
        ],
        timeout=30,
        description="the server pod Running",
    )

    conditions = {c["type"]: c["status"] for c in running["status"]["conditions"]}
    assert conditions["Ready"] == "False"
    assert running["status"]["containerStatuses"][0]["ready"] is False
    # The Deployment controller has seen the Running pod (observedGeneration) and still counts no ready replica.
    wait_for(
        lambda: deployment_available(kube_cluster, namespace, "server") is not None,
        timeout=30,
        description="the Deployment's Available condition",
    )
    assert deployment_available(kube_cluster, namespace, "server") == "False"
    assert get(kube_cluster, namespace, "deployment", "server")["status"].get("readyReplicas", 0) == 0


def test_deleting_an_owner_garbage_collects_its_children(kube_cluster: KubeCluster, namespace: str) -> None:
    create(kube_cluster, namespace, deployment("server", cpu_pod_spec()))
    wait_for(
        lambda: deployment_available(kube_cluster, namespace, "server") == "True",
        timeout=30,
        description="Deployment Available",
    )
    assert list_items(kube_cluster, namespace, "replicaset", "app=server")

    kube_cluster.kubectl("delete", "-n", namespace, "deployment", "server", "--cascade=background", "--wait=false")

    wait_for(
        lambda: (
            not list_items(kube_cluster, namespace, "replicaset", "app=server")
            and not list_items(kube_cluster, namespace, "pod", "app=server")
        ),
        timeout=30,
        description="the ReplicaSet and its pods garbage-collected",
    )


def test_deleting_a_namespace_with_running_workloads_completes(kube_cluster: KubeCluster) -> None:
    # Job pods carry the Job controller's tracking finalizer; the node must stop and release them (as kubelet
    # does) or namespace deletion hangs. Run-duration keeps the kwok Job pod Running until the deletion.
    name = f"t-delete-{uuid.uuid4().hex[:8]}"
    create_test_namespace(kube_cluster, name)
    create(kube_cluster, name, job("convert", shell_pod_spec("sleep 600"), {sim.RUN_DURATION_ANNOTATION: "10m"}))
    create(kube_cluster, name, deployment("server", tpu_pod_spec("tpu-v5-lite-podslice", "2x4", 8)))
    wait_for(
        lambda: (
            len([p for p in list_items(kube_cluster, name, "pod", "app") if p["status"].get("phase") == "Running"]) == 2
        ),
        timeout=30,
        description="both pods Running",
    )

    kube_cluster.kubectl("delete", "namespace", name, "--wait=false")

    wait_for(
        lambda: kube_cluster.kubectl("get", "namespace", name, check=False).returncode != 0,
        timeout=90,
        description=f"namespace {name} deleted",
    )


def test_api_server_authenticates_and_authorizes(kube_cluster: KubeCluster, namespace: str, tmp_path: Path) -> None:
    # A real service-account token (TokenRequest, signed with the API server's issuer key) authenticates, and RBAC
    # grants that ServiceAccount nothing by default. The token goes in a kubeconfig of its own: with the admin
    # kubeconfig the client certificate would authenticate first.
    token = kube_cluster.kubectl("create", "token", "default", "-n", namespace, "--duration=10m").stdout.strip()
    admin = yaml.safe_load(kube_cluster.kubeconfig.read_text())

    def kubectl_with_token(bearer: str, *args: str) -> subprocess.CompletedProcess[str]:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": admin["clusters"],
            "users": [{"name": "token", "user": {"token": bearer}}],
            "contexts": [{"name": "token", "context": {"cluster": admin["clusters"][0]["name"], "user": "token"}}],
            "current-context": "token",
        }
        path = tmp_path / "token.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        command = [str(kube_cluster.bin_dir / "kubectl"), f"--kubeconfig={path}", *args]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    whoami = kubectl_with_token(token, "auth", "whoami", "-o", "json")
    denied = kubectl_with_token(token, "get", "pods", "-n", namespace)
    bad_token = kubectl_with_token("not-a-valid-token", "get", "pods", "-n", namespace)

    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:default"
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    assert bad_token.returncode != 0
    assert "unauthorized" in bad_token.stderr.lower()


def test_api_client_reaches_the_cluster(kube_cluster: KubeCluster) -> None:
    with kube_cluster.api_client() as api_client:
        nodes = k8s_client.CoreV1Api(api_client).list_node(label_selector=f"{tpu.TOPOLOGY_LABEL}=2x4")

    assert {n.metadata.labels[tpu.ACCELERATOR_LABEL] for n in nodes.items} >= {"tpu-v5-lite-podslice"}


def test_non_integer_exit_code_annotation_fails_with_a_reason(kube_cluster: KubeCluster, namespace: str) -> None:
    if not kube_cluster.has_local_node:
        pytest.skip("kwok's simulation annotations exist only on the local cluster")
    create(kube_cluster, namespace, job("convert", cpu_pod_spec(), {sim.EXIT_CODE_ANNOTATION: "three"}))

    wait_for(lambda: job_condition(get(kube_cluster, namespace, "job", "convert")), 30, description="Job end")

    (failed,) = list_items(kube_cluster, namespace, "pod", "app=convert")
    terminated = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 128
    assert 'sim.tpuserve.dev/exit-code="three" is not an integer' in terminated["message"]
