"""A tiny Llama architecture and fake Meta sources in a GCS bucket: shared by the converter and operator tests
and the demo. Nothing here is mocked; the bytes are random where nothing parses them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tpuserve import llama

# Small, but the embedding (256 x 64 bf16 = 32 KiB) and MLP weights are larger than OCDBT's 1 KiB inline limit,
# so they live in data files and truncation of a data file is observable.
TINY = llama.LlamaArch(
    name="llama2-7b",
    num_layers=3,
    d_model=64,
    num_heads=4,
    num_kv_heads=2,
    head_dim=16,
    mlp_dim=128,
    vocab_size=256,
    meta_shards=1,
    maxtext_tokenizer="assets/tokenizer.llama2",
)


def write_meta_source(directory: Path, arch: llama.LlamaArch, *, skip: tuple[str, ...] = (), size: int = 4096) -> None:
    """A Meta-format directory with the right file names (contents are random bytes: nothing here parses .pth)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in arch.meta_checkpoint_files:
        if name in skip:
            continue
        data = json.dumps({"dim": arch.d_model}).encode() if name == "params.json" else os.urandom(size)
        (directory / name).write_bytes(data)
    if "tokenizer.model" not in skip:
        (directory / "tokenizer.model").write_bytes(os.urandom(512))


def upload_dir(client: Any, bucket: str, local: Path, prefix: str) -> None:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            client.bucket(bucket).blob(f"{prefix}/{path.relative_to(local).as_posix()}").upload_from_filename(str(path))
