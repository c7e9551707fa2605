"""Shared pytest plugins: the local Kubernetes test cluster, the GCS emulator and JetStream and vLLM servers."""

import pytest

from localcluster.harness import ClusterConfig
from tpuserve_dev import cluster

pytest_plugins = [
    "localcluster.fixtures",
    "tpuserve_dev.gcs_emulator",
    "tests.jetstream.fixtures",
    "tests.vllm.fixtures",
]


@pytest.fixture(scope="session")
def local_cluster_config() -> ClusterConfig:
    """The project's cluster: GKE's TPU node pools from the catalog, the local node running tpuserve's images."""
    return cluster.CONFIG
