"""The simulated node pools come from the TPU catalog and look like GKE's (no cluster needed)."""

from __future__ import annotations

from typing import Any

import pytest

from localcluster import nodepools, sim
from tpuserve import tpu
from tpuserve_dev import cluster as cluster_config


def nodes_by_pool() -> dict[str, list[dict[str, Any]]]:
    pools: dict[str, list[dict[str, Any]]] = {}
    for node in cluster_config.CONFIG.node_manifests():
        labels = node["metadata"]["labels"]
        pools.setdefault(labels[tpu.NODEPOOL_LABEL], []).append(node)
    return pools


@pytest.mark.parametrize(
    ("accelerator", "topology", "machine_type", "chips"),
    [
        ("tpu-v5-lite-podslice", "2x4", "ct5lp-hightpu-8t", 8),
        ("tpu-v5-lite-podslice", "2x2", "ct5lp-hightpu-4t", 4),
        ("tpu-v4-podslice", "2x2x1", "ct4p-hightpu-4t", 4),
    ],
)
def test_required_tpu_pools_are_labelled_tainted_and_sized_like_gke(
    accelerator: str, topology: str, machine_type: str, chips: int
) -> None:
    pool = cluster_config.find_pool(accelerator, topology)
    (node, *_) = [n for n in cluster_config.CONFIG.node_manifests() if n["metadata"]["name"] in pool.node_names()]

    labels = node["metadata"]["labels"]
    assert labels[tpu.ACCELERATOR_LABEL] == accelerator
    assert labels[tpu.TOPOLOGY_LABEL] == topology
    assert labels[tpu.ACCELERATOR_COUNT_LABEL] == str(chips)
    assert labels[tpu.INSTANCE_TYPE_LABEL] == machine_type
    assert labels[tpu.NODEPOOL_LABEL] == pool.name
    assert node["spec"]["taints"] == [{"key": "google.com/tpu", "value": "present", "effect": "NoSchedule"}]
    assert node["status"]["capacity"][tpu.TPU_RESOURCE] == str(chips)
    assert node["status"]["allocatable"][tpu.TPU_RESOURCE] == str(chips)
    assert node["metadata"]["annotations"] == {sim.KWOK_NODE_ANNOTATION: sim.KWOK_NODE_ANNOTATION_VALUE}


def test_every_single_host_machine_type_in_the_catalog_has_a_pool() -> None:
    machine_types = {m.name for g in tpu.GENERATIONS for m in g.machine_types}

    pools = nodes_by_pool()
    tpu_machine_types = {
        nodes[0]["metadata"]["labels"][tpu.INSTANCE_TYPE_LABEL]
        for nodes in pools.values()
        if tpu.ACCELERATOR_LABEL in nodes[0]["metadata"]["labels"]
    }
    assert tpu_machine_types == machine_types
    assert all(len(nodes) == nodepools.NODES_PER_POOL for nodes in pools.values())


def test_cpu_pool_fits_a_7b_conversion_job_and_has_no_tpu() -> None:
    (node, *_) = nodes_by_pool()[cluster_config.CPU_POOL_NAME]
    labels = node["metadata"]["labels"]
    status = node["status"]

    assert labels[tpu.INSTANCE_TYPE_LABEL] == "n2-highmem-16"
    assert tpu.ACCELERATOR_LABEL not in labels
    assert "taints" not in node["spec"]
    assert status["capacity"] == {
        "cpu": "16",
        "memory": f"{128 * 2**20}Ki",
        "pods": "110",
        "ephemeral-storage": "200Gi",
    }
    allocatable_memory_gib = int(status["allocatable"]["memory"].removesuffix("Ki")) / 2**20
    assert 80 < allocatable_memory_gib < 160  # an 80 GiB (7B) conversion request fits, not two of them


@pytest.mark.parametrize(
    ("vcpus", "millicores"),
    [(1, 60), (2, 70), (4, 80), (16, 110), (224, 630)],
)
def test_gke_cpu_reservation(vcpus: int, millicores: int) -> None:
    assert nodepools.gke_reserved_cpu_millicores(vcpus) == millicores


@pytest.mark.parametrize(
    ("memory_gib", "reserved_gib"),
    # 25% of 4 + 20% of 4 + 10% of 8 + 6% of 112 (+ 2% above 128), plus 100 MiB eviction threshold
    [(4, 1.0), (16, 2.6), (128, 9.32), (384, 14.44)],
)
def test_gke_memory_reservation(memory_gib: int, reserved_gib: float) -> None:
    expected = reserved_gib * 2**30 + 100 * 2**20
    assert nodepools.gke_reserved_memory_bytes(memory_gib) == pytest.approx(expected, abs=1)


def test_unknown_slice_has_no_pool() -> None:
    with pytest.raises(tpu.CatalogError, match="multi-host"):
        cluster_config.find_pool("v5e", "4x4")
