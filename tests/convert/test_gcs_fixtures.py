"""The GCS emulator fixtures themselves: uploads of each kind, prefix listing, ranged reads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def test_emulator_sets_env(gcs_emulator: str) -> None:
    assert os.environ["STORAGE_EMULATOR_HOST"] == gcs_emulator


def test_upload_list_and_ranged_download(gcs_client: Any, gcs_bucket: str, tmp_path: Path) -> None:
    bucket = gcs_client.bucket(gcs_bucket)
    small = bytes(range(256)) * 4
    bucket.blob("dir/a.bin").upload_from_string(small)
    # Above the client's multipart threshold (8 MiB) with a small chunk size: a resumable upload in chunks.
    big_path = tmp_path / "big.bin"
    big_path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    blob = bucket.blob("dir/sub/big.bin", chunk_size=1024 * 1024)
    blob.upload_from_filename(str(big_path))
    bucket.blob("other.txt").upload_from_string(b"x")

    names = sorted(b.name for b in gcs_client.list_blobs(gcs_bucket, prefix="dir/"))
    assert names == ["dir/a.bin", "dir/sub/big.bin"]
    iterator = gcs_client.list_blobs(gcs_bucket, prefix="dir/", delimiter="/")
    direct = [b.name for b in iterator]
    assert direct == ["dir/a.bin"]
    assert set(iterator.prefixes) == {"dir/sub/"}

    fetched = bucket.get_blob("dir/sub/big.bin")
    assert fetched.size == big_path.stat().st_size
    assert fetched.download_as_bytes() == big_path.read_bytes()
    assert bucket.blob("dir/a.bin").download_as_bytes(start=10, end=19) == small[10:20]
