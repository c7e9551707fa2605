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


def chips_expression(topology: str) -> str:
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
                    f"!{well_formed} || {chips_expression('self.topology')} > {max_chips}"
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
                    f"{chips_expression('self.topology')} <= {max_chips}"
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
    chips = chips_expression(topology)
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


def _cel_map(values: dict[str, int] | dict[str, str]) -> str:
    return "{" + ", ".join(f"'{k}': {v!r}" if isinstance(v, str) else f"'{k}': {v}" for k, v in values.items()) + "}"


def hbm_fit_rule(*, model: str, accelerator: str, topology: str, tokens: str, utilization: str, when: str) -> CelRule:
    """CEL twin of llama.hbm_shortfall for one sequence of `tokens`: the model's bf16 weights plus the KV cache of
    one full-length sequence must fit in the slice's HBM at `utilization` (vLLM refuses to start otherwise; it
    pages the KV cache of the other sequences, so more of them only lowers concurrency). Byte counts come from
    the catalogs, one map entry per model and per accelerator spelling. The message quotes the catalog's figures
    from string maps: the API server's cost estimate refuses string() of a number in a messageExpression."""
    models = llama.MODELS.items()
    weights = _cel_map({name: m.weight_bytes("bfloat16") for name, m in models})
    kv = _cel_map({name: m.kv_bytes_per_token("bfloat16") for name, m in models})
    names = tpu.accepted_accelerator_names()
    hbm = _cel_map({name: int(tpu.generation(name).chip.hbm_gib * 2**30) for name in names})
    weights_gib = _cel_map({name: f"{m.weight_bytes('bfloat16') / 2**30:.1f}" for name, m in models})
    kv_kib = _cel_map({name: str(m.kv_bytes_per_token("bfloat16") // 1024) for name, m in models})
    slice_gib = _cel_map(
        {
            f"{name} {shape}": f"{tpu.resolve(name, shape).hbm_bytes / 2**30:.1f}"
            for name in names
            for shape in tpu.generation(name).single_host_topologies
        }
    )
    needed = f"({weights}[{model}] + {tokens} * {kv}[{model}])"
    offered = f"double({hbm}[{accelerator}] * {chips_expression(topology)}) * {utilization}"
    return CelRule(
        rule=f"!{when} || !{topology}.matches('{TOPOLOGY_PATTERN}') || double{needed} <= {offered}",
        message="spec: the model's bf16 weights plus the KV cache of one spec.vllm.maxModelLen sequence do not fit "
        "in the HBM of spec.tpu at spec.vllm.hbmUtilization: use a larger slice or a shorter maxModelLen",
        message_expression=(
            f"'spec: ' + {model} + ' needs ' + {weights_gib}[{model}] + ' GiB of bf16 weights plus ' + "
            f"{kv_kib}[{model}] + ' KiB of KV cache per token of spec.vllm.maxModelLen; ' + {accelerator} + ' ' + "
            f"{topology} + ' offers ' + {slice_gib}[{accelerator} + ' ' + {topology}] + ' GiB of HBM times "
            "spec.vllm.hbmUtilization: use a larger slice or a shorter spec.vllm.maxModelLen'"
        ),
    )


def equals_defaults_rule(field: str, defaults: dict[str, Any], message: str, when: str) -> CelRule:
    """`self.<field>` holds exactly `defaults` (the schema default the API server fills in) whenever `when`:
    how a defaulted section that only applies to another runtime is refused once someone changes it."""
    checks: list[str] = []
    for key, value in defaults.items():
        path = f"self.{field}.{key}"
        if value is None:
            checks.append(f"!has({path})")
        elif isinstance(value, dict | list):
            checks.append(f"(!has({path}) || {path}.size() == 0)")
        elif isinstance(value, bool):
            checks.append(f"{path} == {str(value).lower()}")
        elif isinstance(value, float):
            checks.append(f"{path} == {value!r}")
        elif isinstance(value, int):
            checks.append(f"{path} == {value}")
        else:
            checks.append(f"{path} == '{value}'")
    return CelRule(
        rule=f"!({when}) || !has(self.{field}) || (" + " && ".join(checks) + ")",
        message=message,
        field_path=f".{field}",
        reason="FieldValueForbidden",
    )
