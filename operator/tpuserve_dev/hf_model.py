"""Tiny Hugging Face model directories for the mirror tests: real safetensors files (the 8-byte header length,
the JSON header, then the tensor data, as huggingface/safetensors writes them) with random bfloat16 bytes, a
config.json and a tokenizer.json. The architecture is a tiny Llama 3 shape (GQA, like tests/vllm/make_model.py's
model), given to the mirror the way the conversion tests give theirs: an `--arch-json` override, so no test-only
model enters the catalog users see.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from pathlib import Path
from typing import Any

from tpuserve import llama
from tpuserve.convert.safetensors_header import DTYPE_BYTES, SAFETENSORS_DTYPE

# The config.json of tests/vllm/make_model.py's model (vocab 512, hidden 256, 2 layers, 4 heads of 64, 2 KV heads,
# intermediate 512, 512 positions), with Llama 3's RoPE base.
TINY3_CONFIG: dict[str, Any] = {
    "vocab_size": 512,
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "max_position_embeddings": 512,
    "rope_theta": 500000.0,
}


def tiny3() -> llama.LlamaArch:
    """That model named as a catalog model, because the mirror verifies against a catalog name."""
    return arch_from_config(TINY3_CONFIG, "llama3.1-8b")


def arch_json(arch: llama.LlamaArch, path: Path) -> Path:
    path.write_text(json.dumps(dataclasses.asdict(arch)))
    return path


def arch_from_config(config: dict[str, Any], name: str) -> llama.LlamaArch:
    """A catalog-shaped architecture derived from a model's config.json (tests only: the real vLLM model)."""
    rope = config.get("rope_parameters") or {}
    return dataclasses.replace(
        llama.arch(name),
        num_layers=config["num_hidden_layers"],
        d_model=config["hidden_size"],
        num_heads=config["num_attention_heads"],
        num_kv_heads=config["num_key_value_heads"],
        head_dim=config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"],
        mlp_dim=config["intermediate_size"],
        vocab_size=config["vocab_size"],
        tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        hf_dtype=config.get("torch_dtype") or config.get("dtype") or "bfloat16",
        max_position_embeddings=config["max_position_embeddings"],
        rope_theta=float(config.get("rope_theta") or rope.get("rope_theta") or 10000.0),
    )


def safetensors_bytes(shapes: dict[str, tuple[int, ...]], dtype: str = "bfloat16") -> bytes:
    """A safetensors file with these tensors (random data)."""
    st_dtype = SAFETENSORS_DTYPE[dtype]
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        size = DTYPE_BYTES[st_dtype]
        for d in shape:
            size *= d
        header[name] = {"dtype": st_dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads the header to 8 bytes
    return struct.pack("<Q", len(raw)) + raw + os.urandom(offset)


def hf_model_files(
    arch: llama.LlamaArch, *, shards: int = 2, shapes: dict[str, tuple[int, ...]] | None = None
) -> dict[str, bytes]:
    """A Hugging Face model directory for `arch` as name -> bytes: config.json, tokenizer.json, generation config,
    the weights in `shards` files with an index (one model.safetensors when shards == 1), plus what a real repo
    also has and a mirror leaves out (.gitattributes, Meta's originals under original/)."""
    tensors = dict(shapes if shapes is not None else arch.hf_tensor_shapes())
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "torch_dtype": arch.hf_dtype,
        **arch.hf_config(),
    }
    files: dict[str, bytes] = {
        "config.json": json.dumps(config, indent=2).encode(),
        "generation_config.json": b'{"bos_token_id": 0, "eos_token_id": 1}',
        "tokenizer.json": json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {}}}).encode(),
        "README.md": b"# tiny llama\n",
        ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
        "original/consolidated.00.pth": os.urandom(64),
    }
    names = list(tensors)
    if shards == 1:
        files["model.safetensors"] = safetensors_bytes(tensors, arch.hf_dtype)
        return files
    weight_map: dict[str, str] = {}
    per_shard = -(-len(names) // shards)
    for i in range(shards):
        shard = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[i * per_shard : (i + 1) * per_shard]}
        files[shard] = safetensors_bytes(part, arch.hf_dtype)
        weight_map |= dict.fromkeys(part, shard)
    files["model.safetensors.index.json"] = json.dumps({"metadata": {}, "weight_map": weight_map}).encode()
    return files


def write_dir(files: dict[str, bytes], directory: Path) -> Path:
    for name, data in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return directory
