"""The local node runs pods of the project's real images as containers (localcluster.container_runner).

A cluster of its own whose local node has the image tier's Docker daemon (`ClusterConfig.docker_host`), and the
real operator (a host process). A test-made pod of the server image runs MaxText's JetStream server (CPU, the
tiny converted checkpoint on a hostPath volume) as a container through the local node; a BenchmarkRun targets it
through its Service (simulated DNS), and the Job pod the operator creates runs the bench image as a container;
the benchmark summary it writes to /dev/termination-log ends in the BenchmarkRun's status. The containers are
found in the daemon by the pod-UID label the node sets, and a pod whose image the daemon lacks still runs as a
process. MaxText's server listens on its fixed port 9000 on the host network (the local cluster is all loopback).
"""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster import sim
from localcluster.container_runner import POD_UID_LABEL
from localcluster.fixtures import KubeCluster, fresh_namespace
from localcluster.harness import LocalCluster
from localcluster.kube import cpu_pod_spec, create, get, job, list_items
from localcluster.ports import free_port
from localcluster.wait import wait_for
from tests.images.build import BuildResult
from tests.images.chain import SERVER_READY_SECONDS, WORK, Converted, Workspace, server_args
from tests.images.docker import DockerDaemon
from tests.operator.conftest import benchmark
from tpuserve import images
from tpuserve_dev import cluster as cluster_config
from tpuserve_dev.operator_harness import Objects, OperatorProcess, install_crds

pytestmark = [pytest.mark.images, pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(3600)]

JETSTREAM_PORT = 9000  # MaxText's server: fixed in maxengine_server.py
LOCAL: dict[str, Any] = dict(sim.local_node_placement())


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def docker_cluster(
    docker_daemon: DockerDaemon, built_image: Callable[[str], BuildResult], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KubeCluster]:
    """A local cluster whose local node runs the daemon's images as containers (the images built first)."""
    for name in ("bench", "server"):
        built_image(name)
    config = dataclasses.replace(cluster_config.CONFIG, docker_host=docker_daemon.host)
    local = LocalCluster(tmp_path_factory.mktemp("docker-cluster"), config=config, tied_to_this_process=True)
    local.start()
    try:
        yield KubeCluster(kubeconfig=local.kubeconfig, bin_dir=local.bin_dir, local=local)
    finally:
        local.stop()


@pytest.fixture(scope="module")
def operator(docker_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    install_crds(docker_cluster.kubectl)
    process = OperatorProcess(docker_cluster.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def namespace(docker_cluster: KubeCluster) -> Iterator[str]:
    with fresh_namespace(docker_cluster) as name:
        yield name


def containers_of(daemon: DockerDaemon, pod_uid: str) -> list[dict[str, Any]]:
    """`docker inspect` of every container (running or not) the local node made for the pod."""
    ids = daemon.run("ps", "--all", "--quiet", "--no-trunc", "--filter", f"label={POD_UID_LABEL}={pod_uid}").stdout
    if not ids.split():
        return []
    found: list[dict[str, Any]] = json.loads(daemon.run("inspect", *ids.split()).stdout)
    return found


def server_pod(converted: Converted, workspace: Workspace) -> dict[str, Any]:
    container = {
        "name": "jetstream",
        "image": images.SERVER_IMAGE,
        "args": server_args(converted, prometheus_port=free_port()),
        "volumeMounts": [{"name": "work", "mountPath": WORK, "readOnly": True}],
    }
    spec = {
        **LOCAL,
        "containers": [container],
        "volumes": [{"name": "work", "hostPath": {"path": str(workspace.host)}}],
        "terminationGracePeriodSeconds": 5,
    }
    metadata = {"name": "maxtext", "labels": {"app": "maxtext"}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def started(pod: dict[str, Any]) -> dict[str, Any] | None:
    status: dict[str, Any] = pod.get("status") or {}
    return status if status.get("phase") in ("Running", "Succeeded", "Failed") else None


def sim_service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "annotations": {sim.ADDRESS_ANNOTATION: f"127.0.0.1:{JETSTREAM_PORT}"}},
        "spec": {"ports": [{"name": "grpc", "port": JETSTREAM_PORT}], "selector": {"app": name}},
    }


@pytest.mark.usefixtures("operator")
def test_operator_benchmark_job_runs_the_bench_image_as_a_container_against_the_server_image(
    docker_cluster: KubeCluster, docker_daemon: DockerDaemon, converted: Converted, workspace: Workspace, namespace: str
) -> None:
    assert port_is_free(JETSTREAM_PORT), f"port {JETSTREAM_PORT} is taken on this machine: MaxText's server needs it"
    create(docker_cluster, namespace, server_pod(converted, workspace))
    create(docker_cluster, namespace, sim_service("maxtext"))
    target = f"maxtext.{namespace}.svc.cluster.local:{JETSTREAM_PORT}"
    server_status = wait_for(
        lambda: started(get(docker_cluster, namespace, "pod", "maxtext")), timeout=60, description="the server pod"
    )
    assert server_status["phase"] == "Running", server_status
    objects = Objects(docker_cluster.kubectl)
    objects.apply(namespace, benchmark("run", target=target, numPrompts=4, **LOCAL))

    status = objects.wait_phase("BenchmarkRun", namespace, "run", "Succeeded", "Failed", timeout=SERVER_READY_SECONDS)

    assert status["phase"] == "Succeeded", status
    assert status["results"]["successfulRequests"] == 4
    assert status["results"]["failedRequests"] == 0
    assert status["results"]["totalOutputTokens"] > 0
    (bench,) = list_items(docker_cluster, namespace, "pod", f"job-name={status['jobName']}")
    (bench_container,) = containers_of(docker_daemon, bench["metadata"]["uid"])
    assert bench["status"]["containerStatuses"][0]["containerID"] == f"docker://{bench_container['Id']}"
    assert bench_container["Config"]["Image"] == images.BENCH_IMAGE
    assert bench_container["State"]["ExitCode"] == 0
    assert bench_container["HostConfig"]["NetworkMode"] == "host"
    assert bench_container["Config"]["User"] == "65532:65532"  # the operator's restricted security context
    log = docker_cluster.local.state_dir / "local-node" / "pods"  # type: ignore[union-attr]
    (bench_log,) = log.glob(f"{namespace}_{bench['metadata']['name']}_*/bench.log")
    assert "Successful requests: 4" in bench_log.read_text()

    server = get(docker_cluster, namespace, "pod", "maxtext")
    (server_container,) = containers_of(docker_daemon, server["metadata"]["uid"])
    assert server_container["Config"]["Image"] == images.SERVER_IMAGE
    assert server_container["State"]["Running"]
    assert server["status"]["containerStatuses"][0]["containerID"] == f"docker://{server_container['Id']}"
    # The pod's default kube-api-access volume: a token the node requested, bound to this pod.
    mounts = {m["Destination"]: Path(m["Source"]) for m in server_container["Mounts"]}
    token = mounts["/var/run/secrets/kubernetes.io/serviceaccount"] / "token"
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token.read_text()}}
    reviewed = json.loads(docker_cluster.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review)).stdout)
    assert reviewed["status"]["user"]["username"] == f"system:serviceaccount:{namespace}:default"
    assert reviewed["status"]["user"]["extra"]["authentication.kubernetes.io/pod-name"] == ["maxtext"]
    # Deleting the pod stops the container (SIGTERM, then SIGKILL after the grace period) and removes it.
    docker_cluster.kubectl("delete", "pod", "maxtext", "-n", namespace, "--timeout=120s")
    assert containers_of(docker_daemon, server["metadata"]["uid"]) == []


