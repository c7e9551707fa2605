"""Pytest fixtures for the local test cluster (CONTRACTS.md item 7).

`local_cluster_config` (session): what the cluster simulates (`ClusterConfig`); a project overrides it in its
conftest.py (tpuserve's: tests/conftest.py).
`kube_cluster` (session): one fresh local cluster per test session, in a temporary directory on free loopback
ports, stopped at the end; or, with TPUSERVE_TEST_KUBECONFIG=path, an existing cluster (e.g. GKE) that is used as
is and never stopped. `namespace` (function): a fresh namespace per test, deleted afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from localcluster.harness import ClusterConfig, ClusterError, LocalCluster, run_kubectl, tools_bin_dir
from localcluster.wait import wait_for

EXISTING_KUBECONFIG_ENV = "TPUSERVE_TEST_KUBECONFIG"
TEST_NAMESPACE_LABEL = "tpuserve.dev/test"


@dataclass
class KubeCluster:
    """What tests get: a kubeconfig with cluster-admin rights, kubectl, and API clients."""

    kubeconfig: Path
    bin_dir: Path
    local: LocalCluster | None  # None when running against an existing cluster

    @property
    def audit_log(self) -> Path | None:
        """The apiserver's ServiceAccount audit log (JSON lines); None on an existing cluster."""
        return self.local.audit_log if self.local is not None else None

    @property
    def has_local_node(self) -> bool:
        """Whether pods on node `tpuserve-local` really run (only on the local cluster)."""
        return self.local is not None

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; with check=True a non-zero exit fails the test with kubectl's stderr."""
        return run_kubectl(self.bin_dir, self.kubeconfig, *args, check=check, input=input, error=AssertionError)

    def api_client(self) -> k8s_client.ApiClient:
        """A new kubernetes ApiClient for this cluster (close it, or use it as a context manager)."""
        return k8s_config.new_client_from_config(config_file=str(self.kubeconfig))

    def set_local_node_env(self, **values: str) -> None:
        """Extra environment for processes the local node starts from now on (e.g. STORAGE_EMULATOR_HOST), the
        way an image's ENV would carry it; pod env still wins."""
        if self.local is None:
            raise RuntimeError("there is no local node on an existing cluster (TPUSERVE_TEST_KUBECONFIG)")
        path = self.local.local_node_env_file
        current = json.loads(path.read_text() or "{}")
        current.update(values)
        path.write_text(json.dumps(current))


@pytest.fixture(scope="session")
def local_cluster_config() -> ClusterConfig:
    """The default: no node pools, and a local node that runs nothing. Override it in a conftest.py."""
    return ClusterConfig()


@pytest.fixture(scope="session")
def kube_cluster(
    tmp_path_factory: pytest.TempPathFactory, local_cluster_config: ClusterConfig
) -> Iterator[KubeCluster]:
    existing = os.environ.get(EXISTING_KUBECONFIG_ENV)
    if existing:
        kubeconfig = Path(existing).expanduser().resolve()
        if not kubeconfig.is_file():
            raise ClusterError(f"{EXISTING_KUBECONFIG_ENV}={existing}: no such file")
        yield KubeCluster(kubeconfig=kubeconfig, bin_dir=tools_bin_dir(), local=None)
        return
    cluster = _start_local_cluster(tmp_path_factory, local_cluster_config)
    try:
        yield KubeCluster(kubeconfig=cluster.kubeconfig, bin_dir=cluster.bin_dir, local=cluster)
    finally:
        cluster.stop()


def _start_local_cluster(
    tmp_path_factory: pytest.TempPathFactory, config: ClusterConfig, attempts: int = 2
) -> LocalCluster:
    """Start the session cluster, once more (fresh ports, fresh data) if the first start fails.

    A failed start errors every cluster test of the session, and on a loaded two-core machine a start has
    been seen to fail once and then succeed; the first failure is still reported, as a warning.
    """
    for attempt in range(1, attempts + 1):
        cluster = LocalCluster(tmp_path_factory.mktemp("kube-cluster"), config=config, tied_to_this_process=True)
        try:
            cluster.start()
            return cluster
        except Exception as error:
            cluster.stop()
            if attempt == attempts:
                raise
            warnings.warn(f"test cluster start {attempt}/{attempts} failed, retrying: {error}", stacklevel=1)
    raise AssertionError("unreachable")


def create_test_namespace(cluster: KubeCluster, name: str) -> None:
    """Create namespace `name` (labelled as a test's) and wait for its default ServiceAccount, so pods can be
    created at once."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {TEST_NAMESPACE_LABEL: "true"}},
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest))
    wait_for(
        lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
        timeout=30,
        description=f"the default ServiceAccount in namespace {name}",
    )


@contextlib.contextmanager
def fresh_namespace(cluster: KubeCluster) -> Iterator[str]:
    """A fresh namespace (t-<uuid>) for the block, deleted afterwards without waiting: the namespace controller
    removes what is left in the background."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    try:
        create_test_namespace(cluster, name)
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture
def namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    """A fresh namespace whose default ServiceAccount exists (fresh_namespace)."""
    with fresh_namespace(kube_cluster) as name:
        yield name
