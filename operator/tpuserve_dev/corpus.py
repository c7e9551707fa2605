"""Deterministic test data in the real formats: a text corpus, a tiny SentencePiece model trained on it,
ShareGPT JSON and an openorca-layout pandas pickle. Used by the tests, the perf script and the parity recorder."""

from __future__ import annotations

import json
import random
from pathlib import Path

_WORD_TEXT = (
    "the a model server token prompt answer batch slot cache query key value layer head tensor chip pod node "
    "cluster request stream latency throughput memory bandwidth compute kernel compile weight shard mesh llama "
    "orca share question reason because therefore first then finally explain describe list write short long "
    "please thanks system user assistant helpful careful step by of to in on with for and or not is are was"
)
WORDS = _WORD_TEXT.split()


def sentence(rng: random.Random, n_words: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n_words)]
    return " ".join(words).capitalize() + "."


def text(rng: random.Random, n_words: int) -> str:
    out = []
    while n_words > 0:
        k = min(n_words, rng.randint(4, 14))
        out.append(sentence(rng, k))
        n_words -= k
    return " ".join(out)


def train_tokenizer(directory: Path, vocab_size: int = 200) -> Path:
    """A tiny SentencePiece model (BPE, unk/bos/eos like Llama's: 0/1/2) trained on the word corpus."""
    import sentencepiece

    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1234)
    corpus = directory / "corpus.txt"
    corpus.write_text("\n".join(text(rng, rng.randint(5, 60)) for _ in range(3000)) + "\n", encoding="utf-8")
    prefix = directory / "tiny"
    sentencepiece.SentencePieceTrainer.Train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type="bpe",
        num_threads=1,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        normalization_rule_name="identity",
        minloglevel=2,
    )
    return prefix.with_suffix(".model")


def pairs(n: int, seed: int = 7, max_words: int = 400) -> list[tuple[str, str]]:
    """Prompt/answer pairs with a wide spread of lengths (some beyond JetStream's filters, some too short)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.05:
            prompt_words, answer_words = 1, rng.randint(5, 40)  # too short a prompt
        elif kind < 0.10:
            prompt_words, answer_words = rng.randint(5, 40), 1  # too short an answer
        elif kind < 0.15:
            prompt_words, answer_words = rng.randint(700, 900), rng.randint(5, 40)  # too long a prompt
        else:
            prompt_words, answer_words = rng.randint(3, max_words), rng.randint(2, max_words)
        out.append((text(rng, prompt_words), text(rng, answer_words)))
    return out


def write_sharegpt(path: Path, n: int, seed: int = 7, max_words: int = 400) -> Path:
    rng = random.Random(seed + 1)
    data = []
    for i, (prompt, answer) in enumerate(pairs(n, seed, max_words)):
        starter = "gpt" if rng.random() < 0.1 else "human"
        turns = [{"from": starter, "value": prompt}, {"from": "gpt", "value": answer}]
        if i % 13 == 0:
            turns = turns[:1]  # one-turn conversations are skipped by JetStream
        data.append({"id": f"conv-{i}", "conversations": turns})
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_openorca(path: Path, n: int, seed: int = 11, max_words: int = 400) -> Path:
    """The MLPerf calibration pickle's layout: a DataFrame with `input` (chat-formatted) and `output` columns."""
    import pandas

    rows = pairs(n, seed, max_words)
    frame = pandas.DataFrame(
        {
            "id": [f"orca.{i}" for i in range(n)],
            "system_prompt": ["You are a helpful assistant."] * n,
            "question": [p for p, _ in rows],
            "input": [f"<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\n{p} [/INST]" for p, _ in rows],
            "output": [a for _, a in rows],
        }
    )
    frame.to_pickle(path)
    return path
