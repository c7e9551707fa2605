"""The Hugging Face mirror's manifest (OUT/tpuserve-manifest.json, the same name as a conversion's), written last.

It records the source (repo id, revision and resolved commit, or the gs:// URI) with the listing the mirror
copied, and every mirrored file with its size and CRC32C. A later run (or the operator) reuses the mirror only
when the manifest is there, verified, for the same model and architecture, the source still lists the same
files with the same checksums, and every output file still has its recorded size and CRC32C (one listing: GCS
reports CRC32C with it).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, ValidationError

from tpuserve.convert import layout
from tpuserve.convert.hf_source import SourceFileSum
from tpuserve.convert.manifest import CamelModel, StageTimings
from tpuserve.convert.storage import Store, open_store

MIRROR_SCHEMA_VERSION = "tpuserve.dev/mirror-manifest/v1"
MODEL_DIR = layout.HF_MODEL_DIR
model_path = layout.hf_model_dir


class MirroredFile(CamelModel):
    bytes: int
    crc32c: str


class MirrorTimings(StageTimings):
    download_seconds: float = 0.0
    download_bytes: int = 0


class MirrorManifest(CamelModel):
    schema_version: str = MIRROR_SCHEMA_VERSION
    model: str
    arch: dict[str, Any] = Field(description="The catalog facts the headers were verified against.")
    source: dict[str, str] = Field(description="repoId, revision, commit; or uri.")
    source_files: list[SourceFileSum]
    output: str
    model_path: str
    files: dict[str, MirroredFile] = Field(description="File (relative to model_path) -> size and CRC32C.")
    dtype: str
    tensor_count: int
    parameter_count: int
    verified: bool
    tools: dict[str, str | None]
    timings: MirrorTimings
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def parse_mirror_manifest(raw: bytes | None) -> MirrorManifest | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("schemaVersion") != MIRROR_SCHEMA_VERSION:
            return None
        return MirrorManifest.model_validate(data)
    except (ValueError, ValidationError):
        return None


def other_manifest_owner(raw: bytes | None) -> str | None:
    """What a manifest that is not a mirror's describes ("a conversion of llama2-7b"), None for no or unreadable
    manifests (an interrupted run's leftovers are replaced)."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("schemaVersion") == MIRROR_SCHEMA_VERSION:
        return None
    if data.get("verified") and data.get("model"):
        return f"a verified MaxText conversion of {data['model']}"
    return None


def write_mirror_manifest(store: Store, manifest: MirrorManifest) -> None:
    store.write(layout.MANIFEST_NAME, manifest.model_dump_json(by_alias=True, indent=1).encode())


def output_problems(manifest: MirrorManifest, *, client: Any = None) -> list[str]:
    """Differences between the mirrored files and the manifest (missing, resized, other CRC32C); empty when
    intact. Extra files in the model directory count too: a server would load them."""
    store = open_store(manifest.model_path, client)
    listing = store.list()
    problems: list[str] = []
    for name, recorded in sorted(manifest.files.items()):
        info = listing.get(name)
        if info is None:
            problems.append(f"{manifest.model_path}/{name} is missing")
        elif info.size != recorded.bytes:
            problems.append(f"{manifest.model_path}/{name} is {info.size} bytes, the manifest says {recorded.bytes}")
        elif store.checksum(name, info) != recorded.crc32c:
            problems.append(f"{manifest.model_path}/{name} has another CRC32C than the manifest records")
    problems += [
        f"{manifest.model_path}/{n} is not in the manifest" for n in sorted(set(listing) - set(manifest.files))
    ]
    return problems


def source_problems(manifest: MirrorManifest, files: dict[str, SourceFileSum]) -> list[str]:
    """Differences between the source listing the manifest recorded and the current one."""
    recorded = {f.name: f for f in manifest.source_files}
    problems = [f"the source no longer has {n}" for n in sorted(set(recorded) - set(files))]
    problems += [f"the source has a new file {n}" for n in sorted(set(files) - set(recorded))]
    problems += [f"the source's {n} changed" for n in sorted(set(files) & set(recorded)) if files[n] != recorded[n]]
    return problems
