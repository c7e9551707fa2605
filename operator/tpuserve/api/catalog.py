"""Schema fragments and CEL rules generated from the TPU and Llama catalogs, so that the API server checks
exactly what `tpuserve.tpu` and `tpuserve.llama` know and nothing is spelled out twice."""

from __future__ import annotations

from typing import Any

from tpuserve import llama, tpu
from tpuserve.api.conventions import CelRule, cel_string_list

DEFAULT_MODEL = "llama2-7b"
TOPOLOGY_PATTERN = r"^[1-9][0-9]*x[1-9][0-9]*(x[1-9][0-9]*)?$"


def model_schema() -> dict[str, Any]:
    return {"enum": list(llama.MODELS)}


def check_model(value: str) -> str:
    llama.arch(value)  # raises with the list of supported models
    return value


def accelerator_schema() -> dict[str, Any]:
    return {"enum": tpu.accepted_accelerator_names()}


def _spellings(generation: tpu.TpuGeneration) -> list[str]:
    return [name for name in tpu.accepted_accelerator_names() if tpu.generation(name) is generation]


def _chips_expression(topology: str) -> str:
    """CEL: the number of chips in a topology string already known to match TOPOLOGY_PATTERN."""
    dims = f"{topology}.split('x')"
    return f"({dims}.size() == 2 ? int({dims}[0]) * int({dims}[1]) : int({dims}[0]) * int({dims}[1]) * int({dims}[2]))"


def topology_rules(where: str) -> list[CelRule]:
    """Rules on a `{accelerator, topology}` object: for each generation, the topology must be one of its
    single-host shapes; a topology with more chips than the generation's largest host gets its own
    multi-host message. Rules are per generation so that each message names the generation and its shapes."""
    rules: list[CelRule] = []
    well_formed = f"self.topology.matches('{TOPOLOGY_PATTERN}')"
    for gen in tpu.GENERATIONS:
        spellings = cel_string_list(_spellings(gen))
        valid = list(gen.single_host_topologies)
        valid_text = ", ".join(valid)
        max_chips = max(m.chips for m in gen.machine_types)
        rules.append(
            CelRule(
                rule=(
                    f"!(self.accelerator in {spellings}) || self.topology in {cel_string_list(valid)} || "
                    f"!{well_formed} || {_chips_expression('self.topology')} > {max_chips}"
                ),
                message=f"{where}.topology is not a {gen.name} slice shape; valid single-host {gen.name} "
                f"topologies: {valid_text}",
                message_expression=(
                    f"'{where}.topology ' + self.topology + ' is not a {gen.name} slice shape; "
                    f"valid single-host {gen.name} topologies: {valid_text}'"
                ),
                field_path=".topology",
            )
        )
        rules.append(
            CelRule(
                rule=(
                    f"!(self.accelerator in {spellings}) || !{well_formed} || "
                    f"{_chips_expression('self.topology')} <= {max_chips}"
                ),
                message=f"{where}.topology spans several {gen.name} hosts: multi-host slices are not supported "
                f"yet; valid single-host {gen.name} topologies: {valid_text}",
                message_expression=(
                    f"'{where}.topology ' + self.topology + ' spans several {gen.name} hosts: multi-host slices "
                    f"are not supported yet; valid single-host {gen.name} topologies: {valid_text}'"
                ),
                field_path=".topology",
            )
        )
    return rules


PARALLELISM_MESSAGE = (
    "spec.engine: the ICI parallelism values (iciFsdpParallelism * iciAutoregressiveParallelism * "
    "iciTensorParallelism) must multiply to the chips of spec.tpu.topology, or divide them when one of them is -1"
)


def parallelism_mismatch(axes: tuple[int, ...], chips: int) -> str | None:
    """Why MaxText would refuse this mesh on `chips` devices (None if it fits): the product of the axes must
    equal the chip count, or, with one axis -1 (the remaining chips), divide it."""
    if 0 in axes or axes.count(-1) > 1:
        return None  # refused by the engine's own rules, with their own messages
    product = 1
    for axis in axes:
        product *= abs(axis)
    fits = chips % product == 0 if -1 in axes else product == chips
    if fits:
        return None
    return f"{PARALLELISM_MESSAGE}: they give {product}, the topology has {chips} chips"


def parallelism_fits_rule(topology: str, engine: str, fields: tuple[str, ...]) -> CelRule:
    """CEL twin of parallelism_mismatch, on the spec holding both `tpu` and `engine`."""
    axes = [f"{engine}.{f}" for f in fields]
    product = " * ".join(axes)  # negative exactly when one axis is -1
    chips = _chips_expression(topology)
    skip = (
        f"!{topology}.matches('{TOPOLOGY_PATTERN}') || "
        + " || ".join(f"{a} == 0" for a in axes)
        + f" || [{', '.join(axes)}].filter(p, p == -1).size() > 1"
    )
    return CelRule(
        rule=f"{skip} || ({product} < 0 ? {chips} % (-({product})) == 0 : {product} == {chips})",
        message=PARALLELISM_MESSAGE,
        field_path=".engine",
    )
