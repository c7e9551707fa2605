"""The tiny Llama-architecture model the image tests convert and serve: one definition for MaxText's converter
table, MaxText's config overrides, the Meta-format checkpoint the test writes, and `tpuserve convert verify`.

MaxText maxtext-v0.2.3 has no small Llama in its Meta-checkpoint converter table (MODEL_PARAMS_DICT starts at
llama2-7b), so the test adds TINY_NAME to it (tests/images/in_container/convert_scanned.py); its other steps take
model_name=llama2-7b with override_model_config=true and the dimensions below. vocab 32000 so that MaxText's
Llama2 tokenizer (assets/tokenizer.llama2) drives it unchanged.
"""

from __future__ import annotations

from tpuserve import llama

TINY_NAME = "llama2-tiny"  # the entry added to MaxText's converter table
TINY = llama.LlamaArch(
    name="llama2-7b",  # MaxText model_name (its decoder block and defaults), dimensions overridden below
    num_layers=2,
    d_model=256,
    num_heads=4,
    num_kv_heads=4,
    head_dim=64,
    mlp_dim=512,
    vocab_size=32000,
    meta_shards=1,
    maxtext_tokenizer="assets/tokenizer.llama2",
)
# A larger size for the memory measurement (tests/images/measure_conversion.py), still Llama-shaped.
MEDIUM = llama.LlamaArch(
    name="llama2-7b",
    num_layers=8,
    d_model=1024,
    num_heads=8,
    num_kv_heads=8,
    head_dim=128,
    mlp_dim=2816,
    vocab_size=32000,
    meta_shards=1,
    maxtext_tokenizer="assets/tokenizer.llama2",
)


def converter_table_entry(arch: llama.LlamaArch) -> dict[str, int]:
    """MODEL_PARAMS_DICT's fields for `arch` (what llama_or_mistral_ckpt reads)."""
    return {
        "num_layers": arch.num_layers,
        "num_heads": arch.num_heads,
        "num_kv_heads": arch.num_kv_heads,
        "dims_per_head": arch.head_dim,
        "vocab": arch.vocab_size,
    }


def maxtext_overrides(arch: llama.LlamaArch) -> list[str]:
    """MaxText config args that turn model_name=llama2-7b into `arch`."""
    return [
        f"model_name={arch.name}",
        "override_model_config=true",
        f"base_num_decoder_layers={arch.num_layers}",
        f"base_emb_dim={arch.d_model}",
        f"base_num_query_heads={arch.num_heads}",
        f"base_num_kv_heads={arch.num_kv_heads}",
        f"head_dim={arch.head_dim}",
        f"base_mlp_dim={arch.mlp_dim}",
        f"vocab_size={arch.vocab_size}",
    ]


def meta_params(arch: llama.LlamaArch) -> dict[str, object]:
    """params.json as Meta ships it (multiple_of/ffn_dim_multiplier only matter for Meta's own code)."""
    return {
        "dim": arch.d_model,
        "n_layers": arch.num_layers,
        "n_heads": arch.num_heads,
        "n_kv_heads": arch.num_kv_heads,
        "vocab_size": arch.vocab_size,
        "multiple_of": 256,
        "norm_eps": 1e-05,
    }
