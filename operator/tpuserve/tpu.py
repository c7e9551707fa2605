"""The one TPU catalog: every TPU fact the project uses (validation, scheduling, cost, roofline).

Facts come from Cloud TPU / GKE documentation (see ../shared/facts/gke-tpu.md at the time of writing).
Node vCPU and memory figures are GKE machine-type sizes; they only size the simulated test nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Kubernetes label, taint and resource names GKE uses on TPU node pools.
ACCELERATOR_LABEL = "cloud.google.com/gke-tpu-accelerator"
TOPOLOGY_LABEL = "cloud.google.com/gke-tpu-topology"
ACCELERATOR_COUNT_LABEL = "cloud.google.com/gke-accelerator-count"
NODEPOOL_LABEL = "cloud.google.com/gke-nodepool"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
TPU_RESOURCE = "google.com/tpu"
TPU_TAINT_KEY = "google.com/tpu"
TPU_TAINT_VALUE = "present"
TPU_TAINT_EFFECT = "NoSchedule"


class CatalogError(ValueError):
    """A TPU request the catalog cannot satisfy; the message says what would."""


def chips_in_topology(topology: str) -> int:
    try:
        return math.prod(int(d) for d in topology.lower().split("x"))
    except ValueError:
        raise CatalogError(f"topology {topology!r} is not of the form AxB or AxBxC") from None


@dataclass(frozen=True)
class MachineType:
    """A GKE TPU VM shape: one node of a single-host slice."""

    name: str
    topology: str  # the single-host topology a node pool of this machine type provides
    vcpus: int
    memory_gib: int

    @property
    def chips(self) -> int:
        return chips_in_topology(self.topology)


def single_hosts(series: str, shapes: dict[str, tuple[int, int]]) -> tuple[MachineType, ...]:
    """A generation's single-host machine types, by topology: (vCPUs, memory GiB). GKE names each one after the
    series and its chip count (ct5lp-hightpu-4t: 4 chips)."""
    return tuple(
        MachineType(f"{series}-{chips_in_topology(topology)}t", topology, vcpus, memory_gib)
        for topology, (vcpus, memory_gib) in shapes.items()
    )


GB = 1e9 / 2**30  # GiB per GB: Google gives HBM in GB for v5e and later (in GiB for v4)


@dataclass(frozen=True)
class Chip:
    """One chip of a generation: its HBM, its peak compute and HBM bandwidth, its on-demand list price."""

    hbm_gib: float
    peak_bf16_tflops: float
    hbm_gbps: float  # GB/s (1e9 bytes)
    on_demand_usd_per_hour: float


@dataclass(frozen=True)
class TpuGeneration:
    name: str  # friendly name: v4, v5e, v5p, v6e
    accelerator: str  # value of cloud.google.com/gke-tpu-accelerator
    machine_types: tuple[MachineType, ...]
    multi_host_topologies: tuple[str, ...]  # examples, for error messages only
    chip: Chip
    aliases: tuple[str, ...] = field(default=())
    legacy_accelerators: tuple[str, ...] = field(default=())  # older accelerator label values of the generation

    @property
    def single_host_topologies(self) -> tuple[str, ...]:
        return tuple(m.topology for m in self.machine_types)

    def machine_for_topology(self, topology: str) -> MachineType:
        for machine in self.machine_types:
            if machine.topology == topology:
                return machine
        raise TopologyError(self, topology)

    @property
    def all_accelerator_labels(self) -> tuple[str, ...]:
        return (self.accelerator, *self.legacy_accelerators)


class TopologyError(CatalogError):
    def __init__(self, generation: TpuGeneration, topology: str) -> None:
        valid = ", ".join(generation.single_host_topologies)
        if topology in generation.multi_host_topologies or chips_in_topology(topology) > max(
            m.chips for m in generation.machine_types
        ):
            detail = f"topology {topology!r} spans several hosts (multi-host slices are not supported yet)"
        else:
            detail = f"topology {topology!r} is not a {generation.name} slice shape"
        super().__init__(f"{detail}; valid single-host {generation.name} topologies: {valid}")


GENERATIONS: tuple[TpuGeneration, ...] = (
    TpuGeneration(
        name="v4",
        accelerator="tpu-v4-podslice",
        aliases=("tpu-v4", "v4-podslice"),
        machine_types=single_hosts("ct4p-hightpu", {"2x2x1": (240, 407)}),
        multi_host_topologies=("2x2x2", "2x2x4", "2x4x4", "4x4x4"),
        chip=Chip(hbm_gib=32, peak_bf16_tflops=275, hbm_gbps=1200, on_demand_usd_per_hour=3.22),
    ),
    TpuGeneration(
        name="v5e",
        accelerator="tpu-v5-lite-podslice",
        legacy_accelerators=("tpu-v5-lite-device",),
        aliases=("v5litepod", "v5lite", "tpu-v5e"),
        machine_types=single_hosts("ct5lp-hightpu", {"1x1": (24, 48), "2x2": (112, 192), "2x4": (224, 384)}),
        multi_host_topologies=("4x4", "4x8", "8x8", "8x16", "16x16"),
        chip=Chip(hbm_gib=16 * GB, peak_bf16_tflops=197, hbm_gbps=819, on_demand_usd_per_hour=1.20),
    ),
    TpuGeneration(
        name="v5p",
        accelerator="tpu-v5p-slice",
        aliases=("tpu-v5p",),
        machine_types=single_hosts("ct5p-hightpu", {"2x2x1": (208, 448)}),
        multi_host_topologies=("2x2x2", "2x2x4", "2x4x4", "4x4x4"),
        chip=Chip(hbm_gib=95 * GB, peak_bf16_tflops=459, hbm_gbps=2765, on_demand_usd_per_hour=4.20),
    ),
    TpuGeneration(
        name="v6e",
        accelerator="tpu-v6e-slice",
        aliases=("trillium", "tpu-v6e"),
        machine_types=single_hosts("ct6e-standard", {"1x1": (44, 176), "2x2": (180, 720), "2x4": (180, 1440)}),
        multi_host_topologies=("4x4", "4x8", "8x8", "8x16", "16x16"),
        chip=Chip(hbm_gib=32 * GB, peak_bf16_tflops=918, hbm_gbps=1638, on_demand_usd_per_hour=2.70),
    ),
)


def _index() -> dict[str, TpuGeneration]:
    index: dict[str, TpuGeneration] = {}
    for gen in GENERATIONS:
        for key in (gen.name, *gen.all_accelerator_labels, *gen.aliases):
            index[key.lower()] = gen
    return index


_BY_NAME = _index()


def accepted_accelerator_names() -> list[str]:
    """Every spelling `tpu.accelerator` accepts (friendly names, GKE label values, aliases)."""
    return sorted(_BY_NAME)


def generation(accelerator: str) -> TpuGeneration:
    """Resolve a friendly name (`v5e`) or a GKE label value (`tpu-v5-lite-podslice`)."""
    try:
        return _BY_NAME[accelerator.strip().lower()]
    except KeyError:
        names = ", ".join(g.name for g in GENERATIONS)
        raise CatalogError(
            f"unknown TPU accelerator {accelerator!r}; use one of {names} or a GKE label value "
            f"({', '.join(g.accelerator for g in GENERATIONS)})"
        ) from None


@dataclass(frozen=True)
class TpuSlice:
    """A resolved single-host TPU request: what the scheduler, cost and roofline maths need."""

    generation: TpuGeneration
    accelerator_label: str  # the exact node-label value to select on
    topology: str
    machine: MachineType

    @property
    def chips(self) -> int:
        return self.machine.chips

    def node_selector(self) -> dict[str, str]:
        return {ACCELERATOR_LABEL: self.accelerator_label, TOPOLOGY_LABEL: self.topology}

    def usd_per_hour(self, usd_per_chip_hour: float | None = None) -> float:
        price = self.generation.chip.on_demand_usd_per_hour if usd_per_chip_hour is None else usd_per_chip_hour
        return price * self.chips

    @property
    def hbm_bytes(self) -> float:
        return self.generation.chip.hbm_gib * 2**30 * self.chips

    @property
    def hbm_bytes_per_second(self) -> float:
        return self.generation.chip.hbm_gbps * 1e9 * self.chips


def resolve(accelerator: str, topology: str) -> TpuSlice:
    """Validate an (accelerator, topology) pair against the catalog; single-host slices only."""
    gen = generation(accelerator)
    topology = topology.strip().lower()
    machine = gen.machine_for_topology(topology)
    label = accelerator.strip().lower()
    return TpuSlice(gen, label if label in gen.all_accelerator_labels else gen.accelerator, topology, machine)


def cost_per_million_tokens(tpu: TpuSlice, tokens_per_second: float, usd_per_chip_hour: float | None = None) -> float:
    """Dollars per million tokens produced at the given rate on this slice (on-demand price by default)."""
    if tokens_per_second <= 0:
        raise ValueError("tokens_per_second must be positive")
    return tpu.usd_per_hour(usd_per_chip_hour) / 3600.0 / tokens_per_second * 1e6


def decode_roofline_tokens_per_second(
    tpu: TpuSlice, weight_bytes: float, kv_bytes_per_token: float, batch: int, context_tokens: float
) -> float:
    """Memory-bound ceiling for batched decode: every step streams the weights plus every live KV cache.

    step = (weights + batch * context * kv_per_token) / (chips * HBM bandwidth); tokens/s = batch / step.
    The batch is capped at what fits in HBM beside the weights.
    """
    if batch < 1:
        raise ValueError("batch must be >= 1")
    kv_per_sequence = kv_bytes_per_token * max(context_tokens, 1.0)
    fits = max(int((tpu.hbm_bytes - weight_bytes) // kv_per_sequence), 0) if kv_per_sequence > 0 else batch
    batch = min(batch, fits) if fits >= 1 else 1
    step_seconds = (weight_bytes + batch * kv_per_sequence) / tpu.hbm_bytes_per_second
    return batch / step_seconds
