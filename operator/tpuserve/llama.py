"""The one Llama architecture catalog: converter verification, Hugging Face mirror verification, roofline and
memory-fit figures, each runtime's model name and defaults read it.

Architecture numbers are the models' Hugging Face `config.json` values (Llama 2: meta-llama/Llama-2-*-hf; Llama
3.x: meta-llama/Llama-3.1-8B, Llama-3.1-70B, Llama-3.2-1B, Llama-3.2-3B, Llama-3.3-70B-Instruct), cross-checked
against MaxText's configs/models/*.yml where MaxText has the model (../shared/facts/vllm-tpu.md section 6).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from tpuserve import tpu

# Bytes per element in HBM; int4 and fp8 are MaxText's AQT quantization modes (api Quantization).
DTYPE_BYTES: dict[str, float] = {"bfloat16": 2, "float16": 2, "float32": 4, "int8": 1, "fp8": 1, "int4": 0.5}
DTYPE_SHORT = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "int8": "int8", "fp8": "fp8", "int4": "int4"}


def stored_weight_dtype(weight_dtype: str, quantization: str | None) -> str:
    """What the weights occupy in HBM: the quantized type when a quantization is set, else the weight dtype."""
    return quantization or weight_dtype


class Runtime(StrEnum):
    """The server runtimes an InferenceServer can deploy."""

    JETSTREAM_MAXTEXT = "jetstream-maxtext"  # JetStream + MaxText engine, MaxText Orbax checkpoints
    VLLM_TPU = "vllm-tpu"  # vLLM's TPU backend (tpu-inference), Hugging Face safetensors


@dataclass(frozen=True)
class LlamaArch:
    name: str  # catalog key; MaxText's model_name for the models the JetStream path converts
    num_layers: int
    d_model: int
    num_heads: int
    num_kv_heads: int  # grouped-query attention: K/V heads shared by num_heads / num_kv_heads query heads
    head_dim: int
    mlp_dim: int  # HF intermediate_size
    vocab_size: int
    meta_shards: int  # number of consolidated.NN.pth files Meta ships
    maxtext_tokenizer: str  # MaxText's asset path for the tokenizer
    # Fields below came with Llama 3 and vLLM. Their defaults are Llama 2's, so positional and JSON
    # constructions written before them (converter --arch overrides, test architectures) keep their meaning;
    # conversion manifests record only CONVERSION_FIELDS, so checkpoints converted before stay reusable.
    tied_embeddings: bool = False  # lm_head shares model.embed_tokens.weight (no lm_head tensor)
    hf_repo: str = ""  # Hugging Face repo id vLLM serves by default ("" if none)
    hf_dtype: str = "float16"  # dtype of the published safetensors (config.json torch_dtype)
    max_position_embeddings: int = 4096
    rope_theta: float = 10000.0
    rope_scaling_factor: float | None = None  # rope_scaling.factor of rope_type "llama3"; None = no scaling
    maxtext_name: str | None = None  # MaxText model_name where MaxText ships the model (vLLM's MaxText adapter)
    runtimes: tuple[Runtime, ...] = (Runtime.JETSTREAM_MAXTEXT, Runtime.VLLM_TPU)

    def __post_init__(self) -> None:
        # From JSON (an --arch override) runtimes arrive as a list of strings.
        object.__setattr__(self, "runtimes", tuple(Runtime(r) for r in self.runtimes))

    @property
    def num_parameters(self) -> int:
        attn = self.d_model * self.head_dim * (2 * self.num_heads + 2 * self.num_kv_heads)
        mlp = 3 * self.d_model * self.mlp_dim
        per_layer = attn + mlp + 2 * self.d_model
        embeddings = (1 if self.tied_embeddings else 2) * self.vocab_size * self.d_model
        return embeddings + self.num_layers * per_layer + self.d_model

    def weight_bytes(self, dtype: str = "bfloat16") -> int:
        return int(self.num_parameters * DTYPE_BYTES[dtype])

    def kv_bytes_per_token(self, dtype: str = "bfloat16") -> int:
        """Key and value vectors of every layer for one token: with GQA only num_kv_heads are cached."""
        return int(2 * self.num_layers * self.num_kv_heads * self.head_dim * DTYPE_BYTES[dtype])

    @property
    def meta_checkpoint_files(self) -> tuple[str, ...]:
        return (*(f"consolidated.{i:02d}.pth" for i in range(self.meta_shards)), "params.json")

    def model_name(self, runtime: Runtime | str) -> str | None:
        """What the runtime calls this model: the HF repo id for vLLM, MaxText's model_name for JetStream;
        None when the runtime cannot serve it."""
        runtime = Runtime(runtime)
        if runtime not in self.runtimes:
            return None
        return self.hf_repo if runtime is Runtime.VLLM_TPU else self.name

    def hf_tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor of the Hugging Face safetensors checkpoint (LlamaForCausalLM state dict), name -> shape.

        Linear weights are stored [out_features, in_features]; lm_head.weight is absent when the embeddings are
        tied. All tensors have dtype `hf_dtype`.
        """
        d, f, v = self.d_model, self.mlp_dim, self.vocab_size
        q, kv = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (v, d)}
        for i in range(self.num_layers):
            layer = f"model.layers.{i}."
            shapes |= {
                layer + "input_layernorm.weight": (d,),
                layer + "self_attn.q_proj.weight": (q, d),
                layer + "self_attn.k_proj.weight": (kv, d),
                layer + "self_attn.v_proj.weight": (kv, d),
                layer + "self_attn.o_proj.weight": (d, q),
                layer + "post_attention_layernorm.weight": (d,),
                layer + "mlp.gate_proj.weight": (f, d),
                layer + "mlp.up_proj.weight": (f, d),
                layer + "mlp.down_proj.weight": (d, f),
            }
        shapes["model.norm.weight"] = (d,)
        if not self.tied_embeddings:
            shapes["lm_head.weight"] = (v, d)
        return shapes

    def hf_config(self) -> dict[str, object]:
        """The architecture keys of the model's HF config.json, to compare a mirrored config against."""
        config: dict[str, object] = {
            "num_hidden_layers": self.num_layers,
            "hidden_size": self.d_model,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "intermediate_size": self.mlp_dim,
            "vocab_size": self.vocab_size,
            "tie_word_embeddings": self.tied_embeddings,
            "max_position_embeddings": self.max_position_embeddings,
            "rope_theta": self.rope_theta,
        }
        return config


