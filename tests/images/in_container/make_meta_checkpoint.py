"""Write a Meta-format Llama checkpoint (consolidated.00.pth + params.json) with seeded random weights.

Run inside the converter image (it has torch):  python make_meta_checkpoint.py OUT_DIR ARCH_JSON
ARCH_JSON holds tpuserve.llama.LlamaArch fields. Names and shapes are Meta's (what MaxText's converter reads):
wq/wk/wv [heads*head_dim, dim], wo [dim, heads*head_dim], w1/w3 [mlp, dim], w2 [dim, mlp], norms [dim].
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def main() -> None:
    out, arch = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    dim, heads, kv_heads, head_dim = arch["d_model"], arch["num_heads"], arch["num_kv_heads"], arch["head_dim"]
    mlp, vocab = arch["mlp_dim"], arch["vocab_size"]
    generator = torch.Generator().manual_seed(0)

    def weight(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator) * 0.02).to(torch.bfloat16)

    tensors = {"tok_embeddings.weight": weight(vocab, dim), "norm.weight": torch.ones(dim, dtype=torch.bfloat16)}
    tensors["output.weight"] = weight(vocab, dim)
    for i in range(arch["num_layers"]):
        p = f"layers.{i}."
        tensors[p + "attention.wq.weight"] = weight(heads * head_dim, dim)
        tensors[p + "attention.wk.weight"] = weight(kv_heads * head_dim, dim)
        tensors[p + "attention.wv.weight"] = weight(kv_heads * head_dim, dim)
        tensors[p + "attention.wo.weight"] = weight(dim, heads * head_dim)
        tensors[p + "feed_forward.w1.weight"] = weight(mlp, dim)
        tensors[p + "feed_forward.w2.weight"] = weight(dim, mlp)
        tensors[p + "feed_forward.w3.weight"] = weight(mlp, dim)
        tensors[p + "attention_norm.weight"] = torch.ones(dim, dtype=torch.bfloat16)
        tensors[p + "ffn_norm.weight"] = torch.ones(dim, dtype=torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(tensors, out / "consolidated.00.pth")
    params = {"dim": dim, "n_layers": arch["num_layers"], "n_heads": heads, "n_kv_heads": kv_heads}
    params |= {"vocab_size": vocab, "multiple_of": 256, "norm_eps": 1e-05}
    (out / "params.json").write_text(json.dumps(params))


if __name__ == "__main__":
    main()
