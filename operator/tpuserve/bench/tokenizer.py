"""The SentencePiece tokenizer (MaxText's Llama-2 `assets/tokenizer.llama2` is one): load and safe decode."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tpuserve.bench import BenchError, storage

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
        import sentencepiece

        resolved = resolve_path(path)
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

    def decode(self, ids: list[int]) -> tuple[str, int]:
        """(text, number of ids outside the vocabulary, which are left out of the text)."""
        size = self.vocab_size
        valid = [i for i in ids if 0 <= i < size]
        text: str = self._sp.DecodeIds(valid) if valid else ""
        return text, len(ids) - len(valid)
