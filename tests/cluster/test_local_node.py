"""The local node `tpuserve-local`: pods with a tpuserve workload image run the real `tpuserve` CLI as local
processes, and what a kubelet would report (exit code, reason, termination message) reaches the API server.
Only on the local cluster (skipped with TPUSERVE_TEST_KUBECONFIG).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from localcluster import sim
from localcluster.fixtures import KubeCluster
from localcluster.kube import cpu_pod_spec, create, get, job, job_condition, list_items, pod
from localcluster.ports import free_port
from localcluster.wait import wait_for
from tpuserve import images

pytestmark = pytest.mark.cluster


@pytest.fixture(autouse=True)
def _needs_local_node(kube_cluster: KubeCluster) -> None:
    if not kube_cluster.has_local_node:
        pytest.skip("the local node exists only on the local cluster, not with TPUSERVE_TEST_KUBECONFIG")


def local_spec(args: list[str], policy: str = "File", env: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec = cpu_pod_spec(images.BENCH_IMAGE, args)
    spec["containers"][0]["terminationMessagePolicy"] = policy
    if env:
        spec["containers"][0]["env"] = env
    spec.update(sim.local_node_placement())
    return spec


def finished_pod(cluster: KubeCluster, namespace: str, app: str) -> dict[str, Any]:
    def terminal() -> dict[str, Any] | None:
        pods = list_items(cluster, namespace, "pod", f"app={app}")
        return next((p for p in pods if p["status"].get("phase") in ("Succeeded", "Failed")), None)

    return wait_for(terminal, timeout=60, description=f"the {app} pod finished")


def terminated_state(finished: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = finished["status"]["containerStatuses"][0]["state"]["terminated"]
    return state


def test_runs_tpuserve_and_reports_success(kube_cluster: KubeCluster, namespace: str) -> None:
    create(kube_cluster, namespace, job("version", local_spec(["--version"])))

    done = finished_pod(kube_cluster, namespace, "version")

    assert done["spec"]["nodeName"] == sim.LOCAL_NODE_NAME
    assert done["status"]["podIP"] == "127.0.0.1"
    terminated = terminated_state(done)
    assert (done["status"]["phase"], terminated["exitCode"], terminated["reason"]) == ("Succeeded", 0, "Completed")
    wait_for(
        lambda: job_condition(get(kube_cluster, namespace, "job", "version")) == "Complete",
        timeout=30,
        description="Job Complete",
    )


def test_reports_a_failing_command_with_its_log_tail(kube_cluster: KubeCluster, namespace: str) -> None:
    # An unknown subcommand: argparse exits 2; FallbackToLogsOnError makes its error the termination message.
    create(kube_cluster, namespace, job("typo", local_spec(["no-such-command"], policy="FallbackToLogsOnError")))

    done = finished_pod(kube_cluster, namespace, "typo")

    terminated = terminated_state(done)
    assert (done["status"]["phase"], terminated["exitCode"], terminated["reason"]) == ("Failed", 2, "Error")
    assert "invalid choice: 'no-such-command'" in terminated["message"]


def test_pod_env_field_refs_and_variable_expansion(kube_cluster: KubeCluster, namespace: str) -> None:
    # argparse echoes the rejected subcommand, so the process shows what its argument became.
    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "WHO", "value": "$(POD_NAMESPACE)/$(POD_NAME)"},
    ]
    create(kube_cluster, namespace, pod("echo", local_spec(["x-$(WHO)-$$(WHO)"], "FallbackToLogsOnError", env)))

    done = wait_for(
        lambda: (p := get(kube_cluster, namespace, "pod", "echo"))["status"].get("phase") == "Failed" and p,
        timeout=60,
        description="the pod finished",
    )

    assert f"invalid choice: 'x-{namespace}/echo-$(WHO)'" in terminated_state(done)["message"]


def test_empty_dir_is_a_directory_of_the_pod(kube_cluster: KubeCluster, namespace: str) -> None:
    spec = local_spec(["/var/tmp/tpuserve-work/sub"], "FallbackToLogsOnError")
    spec["containers"][0]["volumeMounts"] = [{"name": "work", "mountPath": "/var/tmp/tpuserve-work"}]
    spec["volumes"] = [{"name": "work", "emptyDir": {}}]
    create(kube_cluster, namespace, pod("scratch", spec))

    done = wait_for(
        lambda: (p := get(kube_cluster, namespace, "pod", "scratch"))["status"].get("phase") == "Failed" and p,
        timeout=60,
        description="the pod finished",
    )

    # argparse echoes the rejected argument: the path now lies in the pod's own directory on this machine.
    message = terminated_state(done)["message"]
    assert "/var/tmp/tpuserve-work" not in message
    assert f"/local-node/pods/{namespace}_scratch_" in message
    assert "/volumes/work/sub'" in message


def service(name: str, address: str | None) -> dict[str, Any]:
    annotations = {sim.ADDRESS_ANNOTATION: address} if address else {}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"selector": {"app": name}, "ports": [{"name": "grpc", "port": 9000}]},
    }


def test_simulated_dns_and_the_real_termination_message(kube_cluster: KubeCluster, namespace: str) -> None:
    # A benchmark against a Service that stands for a local address where nothing listens: the real
    # `tpuserve bench run` gives up and writes its JSON summary, which kubelet-style becomes the message.
    address = f"127.0.0.1:{free_port()}"
    create(kube_cluster, namespace, service("llama", address))
    target = f"llama.{namespace}.svc.cluster.local:9000"
    args = ["bench", "run", "--target", target, "--dataset", "synthetic", "--synthetic-input-length", "4"]
    args += ["--synthetic-output-length", "4", "--num-prompts", "2", "--server-wait", "1"]
    create(kube_cluster, namespace, job("bench", local_spec(args)))

    done = finished_pod(kube_cluster, namespace, "bench")

    terminated = terminated_state(done)
    assert done["status"]["phase"] == "Failed"
    assert terminated["exitCode"] == 1
    summary = json.loads(terminated["message"])
    assert address in summary["message"]
    assert target not in summary["message"]


def test_deleting_a_pod_stops_its_process(kube_cluster: KubeCluster, namespace: str) -> None:
    # Waits up to 10 minutes for a server that never comes: running until the pod is deleted.
    args = ["bench", "run", "--target", f"127.0.0.1:{free_port()}", "--dataset", "synthetic"]
    args += ["--synthetic-input-length", "4", "--synthetic-output-length", "4", "--server-wait", "600"]
    create(kube_cluster, namespace, pod("waiting", local_spec(args)))
    wait_for(
        lambda: get(kube_cluster, namespace, "pod", "waiting")["status"].get("phase") == "Running",
        timeout=30,
        description="the pod Running",
    )

    kube_cluster.kubectl("delete", "-n", namespace, "pod", "waiting", "--grace-period=5", "--wait=false")

    # The local node removes the pod only once the process has exited (SIGTERM within the grace period).
    wait_for(
        lambda: kube_cluster.kubectl("get", "-n", namespace, "pod", "waiting", check=False).returncode != 0,
        timeout=30,
        description="the pod gone",
    )


def test_refuses_images_that_are_not_tpuserve_workloads(kube_cluster: KubeCluster, namespace: str) -> None:
    spec = cpu_pod_spec(images.GOOGLE_SERVER_IMAGE)
    spec.update(sim.local_node_placement())
    create(kube_cluster, namespace, pod("foreign", spec))

    failed = wait_for(
        lambda: (p := get(kube_cluster, namespace, "pod", "foreign"))["status"].get("phase") == "Failed" and p,
        timeout=30,
        description="the foreign pod Failed",
    )

    assert failed["status"]["reason"] == "UnsupportedImage"
    assert images.GOOGLE_SERVER_IMAGE in failed["status"]["message"]
