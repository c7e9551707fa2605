"""Simulated GKE node pools: the Node objects of a `NodePool` (which pools: the cluster's `ClusterConfig`;
tpuserve_dev.cluster derives the project's from the TPU catalog).

Nodes carry the labels, taint and capacity GKE puts on them; allocatable follows GKE's documented reservation
formula (cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes), so a pod that would not fit on a
real node does not fit here either. kwok keeps these nodes Ready (they carry its node annotation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from localcluster import sim
from tpuserve import tpu  # GKE's label, taint and resource names: their one source

CLUSTER_NAME = "tpuserve"
REGION = "us-central1"
ZONE = "us-central1-a"
NODES_PER_POOL = 2  # two hosts per pool, so a rolling update or a second replica can be scheduled
MAX_PODS_PER_NODE = 110  # GKE Standard default
GIB = 2**30
MIB = 2**20


@dataclass(frozen=True)
class NodePool:
    name: str
    machine_type: str
    vcpus: int
    memory_gib: int
    boot_disk_gib: int
    tpu_accelerator: str | None = None  # GKE label value; None for a CPU pool
    tpu_topology: str | None = None
    tpu_chips: int = 0

    @property
    def machine_family(self) -> str:
        return self.machine_type.split("-", 1)[0]

    def node_names(self) -> list[str]:
        return [f"gke-{CLUSTER_NAME}-{self.name}-{index}" for index in range(NODES_PER_POOL)]


def gke_reserved_cpu_millicores(vcpus: int) -> int:
    """CPU GKE reserves for the system: 6% of the first core, 1% of the next, 0.5% of the next 2, 0.25% above 4."""
    shares = [(1, 0.06), (1, 0.01), (2, 0.005), (max(vcpus - 4, 0), 0.0025)]
    reserved = 0.0
    remaining = vcpus
    for cores, share in shares:
        used = min(cores, remaining)
        reserved += used * 1000 * share
        remaining -= used
    return round(reserved)


def gke_reserved_memory_bytes(memory_gib: int) -> int:
    """Memory GKE reserves: 25% of the first 4 GiB, 20% of the next 4, 10% of the next 8, 6% of the next 112,
    2% above 128 GiB, plus the 100 MiB hard-eviction threshold."""
    tiers = [(4, 0.25), (4, 0.20), (8, 0.10), (112, 0.06), (float("inf"), 0.02)]
    reserved = 0.0
    remaining = float(memory_gib)
    for size, share in tiers:
        used = min(size, remaining)
        reserved += used * GIB * share
        remaining -= used
    return round(reserved) + 100 * MIB


def node_manifest(pool: NodePool, node_name: str) -> dict[str, Any]:
    """The Node object as GKE would register it (status included: kwok keeps capacity as given)."""
    labels = {
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "kubernetes.io/hostname": node_name,
        tpu.NODEPOOL_LABEL: pool.name,
        tpu.INSTANCE_TYPE_LABEL: pool.machine_type,
        "cloud.google.com/machine-family": pool.machine_family,
        "cloud.google.com/gke-os-distribution": "cos",
        "topology.kubernetes.io/region": REGION,
        "topology.kubernetes.io/zone": ZONE,
    }
    taints: list[dict[str, str]] = []
    capacity = {
        "cpu": str(pool.vcpus),
        "memory": f"{pool.memory_gib * GIB // 1024}Ki",
        "pods": str(MAX_PODS_PER_NODE),
        "ephemeral-storage": f"{pool.boot_disk_gib}Gi",
    }
    allocatable = {
        "cpu": f"{pool.vcpus * 1000 - gke_reserved_cpu_millicores(pool.vcpus)}m",
        "memory": f"{(pool.memory_gib * GIB - gke_reserved_memory_bytes(pool.memory_gib)) // 1024}Ki",
        "pods": str(MAX_PODS_PER_NODE),
        # Approximation: GKE keeps back roughly a tenth of the boot disk (eviction threshold and system).
        "ephemeral-storage": f"{pool.boot_disk_gib * 9 // 10}Gi",
    }
    if pool.tpu_accelerator is not None:
        labels[tpu.ACCELERATOR_LABEL] = pool.tpu_accelerator
        labels[tpu.TOPOLOGY_LABEL] = str(pool.tpu_topology)
        labels[tpu.ACCELERATOR_COUNT_LABEL] = str(pool.tpu_chips)
        taints.append({"key": tpu.TPU_TAINT_KEY, "value": tpu.TPU_TAINT_VALUE, "effect": tpu.TPU_TAINT_EFFECT})
        capacity[tpu.TPU_RESOURCE] = str(pool.tpu_chips)
        allocatable[tpu.TPU_RESOURCE] = str(pool.tpu_chips)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node_name,
            "labels": labels,
            "annotations": {sim.KWOK_NODE_ANNOTATION: sim.KWOK_NODE_ANNOTATION_VALUE},
        },
        "spec": {"taints": taints} if taints else {},
        "status": {"capacity": capacity, "allocatable": allocatable},
    }


def node_manifests(pools: Sequence[NodePool]) -> list[dict[str, Any]]:
    return [node_manifest(pool, name) for pool in pools for name in pool.node_names()]
