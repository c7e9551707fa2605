"""Issue 13, checkpoints, against the GCS emulator: a verified output is reused only for the very source it was
converted from (location, per-file size and CRC32C as GCS lists them now), and a manifest that cannot be read
is an OutputConflict that deletes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.convert.test_run import CountingRunner, _options
from tpuserve.convert.manifest import ManifestUnreadable, find_verified_output, read_manifest, source_changes
from tpuserve.convert.run import run
from tpuserve.convert.summary import FailureReason, Outcome
from tpuserve_dev.tiny_checkpoint import TINY, upload_dir, write_meta_source


@pytest.fixture
def converted(gcs_client: Any, gcs_bucket: str, tmp_path: Path, tiny_arch_json: Path) -> tuple[str, str]:
    write_meta_source(tmp_path / "meta", TINY, size=200_000)
    upload_dir(gcs_client, gcs_bucket, tmp_path / "meta", "meta/a")
    source, output = f"gs://{gcs_bucket}/meta/a", f"gs://{gcs_bucket}/out"
    assert run(_options(source, output, tmp_path, tiny_arch_json, gcs_client)).ok
    return source, output


def _blobs(gcs_client: Any, bucket: str, prefix: str) -> dict[str, int]:
    return {b.name: b.generation for b in gcs_client.list_blobs(bucket, prefix=prefix)}


def test_reused_only_for_the_same_source_files(
    converted: tuple[str, str], gcs_client: Any, gcs_bucket: str, tmp_path: Path, tiny_arch_json: Path
) -> None:
    source, output = converted
    assert find_verified_output(output, "llama2-7b", "bfloat16", source=source, client=gcs_client) is not None
    manifest = read_manifest(output, client=gcs_client)
    assert manifest is not None
    assert source_changes(manifest, source, client=gcs_client) == []

    # Same name, same size, different bytes: only the CRC32C tells.
    blob = gcs_client.bucket(gcs_bucket).blob("meta/a/params.json")
    data = blob.download_as_bytes()
    blob.upload_from_string(data[:-1] + (b" " if data[-1:] != b" " else b"\n"))
    changes = source_changes(manifest, source, client=gcs_client)
    assert len(changes) == 1, changes
    assert changes[0].startswith("params.json has crc32c"), changes
    assert find_verified_output(output, "llama2-7b", "bfloat16", source=source, client=gcs_client) is None
    runner = CountingRunner()
    again = run(_options(source, output, tmp_path, tiny_arch_json, gcs_client), runner=runner)
    assert again.ok
    assert again.outcome is Outcome.CONVERTED
    assert len(runner.calls) == 2

    # The same files at another location are another source.
    upload_dir(gcs_client, gcs_bucket, tmp_path / "meta", "meta/b")
    moved = f"gs://{gcs_bucket}/meta/b"
    manifest = read_manifest(output, client=gcs_client)
    assert manifest is not None
    assert source_changes(manifest, moved, client=gcs_client) == [f"converted from {source}, not from {moved}"]
    assert find_verified_output(output, "llama2-7b", "bfloat16", source=moved, client=gcs_client) is None


@pytest.mark.parametrize(
    ("manifest_bytes", "why"),
    [
        (b'{"schemaVersion": "tpuserve.dev/convert-manifest/v1", "model": ', "not JSON"),
        (b'{"schemaVersion": "tpuserve.dev/convert-manifest/v9", "model": "llama2-7b"}', "schema version"),
        (b'{"schemaVersion": "tpuserve.dev/convert-manifest/v1", "model": "llama2-7b"}', "invalid field"),
    ],
    ids=["corrupt", "unknown-version", "incomplete"],
)
def test_unreadable_manifest_is_a_conflict_and_nothing_is_deleted(
    converted: tuple[str, str],
    gcs_client: Any,
    gcs_bucket: str,
    tmp_path: Path,
    tiny_arch_json: Path,
    manifest_bytes: bytes,
    why: str,
) -> None:
    source, output = converted
    gcs_client.bucket(gcs_bucket).blob("out/tpuserve-manifest.json").upload_from_string(manifest_bytes)
    before = _blobs(gcs_client, gcs_bucket, "out/")
    with pytest.raises(ManifestUnreadable, match=why):
        find_verified_output(output, "llama2-7b", "bfloat16", source=source, client=gcs_client)
    runner = CountingRunner()
    summary = run(_options(source, output, tmp_path, tiny_arch_json, gcs_client), runner=runner)
    assert summary.reason is FailureReason.OUTPUT_CONFLICT
    assert summary.exit_code == 4
    assert f"{output}/tpuserve-manifest.json exists but cannot be read" in (summary.message or "")
    assert runner.calls == []
    assert _blobs(gcs_client, gcs_bucket, "out/") == before  # not one object deleted or rewritten
