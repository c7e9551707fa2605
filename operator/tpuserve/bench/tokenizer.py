"""Tokenizers: SentencePiece (MaxText's Llama-2 `assets/tokenizer.llama2`) or Hugging Face `tokenizer.json`
(Llama 3 ships one; read with the `tokenizers` library). Load, encode without special tokens, safe decode."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tpuserve.bench import BenchError, storage
from tpuserve.gs_uri import is_gs_uri

HF_FILE = "tokenizer.json"
MAXTEXT_DIR_ENV = "TPUSERVE_MAXTEXT_DIR"
DEFAULT_MAXTEXT_DIR = "/opt/maxtext"


def resolve_path(path: str) -> str:
    """`assets/...` (the server's tokenizer_path form) resolves against TPUSERVE_MAXTEXT_DIR (CONTRACTS 11)."""
    if path.startswith("assets/"):
        return str(Path(os.environ.get(MAXTEXT_DIR_ENV) or DEFAULT_MAXTEXT_DIR) / path)
    return path


class Tokenizer:
    """Encodes prompts as JetStream's client does (no BOS: the server prepends it) and decodes any id list.

    JetStream's mock engine (and a misconfigured server) emits ids outside the vocabulary; SentencePiece
    raises on those, so they are dropped from the text and counted instead of crashing the run.
    """

    def __init__(self, processor: Any, source: str) -> None:
        self._sp = processor
        self.source = source
        self.vocab_size: int = int(processor.get_piece_size())

    @classmethod
    def load(cls, path: str) -> Tokenizer:
        """A `tokenizer.json` (or a directory holding one) is a Hugging Face tokenizer; anything else SentencePiece."""
        resolved = resolve_path(path)
        if resolved.endswith(".json") or (not is_gs_uri(resolved) and (Path(resolved) / HF_FILE).is_file()):
            if not resolved.endswith(".json"):
                resolved = str(Path(resolved) / HF_FILE)
            return HFTokenizer.load_json(storage.fetch(resolved, "tokenizer.json"), path)
        import sentencepiece

        local = storage.fetch(resolved, "tokenizer")
        processor = sentencepiece.SentencePieceProcessor()
        try:
            processor.Load(str(local))
        except (OSError, RuntimeError) as exc:
            raise BenchError(f"tokenizer {path!r} is not a readable SentencePiece model: {exc}") from exc
        return cls(processor, path)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = self._sp.EncodeAsIds(text)
        return ids

    def num_special_tokens_to_add(self) -> int:
        """Special tokens a server adds around a prompt (SentencePiece: BOS, which JetStream prepends)."""
        return 1

    def base_vocab_size(self) -> int:
        return self.vocab_size

    def special_ids(self) -> list[int]:
        return [i for i in (self._sp.unk_id(), self._sp.bos_id(), self._sp.eos_id(), self._sp.pad_id()) if i >= 0]

    def decode(self, ids: list[int]) -> tuple[str, int]:
        """(text, number of ids outside the vocabulary, which are left out of the text)."""
        size = self.vocab_size
        valid = [i for i in ids if 0 <= i < size]
        text: str = self._sp.DecodeIds(valid) if valid else ""
        return text, len(ids) - len(valid)


class HFTokenizer(Tokenizer):
    """A Hugging Face `tokenizer.json` through the `tokenizers` library (no transformers needed)."""

    def __init__(self, tokenizer: Any, source: str) -> None:
        self._hf = tokenizer
        self.source = source
        self.vocab_size = int(tokenizer.get_vocab_size(with_added_tokens=True))

    @classmethod
    def load_json(cls, local: Path | str, source: str) -> HFTokenizer:
        try:
            from tokenizers import Tokenizer as HFCore
        except ImportError:
            raise BenchError(
                "a tokenizer.json needs the `tokenizers` package (pip install 'tpuserve[bench]')"
            ) from None
        try:
            return cls(HFCore.from_file(str(local)), source)
        except Exception as exc:  # tokenizers raises its own Exception type
            raise BenchError(f"tokenizer {source!r} is not a readable tokenizer.json: {exc}") from exc

    def encode(self, text: str) -> list[int]:
        ids: list[int] = self._hf.encode(text, add_special_tokens=False).ids
        return ids

    def num_special_tokens_to_add(self) -> int:
        return int(self._hf.num_special_tokens_to_add(False))

    def base_vocab_size(self) -> int:
        return int(self._hf.get_vocab_size(with_added_tokens=False))

    def special_ids(self) -> list[int]:
        return [i for i, token in self._hf.get_added_tokens_decoder().items() if token.special]

    def decode(self, ids: list[int]) -> tuple[str, int]:
        size = self.vocab_size
        valid = [i for i in ids if 0 <= i < size]
        text: str = self._hf.decode(valid, skip_special_tokens=False) if valid else ""
        return text, len(ids) - len(valid)
