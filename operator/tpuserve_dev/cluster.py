"""The project's local cluster: GKE's TPU node pools from the TPU catalog (tpuserve.tpu) rather than written by
hand, a CPU pool for conversion Jobs, and a local node that runs tpuserve's workload images (bench, converter).

    python -m tpuserve_dev.cluster up|down|status   (make cluster-up / cluster-down; state in ./.cluster or
                                                     $TPUSERVE_CLUSTER_DIR)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from localcluster import harness
from localcluster.nodepools import NodePool
from tpuserve import tpu


@dataclass(frozen=True)
class CpuMachine:
    name: str
    vcpus: int
    memory_gib: int


# n2-highmem-16: 16 vCPU, 128 GiB: room for one 7B conversion Job (80 GiB) per node.
CPU_POOL_MACHINE = CpuMachine("n2-highmem-16", 16, 128)
CPU_POOL_NAME = "cpu-highmem"
# Boot disks (GKE default 100 GB; the CPU pool gets 200 GB because conversion stages ~30 GiB of scratch).
TPU_BOOT_DISK_GIB = 100
CPU_BOOT_DISK_GIB = 200


def tpu_pool_name(generation: tpu.TpuGeneration, machine: tpu.MachineType) -> str:
    return f"tpu-{generation.name}-{machine.topology}"


def node_pools() -> tuple[NodePool, ...]:
    """One pool per single-host TPU machine type in the catalog, then the CPU pool."""
    tpu_pools = [
        NodePool(
            name=tpu_pool_name(generation, machine),
            machine_type=machine.name,
            vcpus=machine.vcpus,
            memory_gib=machine.memory_gib,
            boot_disk_gib=TPU_BOOT_DISK_GIB,
            tpu_accelerator=generation.accelerator,
            tpu_topology=machine.topology,
            tpu_chips=machine.chips,
        )
        for generation in tpu.GENERATIONS
        for machine in generation.machine_types
    ]
    cpu_pool = NodePool(
        name=CPU_POOL_NAME,
        machine_type=CPU_POOL_MACHINE.name,
        vcpus=CPU_POOL_MACHINE.vcpus,
        memory_gib=CPU_POOL_MACHINE.memory_gib,
        boot_disk_gib=CPU_BOOT_DISK_GIB,
    )
    return (*tpu_pools, cpu_pool)


def find_pool(accelerator: str, topology: str) -> NodePool:
    """The simulated pool for a catalog slice, e.g. find_pool("v5e", "2x4")."""
    tpu_slice = tpu.resolve(accelerator, topology)
    for pool in node_pools():
        if pool.tpu_accelerator == tpu_slice.generation.accelerator and pool.tpu_topology == tpu_slice.topology:
            return pool
    raise LookupError(f"no simulated node pool for {accelerator} {topology}")


# The local node runs the bench and converter images as `tpuserve` processes from this virtualenv.
CONFIG = harness.ClusterConfig(node_pools=node_pools(), runnable_image="tpuserve.images:is_tpuserve_workload_image")


def main() -> int:
    return harness.main(CONFIG, prog="python -m tpuserve_dev.cluster")


if __name__ == "__main__":
    sys.exit(main())
