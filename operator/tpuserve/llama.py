"""The one Llama architecture catalog: converter verification, roofline figures and defaults read it."""

from __future__ import annotations

from dataclasses import dataclass

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "int8": 1}


@dataclass(frozen=True)
class LlamaArch:
    name: str  # MaxText model_name
    num_layers: int
    d_model: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    mlp_dim: int
    vocab_size: int
    meta_shards: int  # number of consolidated.NN.pth files Meta ships
    maxtext_tokenizer: str  # MaxText's asset path for the tokenizer

    @property
    def num_parameters(self) -> int:
        attn = self.d_model * self.head_dim * (2 * self.num_heads + 2 * self.num_kv_heads)
        mlp = 3 * self.d_model * self.mlp_dim
        per_layer = attn + mlp + 2 * self.d_model
        return 2 * self.vocab_size * self.d_model + self.num_layers * per_layer + self.d_model

    def weight_bytes(self, dtype: str = "bfloat16") -> int:
        return self.num_parameters * DTYPE_BYTES[dtype]

    def kv_bytes_per_token(self, dtype: str = "bfloat16") -> int:
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * DTYPE_BYTES[dtype]

    @property
    def meta_checkpoint_files(self) -> tuple[str, ...]:
        return (*(f"consolidated.{i:02d}.pth" for i in range(self.meta_shards)), "params.json")


MODELS: dict[str, LlamaArch] = {
    m.name: m
    for m in (
        LlamaArch("llama2-7b", 32, 4096, 32, 32, 128, 11008, 32000, 1, "assets/tokenizer.llama2"),
        LlamaArch("llama2-13b", 40, 5120, 40, 40, 128, 13824, 32000, 2, "assets/tokenizer.llama2"),
        LlamaArch("llama2-70b", 80, 8192, 64, 8, 128, 28672, 32000, 8, "assets/tokenizer.llama2"),
    )
}


def arch(model: str) -> LlamaArch:
    try:
        return MODELS[model]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; supported: {', '.join(MODELS)}") from None
