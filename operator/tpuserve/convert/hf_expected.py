"""What a mirrored Hugging Face directory must hold for a catalog model: tensor names and shapes, their dtype, and
the architecture keys of config.json. Everything comes from the one catalog (tpuserve.llama); tests pass a tiny
architecture the same way the conversion tests do (`--arch-json`), never a catalog entry users would see."""

from __future__ import annotations

from typing import Any

from tpuserve import llama


def tensor_shapes(arch: llama.LlamaArch) -> dict[str, tuple[int, ...]]:
    return arch.hf_tensor_shapes()


def dtype(arch: llama.LlamaArch) -> str:
    """The dtype the published safetensors hold (config.json torch_dtype), as the catalog names it."""
    return arch.hf_dtype


def catalog_facts(arch: llama.LlamaArch) -> dict[str, Any]:
    """What a mirror manifest records about the architecture (and compares on reuse): the model, config.json's
    architecture keys and the dtype; not the whole catalog entry, so that unrelated catalog fields (runtimes,
    repo names) can change without re-mirroring every model."""
    return {"name": arch.name, "dtype": arch.hf_dtype, **arch.hf_config()}


def _config_value(config: dict[str, Any], key: str) -> Any:
    if key in config:
        return config[key]
    if key == "rope_theta":  # transformers >= 5 writes it inside rope_parameters
        nested = config.get("rope_parameters") or {}
        return nested.get("rope_theta") if isinstance(nested, dict) else None
    if key == "tie_word_embeddings":
        return False  # transformers' default when config.json omits it
    return None


def config_mismatches(config: Any, arch: llama.LlamaArch) -> list[str]:
    """config.json keys that disagree with the catalog (numbers compared as numbers)."""
    if not isinstance(config, dict):
        return ["config.json is not a JSON object"]
    problems: list[str] = []
    for key, want in arch.hf_config().items():
        found = _config_value(config, key)
        same = found == want if not isinstance(want, float) else isinstance(found, int | float) and found == want
        if found is None:
            problems.append(f"config.json has no {key} (expected {want!r})")
        elif not same:
            problems.append(f"config.json {key} is {found!r}, {arch.name} has {want!r}")
    return problems
