"""Source completeness (local and the GCS emulator) and staging with parallel ranged downloads."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from tpuserve import llama
from tpuserve.convert import storage
from tpuserve.convert.source import SourceStatus, check_source, stage_source
from tpuserve.convert.storage import GcsStore, Progress, crc32c_of_file
from tpuserve_dev.tiny_checkpoint import TINY, upload_dir, write_meta_source


def test_local_complete(tmp_path: Path) -> None:
    write_meta_source(tmp_path, llama.arch("llama2-13b"))
    check = check_source(str(tmp_path), "llama2-13b")
    assert check.status is SourceStatus.COMPLETE
    assert check.complete
    assert set(check.present) == {"consolidated.00.pth", "consolidated.01.pth", "params.json", "tokenizer.model"}


def test_local_incomplete_lists_missing(tmp_path: Path) -> None:
    write_meta_source(tmp_path, llama.arch("llama2-13b"), skip=("consolidated.01.pth", "params.json"))
    check = check_source(str(tmp_path), "llama2-13b")
    assert check.status is SourceStatus.INCOMPLETE
    assert check.missing == ["consolidated.01.pth", "params.json"]
    assert "missing consolidated.01.pth, params.json" in check.message
    assert "Required: consolidated.00.pth, consolidated.01.pth, params.json" in check.message


def test_extra_shard_is_a_problem(tmp_path: Path) -> None:
    write_meta_source(tmp_path, llama.arch("llama2-7b"))
    (tmp_path / "consolidated.01.pth").write_bytes(b"x")
    check = check_source(str(tmp_path), "llama2-7b")
    assert check.status is SourceStatus.INCOMPLETE
    assert check.unexpected == ["consolidated.01.pth"]


def test_local_not_found(tmp_path: Path) -> None:
    check = check_source(str(tmp_path / "absent"), "llama2-70b")
    assert check.status is SourceStatus.NOT_FOUND
    assert len(check.missing) == 9  # 8 shards + params.json


def test_gcs_complete_incomplete_not_found(gcs_client: Any, gcs_bucket: str, tmp_path: Path) -> None:
    write_meta_source(tmp_path / "full", llama.arch("llama2-7b"))
    write_meta_source(tmp_path / "part", llama.arch("llama2-7b"), skip=("consolidated.00.pth",))
    upload_dir(gcs_client, gcs_bucket, tmp_path / "full", "meta/llama-2-7b")
    upload_dir(gcs_client, gcs_bucket, tmp_path / "part", "meta/llama-2-7b-part")
    full = check_source(f"gs://{gcs_bucket}/meta/llama-2-7b/", "llama2-7b", client=gcs_client)
    assert full.status is SourceStatus.COMPLETE
    # a sibling whose name extends the prefix must not leak into the listing
    part = check_source(f"gs://{gcs_bucket}/meta/llama-2-7b-part", "llama2-7b", client=gcs_client)
    assert part.status is SourceStatus.INCOMPLETE
    assert part.missing == ["consolidated.00.pth"]
    absent = check_source(f"gs://{gcs_bucket}/meta/llama-2-13b", "llama2-13b", client=gcs_client)
    assert absent.status is SourceStatus.NOT_FOUND
    no_bucket = check_source("gs://no-such-bucket-tpuserve/x", "llama2-7b", client=gcs_client)
    assert no_bucket.status is SourceStatus.NOT_FOUND


def test_staging_parallel_ranges_and_checksums(
    gcs_client: Any, gcs_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "DOWNLOAD_CHUNK_BYTES", 64 * 1024)  # many ranges from a small file
    write_meta_source(tmp_path / "src", TINY, size=1_000_003)
    upload_dir(gcs_client, gcs_bucket, tmp_path / "src", "meta")
    files, seconds = stage_source(GcsStore(f"gs://{gcs_bucket}/meta", gcs_client), TINY, tmp_path / "staged", workers=4)
    assert [f.name for f in files] == ["consolidated.00.pth", "params.json", "tokenizer.model"]
    for f in files:
        staged = tmp_path / "staged" / f.name
        assert staged.read_bytes() == (tmp_path / "src" / f.name).read_bytes()
        assert f.bytes == staged.stat().st_size
        assert f.crc32c == gcs_client.bucket(gcs_bucket).get_blob(f"meta/{f.name}").crc32c
    assert seconds >= 0


def test_progress_lines() -> None:
    out = io.StringIO()
    progress = Progress("staging source", 200, interval=0.0, stream=out)
    progress.add(100)
    progress.add(100)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("staging source: 0.0/0.0 MB (50%)")
    assert "(100%)" in lines[-1]


def test_crc32c_matches_gcs(gcs_client: Any, gcs_bucket: str, tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(300_000))
    blob = gcs_client.bucket(gcs_bucket).blob("blob")
    blob.upload_from_filename(str(path))
    blob.reload()
    assert crc32c_of_file(path) == blob.crc32c


def _checklist(directory: Path, names: list[str], *, wrong: str | None = None) -> None:
    import hashlib

    lines = []
    for name in names:
        md5 = hashlib.md5((directory / name).read_bytes()).hexdigest()
        lines.append(f"{'0' * 32 if name == wrong else md5}  {name}")
    (directory / "checklist.chk").write_text("\n".join(lines) + "\n")


def test_gcs_md5_checked_against_meta_checklist(gcs_client: Any, gcs_bucket: str, tmp_path: Path) -> None:
    arch = llama.arch("llama2-7b")
    write_meta_source(tmp_path / "good", arch)
    _checklist(tmp_path / "good", ["consolidated.00.pth", "params.json"])
    write_meta_source(tmp_path / "bad", arch)
    _checklist(tmp_path / "bad", ["consolidated.00.pth", "params.json"], wrong="consolidated.00.pth")
    upload_dir(gcs_client, gcs_bucket, tmp_path / "good", "good")
    upload_dir(gcs_client, gcs_bucket, tmp_path / "bad", "bad")
    assert check_source(f"gs://{gcs_bucket}/good", "llama2-7b", client=gcs_client).complete
    bad = check_source(f"gs://{gcs_bucket}/bad", "llama2-7b", client=gcs_client)
    assert bad.status is SourceStatus.INCOMPLETE
    assert bad.corrupt == ["consolidated.00.pth"]
    assert "MD5 differs from checklist.chk for consolidated.00.pth" in bad.message


def test_staging_checks_md5_against_checklist(gcs_client: Any, gcs_bucket: str, tmp_path: Path) -> None:
    write_meta_source(tmp_path / "src", TINY)
    _checklist(tmp_path / "src", ["params.json"], wrong="params.json")
    upload_dir(gcs_client, gcs_bucket, tmp_path / "src", "meta")
    with pytest.raises(OSError, match=r"params\.json: MD5 \w+ differs from checklist\.chk"):
        stage_source(GcsStore(f"gs://{gcs_bucket}/meta", gcs_client), TINY, tmp_path / "staged")


def test_files_one_level_down_are_pointed_at(tmp_path: Path) -> None:
    write_meta_source(tmp_path / "llama-2-7b", llama.arch("llama2-7b"))
    check = check_source(str(tmp_path), "llama2-7b")
    assert check.status is SourceStatus.INCOMPLETE
    assert "under llama-2-7b/: point source at that directory" in check.message
