"""The operator image runs the operator against the local test cluster through one BenchmarkRun.

Real: the operator image (as built), the cluster (kube-apiserver, etcd, controller-manager, scheduler), the
Job the operator creates. Simulated (kwok): the benchmark pod's run, which ends with a benchmark summary as its
termination message (the bench image itself is exercised in test_maxtext_chain.py). The container runs on the
host network with a flattened kubeconfig mounted read-only, as the image's non-root user.
"""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster import sim
from tests.images.build import BuildResult
from tests.images.docker import DockerDaemon
from tests.operator.conftest import benchmark, summary_json
from tpuserve_dev.operator_harness import Objects, OperatorProcess, install_crds

pytestmark = [pytest.mark.images, pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(3600)]


@pytest.fixture
def readable_kubeconfig(kube_cluster: Any) -> Iterator[Path]:
    """The cluster's admin kubeconfig with certificates inline, readable by uid 65532."""
    directory = Path(tempfile.mkdtemp(prefix="tpuserve-kubeconfig-"))
    directory.chmod(0o755)
    path = directory / "kubeconfig"
    path.write_text(kube_cluster.kubectl("config", "view", "--raw", "--flatten").stdout)
    path.chmod(0o644)
    yield path
    path.unlink()
    directory.rmdir()


@pytest.fixture
def operator_container(
    kube_cluster: Any,
    readable_kubeconfig: Path,
    docker_daemon: DockerDaemon,
    built_image: Callable[[str], BuildResult],
    tmp_path: Path,
) -> Iterator[OperatorProcess]:
    install_crds(kube_cluster.kubectl)
    name = f"tpuserve-test-operator-{uuid.uuid4().hex[:8]}"
    mount = f"{readable_kubeconfig}:{readable_kubeconfig}:ro"
    launcher = ["docker", "run", "--rm", "--name", name, "--network", "host", "-v", mount, built_image("operator").tag]
    process = OperatorProcess(readable_kubeconfig, tmp_path / "operator.log", docker_daemon.env(), launcher=launcher)
    process.start()  # returns once the operator's liveness endpoint (host network) answers
    try:
        yield process
    finally:
        process.stop()
        subprocess.run(["docker", "rm", "--force", name], env=docker_daemon.env(), capture_output=True, check=False)


def test_operator_image_runs_a_benchmark_run(
    operator_container: OperatorProcess, kube_cluster: Any, namespace: str
) -> None:
    objects = Objects(kube_cluster.kubectl)
    annotations = {sim.TERMINATION_MESSAGE_ANNOTATION: summary_json(output_throughput=1234.0)}
    objects.apply(namespace, benchmark("run", target="10.0.0.1:9000", podAnnotations=annotations))
    status = objects.wait_phase("BenchmarkRun", namespace, "run", "Succeeded", "Failed", timeout=120)
    assert status["phase"] == "Succeeded", status
    assert "tpuserve_reconcile" in operator_container.metrics()  # its Prometheus endpoint answers from the container