def test_an_image_the_daemon_lacks_still_runs_as_a_process(docker_cluster: KubeCluster, namespace: str) -> None:
    unbuilt = images.BENCH_IMAGE.rsplit(":", 1)[0] + ":not-in-the-daemon"
    create(docker_cluster, namespace, job("version", {**cpu_pod_spec(unbuilt, ["--version"]), **LOCAL}))

    def finished() -> dict[str, Any] | None:
        pods = list_items(docker_cluster, namespace, "pod", "app=version")
        return next((p for p in pods if p["status"].get("phase") in ("Succeeded", "Failed")), None)

    done = wait_for(finished, timeout=120, description="the version pod finished")
    assert done["status"]["phase"] == "Succeeded"
    assert done["status"]["containerStatuses"][0]["containerID"].startswith("process://")


def finished_pod(cluster: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        found = get(cluster, namespace, "pod", name)
        return found if found.get("status", {}).get("phase") in ("Succeeded", "Failed") else None

    return wait_for(finished, timeout=120, description=f"pod {name} finished")


def bench_image_pod(name: str, **container: Any) -> dict[str, Any]:
    containers = [{"name": "main", "image": images.BENCH_IMAGE, **container}]
    spec = {**LOCAL, "restartPolicy": "Never", "containers": containers}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_a_failing_container_fails_the_pod_with_its_exit_code_and_termination_message(
    docker_cluster: KubeCluster, docker_daemon: DockerDaemon, namespace: str
) -> None:
    create(docker_cluster, namespace, bench_image_pod("usage", args=["bench", "run", "--dataset", "synthetic"]))

    done = finished_pod(docker_cluster, namespace, "usage")

    terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (done["status"]["phase"], terminated["exitCode"], terminated["reason"]) == ("Failed", 2, "Error")
    # tpuserve's usage error, written to /dev/termination-log inside the container
    assert "the following arguments are required: --target" in terminated["message"]
    assert terminated["containerID"].startswith("docker://")
    (container,) = containers_of(docker_daemon, done["metadata"]["uid"])
    assert container["State"]["ExitCode"] == 2


def test_the_memory_limit_is_enforced(docker_cluster: KubeCluster, namespace: str) -> None:
    grow = ["python3", "-c", "b = b'x' * (512 * 2**20); print(len(b))"]
    limits = {"limits": {"memory": "128Mi"}}
    create(docker_cluster, namespace, bench_image_pod("hungry", command=grow, resources=limits))

    done = finished_pod(docker_cluster, namespace, "hungry")

    terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (done["status"]["phase"], terminated["exitCode"], terminated["reason"]) == ("Failed", 137, "OOMKilled")
