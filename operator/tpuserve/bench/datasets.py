"""Datasets and request sampling.

The defaults reproduce JetStream's benchmark_serving.py (0.2.2 and newer) exactly, so the same dataset, tokenizer
and seed select the same prompts in the same order: `random.seed(seed)`; sample min(int(n * 1.2), size) indices
without replacement (repeated when more prompts are asked than the dataset has); tokenize prompt and reference
output; drop prompt < 4 or output < 4 tokens, prompt > 1024, prompt + output > 2048; then sample `num_prompts`
of the survivors if more remain. max_tokens is `--max-output-length` when given, else the reference length.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tpuserve.bench import BenchError, storage
from tpuserve.bench.filters import DEFAULT_FILTERS, Filters
from tpuserve.bench.tokenizer import Tokenizer

DATASETS_DIR_ENV = "TPUSERVE_DATASETS_DIR"
DEFAULT_DATASETS_DIR = "/opt/tpuserve/datasets"
DEFAULT_FILES = {
    "openorca": "open_orca_gpt4_tokenized_llama.calibration_1000.pkl",
    "sharegpt": "ShareGPT_V3_unfiltered_cleaned_split.json",
}
# Prompt-length buckets of JetStream's "sampled" warmup: the first prompt in each (a, b] is sent twice.
WARMUP_BUCKETS = (0, 16, 32, 64, 128, 256, 512, 1024)


@dataclass
class Request:
    """One prompt to send. `sample_idx` is the row in the dataset (JetStream's key for the outputs file)."""

    prompt: str
    prompt_ids: list[int]
    reference_output: str
    reference_output_len: int
    max_tokens: int
    sample_idx: int

    @property
    def prompt_len(self) -> int:
        return len(self.prompt_ids)


def default_path(name: str) -> str:
    return str(Path(os.environ.get(DATASETS_DIR_ENV) or DEFAULT_DATASETS_DIR) / DEFAULT_FILES[name])


def load_openorca(path: str) -> list[tuple[str, str]]:
    """The MLPerf calibration pickle JetStream reads: a pandas DataFrame with `input` and `output` columns.

    (A pickle runs code when loaded: only use files you trust, as with JetStream's client.)
    """
    local = storage.fetch(path, "openorca dataset")
    try:
        import pandas
    except ImportError as exc:  # the bench extra
        raise BenchError("the openorca dataset needs pandas: pip install 'tpuserve[bench]'") from exc
    try:
        frame = pandas.read_pickle(local)
    except Exception as exc:  # unpickling raises anything
        raise BenchError(f"openorca dataset {path!r} is not a readable pandas pickle: {exc}") from exc
    columns = getattr(frame, "columns", None)
    if columns is None or "input" not in columns or "output" not in columns:
        raise BenchError(
            f"openorca dataset {path!r} must be a pandas DataFrame with 'input' and 'output' columns "
            f"(found {list(columns) if columns is not None else type(frame).__name__})"
        )
    return [(str(p), str(o)) for p, o in zip(frame["input"].tolist(), frame["output"].tolist(), strict=True)]


def load_sharegpt(path: str, conversation_starter: str = "human") -> list[tuple[str, str]]:
    """ShareGPT JSON: a list of {"conversations": [{"from", "value"}, ...]}; turns 0 and 1 of each."""
    local = storage.fetch(path, "sharegpt dataset")
    try:
        data = json.loads(local.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchError(f"sharegpt dataset {path!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, list):
        raise BenchError(f"sharegpt dataset {path!r} must be a JSON list of conversations")
    pairs: list[tuple[str, str]] = []
    for i, item in enumerate(data):
        turns = item.get("conversations") if isinstance(item, dict) else None
        if not isinstance(turns, list) or not all(isinstance(t, dict) and "value" in t for t in turns[:2]):
            raise BenchError(f"sharegpt dataset {path!r}: entry {i} has no 'conversations' list of {{from, value}}")
        if len(turns) < 2:
            continue
        if conversation_starter != "both" and turns[0].get("from") != conversation_starter:
            continue
        pairs.append((str(turns[0]["value"]), str(turns[1]["value"])))
    return pairs


def sample_requests(
    dataset: list[tuple[str, str]],
    tokenizer: Tokenizer,
    num_prompts: int,
    seed: int,
    max_output_length: int | None,
    filters: Filters = DEFAULT_FILTERS,
) -> list[Request]:
    """JetStream's sample_requests + filter_dataset with its `random` sequence (see the module docstring)."""
    if not dataset:
        raise BenchError("the dataset holds no usable prompt/answer pairs")
    rng = random.Random(seed)
    n = len(dataset)
    indices = rng.sample(range(n), min(int(num_prompts * filters.oversample), n))
    if num_prompts > len(indices):
        indices = indices * math.ceil(num_prompts / len(indices))
    selected: list[Request] = []
    for i in indices:
        prompt, output = dataset[i]
        prompt_ids = tokenizer.encode(prompt)
        output_len = len(tokenizer.encode(output))
        prompt_len = len(prompt_ids)
        if prompt_len < filters.min_input_length or output_len < filters.min_output_length:
            continue
        if prompt_len > filters.max_input_length or prompt_len + output_len > filters.max_target_length:
            continue
        selected.append(Request(prompt, prompt_ids, output, output_len, max_output_length or output_len, i))
    if not selected:
        raise BenchError(f"no prompt passed the length filters ({filters}); check the tokenizer matches the dataset")
    if len(selected) > num_prompts:
        selected = rng.sample(selected, num_prompts)
    return selected


def parse_length(text: str) -> tuple[int, int]:
    """'N' -> (N, N); 'LO:HI' -> (LO, HI), for synthetic lengths."""
    try:
        lo_text, _, hi_text = text.partition(":")
        lo = int(lo_text)
        hi = int(hi_text) if hi_text else lo
    except ValueError:
        raise BenchError(f"length {text!r} must be N or LO:HI (positive integers)") from None
    if lo < 1 or hi < lo:
        raise BenchError(f"length {text!r} must be N or LO:HI with 1 <= LO <= HI")
    return lo, hi


def synthetic_requests(
    num_prompts: int,
    seed: int,
    input_length: tuple[int, int],
    output_length: tuple[int, int],
    tokenizer: Tokenizer | None,
    vocab_size: int,
) -> list[Request]:
    """Prompts of random token ids (ids 3.. to skip SentencePiece's unk/bos/eos), lengths fixed or uniform."""
    rng = np.random.default_rng(seed)
    size = tokenizer.vocab_size if tokenizer else vocab_size
    if size <= 3:
        raise BenchError(f"vocabulary size {size} is too small for synthetic prompts")
    requests = []
    for i in range(num_prompts):
        n_in = int(rng.integers(input_length[0], input_length[1] + 1))
        n_out = int(rng.integers(output_length[0], output_length[1] + 1))
        ids = rng.integers(3, size, n_in).tolist()
        text = tokenizer.decode(ids)[0] if tokenizer else ""
        requests.append(Request(text, ids, "", n_out, n_out, i))
    return requests


def sampled_warmup(requests: list[Request]) -> list[Request]:
    """JetStream's 'sampled' warmup: the first prompt in each length bucket, the whole list twice."""
    picked: list[Request] = []
    for lo, hi in itertools.pairwise(WARMUP_BUCKETS):
        for request in requests:
            if lo < request.prompt_len <= hi:
                picked.append(request)
                break
    return picked * 2


def describe(requests: list[Request]) -> dict[str, Any]:
    return {
        "requests": len(requests),
        "input_tokens": sum(r.prompt_len for r in requests),
        "max_tokens": sum(r.max_tokens for r in requests),
    }


def random_requests(
    num_prompts: int,
    seed: int,
    input_len: int,
    output_len: int,
    range_ratio: float,
    tokenizer: Tokenizer,
) -> list[Request]:
    """`vllm bench serve --dataset-name random` (vLLM 0.32 RandomDataset, prefix length 0): lengths uniform in
    [floor(L * (1 - r)), ceil(L * (1 + r))] (input after the tokenizer's special tokens are taken off, output at
    least 1); request i's prompt is the allowed ids (offset_i + i + arange(n)) % len(allowed), decoded, re-encoded
    and cut or topped up to n tokens (up to 10 tries), all from `np.random.default_rng(seed)` in vLLM's order.
    Allowed ids are the vocabulary less the tokenizer's special added tokens (vLLM's transformers tokenizer
    leaves out only its special_tokens_map ids, so prompts can differ; lengths follow the same draws)."""
    if not 0.0 <= range_ratio < 1.0:
        raise BenchError(f"--random-range-ratio {range_ratio} must be in [0, 1)")
    rng = np.random.default_rng(seed)
    special = tokenizer.num_special_tokens_to_add()
    real_input = max(0, input_len - special)
    in_lo, in_hi = math.floor(real_input * (1 - range_ratio)), math.ceil(real_input * (1 + range_ratio))
    out_lo = max(math.floor(output_len * (1 - range_ratio)), 1)
    out_hi = max(math.ceil(output_len * (1 + range_ratio)), 1)
    if in_lo < 1:
        raise BenchError(f"--random-input-len {input_len} is too small for range ratio {range_ratio}")
    vocab = tokenizer.base_vocab_size()
    input_lens = rng.integers(in_lo, in_hi + 1, size=num_prompts)
    output_lens = rng.integers(out_lo, out_hi + 1, size=num_prompts)
    offsets = rng.integers(0, vocab, size=num_prompts)
    allowed = np.array(sorted(set(range(vocab)) - set(tokenizer.special_ids())))
    requests = []
    for i in range(num_prompts):
        n = int(input_lens[i])
        ids = allowed[(int(offsets[i]) + i + np.arange(n)) % len(allowed)].tolist()
        text = ""
        for attempt in range(11):
            text = tokenizer.decode(ids)[0]
            ids = tokenizer.encode(text)
            if len(ids) == n or attempt == 10:
                break
            if len(ids) < n:
                ids.extend(rng.integers(0, vocab, size=n - len(ids)).tolist())
            else:
                ids = ids[:n]
        requests.append(Request(text, ids, "", int(output_lens[i]), int(output_lens[i]), i))
    return requests