# The fields a MaxText conversion depends on: what a conversion manifest records and compares.
CONVERSION_FIELDS = tuple(f.name for f in fields(LlamaArch))[:10]


def conversion_facts(arch: LlamaArch) -> dict[str, object]:
    return {name: getattr(arch, name) for name in CONVERSION_FIELDS}


# Llama 3.x: tiktoken-style tokenizer (128000 BPE + 256 reserved specials), 8 KV heads, vocab 128256,
# rope_theta 500000 with rope_type "llama3" scaling from an original 8192 positions (factor 8 for 3.1/3.3, 32
# for 3.2), 131072 positions, published in bfloat16. tpuserve's JetStream path (Meta -> MaxText conversion,
# SentencePiece tokenizer asset) is Llama 2 only, so Llama 3 models are served through vLLM.
def _llama3(
    name: str, layers: int, d_model: int, heads: int, head_dim: int, mlp_dim: int, meta_shards: int, **extra: Any
) -> LlamaArch:
    return LlamaArch(
        name, layers, d_model, heads, 8, head_dim, mlp_dim, 128256, meta_shards, "assets/tokenizer_llama3.tiktoken",
        hf_dtype="bfloat16", max_position_embeddings=131072, rope_theta=500000.0, runtimes=(Runtime.VLLM_TPU,),
        **extra,
    )  # fmt: skip


