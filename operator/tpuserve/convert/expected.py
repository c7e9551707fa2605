"""The parameter tree an architecture implies, as MaxText's Llama conversion writes it (read for facts from
MaxText maxtext-v0.2.3: checkpoint_conversion/standalone_scripts/llama_or_mistral_ckpt.py and
utils/generate_param_only_checkpoint.py).

D = d_model, L = layers, H = query heads, K = kv heads, h = head_dim, F = mlp_dim, V = vocab.
Scanned (layers stacked on axis 1, MaxText's param_scan_axis):
  token_embedder.embedding [V, D]; decoder.decoder_norm.scale [D]; decoder.logits_dense.kernel [D, V];
  decoder.layers.self_attention.{query [D, L, H, h], key/value [D, L, K, h], out [H, L, h, D]}.kernel;
  decoder.layers.{pre,post}_self_attention_layer_norm.scale [D, L];
  decoder.layers.mlp.{wi_0, wi_1 [D, L, F], wo [F, L, D]}.kernel.
Unscanned: the same with axis 1 removed, one subtree `decoder.layers_{i}` per layer.
Both are stored in bfloat16 (the converter casts to bfloat16; the param-only step casts to bfloat16 again).
In the Orbax tree they sit under `params.params.` (a flax TrainState whose params are {"params": ...}).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tpuserve import llama

PARAMS_ROOT = "params.params."
STORED_DTYPE = "bfloat16"


class Layout(StrEnum):
    SCANNED = "scanned"
    UNSCANNED = "unscanned"


@dataclass(frozen=True)
class ParamSpec:
    shape: tuple[int, ...]
    dtype: str = STORED_DTYPE


def _layer_params(a: llama.LlamaArch) -> dict[str, tuple[int, ...]]:
    """Per-layer parameter shapes, without the layer axis."""
    d, hq, hk, hd, f = a.d_model, a.num_heads, a.num_kv_heads, a.head_dim, a.mlp_dim
    return {
        "self_attention.query.kernel": (d, hq, hd),
        "self_attention.key.kernel": (d, hk, hd),
        "self_attention.value.kernel": (d, hk, hd),
        "self_attention.out.kernel": (hq, hd, d),
        "pre_self_attention_layer_norm.scale": (d,),
        "post_self_attention_layer_norm.scale": (d,),
        "mlp.wi_0.kernel": (d, f),
        "mlp.wi_1.kernel": (d, f),
        "mlp.wo.kernel": (f, d),
    }


def expected_params(a: llama.LlamaArch, layout: Layout, dtype: str = STORED_DTYPE) -> dict[str, ParamSpec]:
    """Parameter name (without PARAMS_ROOT) -> shape and dtype."""
    out = {
        "token_embedder.embedding": ParamSpec((a.vocab_size, a.d_model), dtype),
        "decoder.decoder_norm.scale": ParamSpec((a.d_model,), dtype),
        "decoder.logits_dense.kernel": ParamSpec((a.d_model, a.vocab_size), dtype),
    }
    layer = _layer_params(a)
    if layout is Layout.SCANNED:
        for name, shape in layer.items():
            # insert the layer axis at position 1 (MaxText param_scan_axis = 1)
            out[f"decoder.layers.{name}"] = ParamSpec((shape[0], a.num_layers, *shape[1:]), dtype)
    else:
        for i in range(a.num_layers):
            for name, shape in layer.items():
                out[f"decoder.layers_{i}.{name}"] = ParamSpec(shape, dtype)
    return out


def parameter_count(a: llama.LlamaArch) -> int:
    total = 0
    for spec in expected_params(a, Layout.SCANNED).values():
        n = 1
        for dim in spec.shape:
            n *= dim
        total += n
    return total
