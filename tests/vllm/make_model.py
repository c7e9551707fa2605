"""Make (once) a small random-weight Llama-3-architecture model in Hugging Face format, for the real vLLM CPU
server the tests and the demo run: no download, everything generated here.

Run with the vLLM virtualenv's python (it has torch, transformers and tokenizers):
    $(bash tests/vllm/setup-venv.sh) tests/vllm/make_model.py OUTPUT_DIR

Shape: GQA like Llama 3 (4 query heads, 2 key/value heads), head_dim 64 because vLLM's CPU attention kernel
refuses head_dim 16. The tokenizer is a byte-level BPE trained on generated sentences and saved as
`tokenizer.json`, the file Llama 3 ships. The weights are seeded, so every machine makes the same model.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

WORDS = [
    "the",
    "a",
    "tensor",
    "processing",
    "unit",
    "serves",
    "llama",
    "model",
    "tokens",
    "quickly",
    "slowly",
    "batch",
    "cache",
    "key",
    "value",
    "head",
    "layer",
    "prompt",
    "answer",
    "request",
    "server",
    "client",
    "cluster",
    "node",
    "pool",
    "slice",
    "chip",
    "memory",
    "bandwidth",
    "throughput",
    "latency",
    "first",
    "second",
    "time",
    "decode",
    "prefill",
    "stream",
    "kubernetes",
    "operator",
    "benchmark",
    "checkpoint",
    "weights",
    "shard",
    "bucket",
]


def sentences(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 16))]
        out.append(" ".join(words).capitalize() + rng.choice([".", "?", "!"]))
    return out


def make(output: Path, layers: int = 2, hidden: int = 256) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab_size = 512
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(sentences(5000, seed=1), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=specials[0], eos_token=specials[1])

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        num_key_value_heads=hidden // 128,
        max_position_embeddings=512,
        bos_token_id=tokenizer.token_to_id(specials[0]),
        eos_token_id=tokenizer.token_to_id(specials[1]),
        torch_dtype="bfloat16",
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output, safe_serialization=True)
    fast.save_pretrained(output)


def main() -> int:
    if len(sys.argv) not in (2, 4):
        print("usage: make_model.py OUTPUT_DIR [LAYERS HIDDEN]", file=sys.stderr)
        return 2
    if len(sys.argv) == 4:
        make(Path(sys.argv[1]), layers=int(sys.argv[2]), hidden=int(sys.argv[3]))
    else:
        make(Path(sys.argv[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