MODELS: dict[str, LlamaArch] = {
    m.name: m
    for m in (
        # HF meta-llama/Llama-2-{7b,13b,70b}-hf config.json; torch_dtype float16.
        LlamaArch(
            "llama2-7b", 32, 4096, 32, 32, 128, 11008, 32000, 1, "assets/tokenizer.llama2",
            hf_repo="meta-llama/Llama-2-7b-hf", maxtext_name="llama2-7b",
        ),
        LlamaArch(
            "llama2-13b", 40, 5120, 40, 40, 128, 13824, 32000, 2, "assets/tokenizer.llama2",
            hf_repo="meta-llama/Llama-2-13b-hf", maxtext_name="llama2-13b",
        ),
        LlamaArch(
            "llama2-70b", 80, 8192, 64, 8, 128, 28672, 32000, 8, "assets/tokenizer.llama2",
            hf_repo="meta-llama/Llama-2-70b-hf", maxtext_name="llama2-70b",
        ),
        # HF meta-llama/Llama-3.1-8B(-Instruct): 32 layers, hidden 4096, 32 heads, intermediate 14336, untied;
        # MaxText configs/models/llama3.1-8b.yml agrees.
        _llama3(
            "llama3.1-8b", 32, 4096, 32, 128, 14336, 1,
            hf_repo="meta-llama/Llama-3.1-8B-Instruct", rope_scaling_factor=8.0, maxtext_name="llama3.1-8b",
        ),
        # HF meta-llama/Llama-3.1-70B(-Instruct): 80 layers, hidden 8192, 64 heads, intermediate 28672, untied.
        _llama3(
            "llama3.1-70b", 80, 8192, 64, 128, 28672, 8,
            hf_repo="meta-llama/Llama-3.1-70B-Instruct", rope_scaling_factor=8.0, maxtext_name="llama3.1-70b",
        ),
        # HF meta-llama/Llama-3.2-1B(-Instruct): 16 layers, hidden 2048, 32 heads of 64, intermediate 8192,
        # tie_word_embeddings true, rope factor 32. MaxText ships no llama3.2 config.
        _llama3(
            "llama3.2-1b", 16, 2048, 32, 64, 8192, 1,
            tied_embeddings=True, hf_repo="meta-llama/Llama-3.2-1B-Instruct", rope_scaling_factor=32.0,
        ),
        # HF meta-llama/Llama-3.2-3B(-Instruct): 28 layers, hidden 3072, 24 heads of 128, intermediate 8192,
        # tie_word_embeddings true, rope factor 32.
        _llama3(
            "llama3.2-3b", 28, 3072, 24, 128, 8192, 1,
            tied_embeddings=True, hf_repo="meta-llama/Llama-3.2-3B-Instruct", rope_scaling_factor=32.0,
        ),
        # HF meta-llama/Llama-3.3-70B-Instruct (released as Instruct only): the Llama 3.1 70B architecture.
        _llama3(
            "llama3.3-70b", 80, 8192, 64, 128, 28672, 8,
            hf_repo="meta-llama/Llama-3.3-70B-Instruct", rope_scaling_factor=8.0, maxtext_name="llama3.3-70b",
        ),
    )
}  # fmt: skip


def arch(model: str) -> LlamaArch:
    try:
        return MODELS[model]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; supported: {', '.join(MODELS)}") from None


def from_override(model: str, data: dict[str, Any]) -> LlamaArch:
    """An architecture override (the converter's --arch-json / TPUSERVE_CONVERT_ARCH): one LlamaArch's fields, or
    {model: fields} for several models (one operator-wide override for a conversion and a mirror of different
    models); a model the mapping does not name keeps the catalog's architecture."""
    if "name" not in data:
        return LlamaArch(**data[model]) if model in data else arch(model)
    return LlamaArch(**data)


def models_for(runtime: Runtime | str) -> list[str]:
    """Catalog keys the runtime can serve, in catalog order."""
    return [name for name, m in MODELS.items() if Runtime(runtime) in m.runtimes]


def by_hf_repo(repo_id: str) -> LlamaArch | None:
    """The catalog entry whose default HF repo is `repo_id`, or that repo's base/Instruct twin (same weights'
    shapes), case-insensitively; None if the catalog does not know it."""
    wanted = repo_id.lower().removesuffix("-instruct").removesuffix("-chat-hf").removesuffix("-hf")
    for m in MODELS.values():
        if m.hf_repo and m.hf_repo.lower().removesuffix("-instruct").removesuffix("-hf") == wanted:
            return m
    return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def hbm_shortfall(
    model: LlamaArch,
    tpu_slice: tpu.TpuSlice,
    *,
    sequences: int,
    tokens_per_sequence: int,
    dtype: str = "bfloat16",
    kv_dtype: str = "bfloat16",
    usable_fraction: float = 1.0,
) -> str | None:
    """Why `sequences` sequences of `tokens_per_sequence` tokens cannot be served from this slice's HBM (weights
    plus a full KV cache), with the numbers; None when they fit. `usable_fraction` is the share of HBM the
    runtime may use (vLLM's --gpu-memory-utilization)."""
    weights = model.weight_bytes(dtype)
    kv_per_token = model.kv_bytes_per_token(kv_dtype)
    kv = sequences * tokens_per_sequence * kv_per_token
    hbm = tpu_slice.hbm_bytes * usable_fraction
    where = f"{tpu_slice.generation.name} {tpu_slice.topology} has {_gib(tpu_slice.hbm_bytes)} of HBM"
    if usable_fraction < 1.0:
        where += f" ({_gib(hbm)} at {usable_fraction:g} utilisation)"
    short = DTYPE_SHORT.get(dtype, dtype)
    if weights >= hbm:
        return f"{model.name} {short} needs {_gib(weights)} of weights; {where}"
    if weights + kv > hbm:
        return (
            f"{model.name} {short} needs {_gib(weights)} of weights plus {_gib(kv)} of KV cache "
            f"({sequences} sequences x {tokens_per_sequence} tokens x {kv_per_token // 1024} KiB); {where}"
        )
    return None
