"""The conversion manifest (OUT/tpuserve-manifest.json), written last, and finding a verified output by it.

The manifest is the commit marker of a conversion: it is written only after both checkpoints were uploaded
and verified. It lists every file of both checkpoints with its size, so a later reader can tell that the
output is still the one that was verified (a deleted or truncated file is noticed with one listing).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from tpuserve.convert import layout
from tpuserve.convert.source import SourceFile, source_files
from tpuserve.convert.storage import open_store

MANIFEST_SCHEMA_VERSION = "tpuserve.dev/convert-manifest/v1"


class ManifestUnreadable(Exception):
    """A manifest exists but is not one this version can read (corrupt, or another schema version). Whoever finds
    it must stop: the output may be someone's finished checkpoint, so it is never a reason to clear the output."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        super().__init__(
            f"{path} exists but cannot be read ({why}); nothing was changed: delete it if the output may be "
            "replaced, or choose another spec.output"
        )


class CamelModel(BaseModel):
    """camelCase on the wire; unknown keys ignored (a newer writer may add some)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ToolVersions(CamelModel):
    tpuserve: str
    maxtext_release: str
    maxtext_commit: str
    conversion_step: str = Field(description="`maxtext` or `synthetic` (test stand-in, random weights).")
    orbax_checkpoint: str | None = None
    jax: str | None = None
    tensorstore: str | None = None
    torch: str | None = None
    python: str | None = None


class StageTimings(CamelModel):
    """What every checkpoint Job (conversion or mirror) times the same way: its verification, its upload, all."""

    verify_seconds: float = 0.0
    upload_seconds: float = 0.0
    total_seconds: float = 0.0


class Timings(StageTimings):
    staging_seconds: float = 0.0
    staging_bytes: int = 0
    scanned_seconds: float = 0.0
    unscanned_seconds: float = 0.0
    quantize_seconds: float = 0.0
    upload_bytes: int = 0


class OutputFiles(CamelModel):
    path: str
    files: dict[str, int] = Field(description="File (relative to path) -> bytes.")


class ConversionManifest(CamelModel):
    schema_version: str = MANIFEST_SCHEMA_VERSION
    model: str
    weight_dtype: str
    quantization: str | None = None
    arch: dict[str, Any] = Field(description="The architecture verified against (tpuserve.llama.LlamaArch fields).")
    source: str
    sources: list[SourceFile]
    output: str
    scanned_path: str
    unscanned_path: str
    quantized_path: str | None = None
    checkpoints: list[OutputFiles] = Field(default_factory=list)
    parameter_count: int
    verified: bool
    tools: ToolVersions
    timings: Timings
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def matches(self, model: str, weight_dtype: str, quantization: str | None) -> bool:
        return self.model == model and self.weight_dtype == weight_dtype and self.quantization == quantization


def read_raw_manifest(output: str, *, client: Any = None) -> bytes | None:
    """The bytes of the manifest file under `output` (a conversion's or a mirror's), None when there is none."""
    store = open_store(output, client)
    try:
        return store.read(layout.MANIFEST_NAME)
    except FileNotFoundError:
        return None
    except Exception as exc:  # google.api_core NotFound for gs://
        if type(exc).__name__ == "NotFound":
            return None
        raise


def read_manifest(output: str, *, client: Any = None) -> ConversionManifest | None:
    """The manifest under `output`, or None when absent; ManifestUnreadable when present but unreadable."""
    raw = read_raw_manifest(output, client=client)
    if raw is None:
        return None
    path = layout.manifest_path(output)
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ManifestUnreadable(path, f"not JSON: {exc}") from None
    version = data.get("schemaVersion") if isinstance(data, dict) else None
    if version != MANIFEST_SCHEMA_VERSION:
        raise ManifestUnreadable(path, f"schema version {version!r}, this converter reads {MANIFEST_SCHEMA_VERSION}")
    try:
        return ConversionManifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestUnreadable(path, f"{exc.error_count()} invalid field(s): {str(exc)[:300]}") from None


def write_manifest(output: str, manifest: ConversionManifest, *, client: Any = None) -> str:
    store = open_store(output, client)
    store.write(layout.MANIFEST_NAME, manifest.model_dump_json(by_alias=True, indent=1).encode())
    return layout.manifest_path(output)


def files_still_there(manifest: ConversionManifest, *, client: Any = None) -> list[str]:
    """Problems with the output's files compared with the manifest (missing or resized), empty when intact."""
    problems: list[str] = []
    for checkpoint in manifest.checkpoints:
        listing = open_store(checkpoint.path, client).list()
        for name, size in checkpoint.files.items():
            info = listing.get(name)
            if info is None:
                problems.append(f"{checkpoint.path}/{name} is missing")
            elif info.size != size:
                problems.append(f"{checkpoint.path}/{name} is {info.size} bytes, manifest says {size}")
    return problems


def source_changes(manifest: ConversionManifest, source: str, *, client: Any = None) -> list[str]:
    """How the source now differs from the one the manifest was converted from (empty when it is the same): the
    location, and each file the conversion read (the manifest's record) by size and CRC32C in a fresh listing."""
    if manifest.source.rstrip("/") != source.rstrip("/"):
        return [f"converted from {manifest.source}, not from {source}"]
    now = {f.name: f for f in source_files(source, client=client)}
    changes: list[str] = []
    for recorded in manifest.sources:
        current = now.get(recorded.name)
        if current is None:
            changes.append(f"{recorded.name} is gone from the source")
        elif current.bytes != recorded.bytes:
            changes.append(f"{recorded.name} is {current.bytes} bytes, was {recorded.bytes}")
        elif current.crc32c is None or current.crc32c != recorded.crc32c:
            changes.append(f"{recorded.name} has crc32c {current.crc32c}, was {recorded.crc32c}")
    return changes


def find_verified_output(
    output: str,
    model: str,
    weight_dtype: str,
    quantization: str | None = None,
    *,
    source: str | None = None,
    client: Any = None,
    arch: dict[str, Any] | None = None,
) -> ConversionManifest | None:
    """The manifest of a finished, verified conversion of (model, dtype, quantization) at `output` whose files are
    all still there with their recorded sizes and, when `source` is given, that was converted from exactly the
    files `source` holds now (location, sizes, CRC32C); None otherwise. A few listings and one small read. `arch`
    (the LlamaArch fields) is compared too when given (tests convert tiny architectures under real model names).
    An unreadable manifest raises ManifestUnreadable (never "absent")."""
    manifest = read_manifest(output, client=client)
    if manifest is None or not manifest.verified or not manifest.matches(model, weight_dtype, quantization):
        return None
    if arch is not None and manifest.arch != arch:
        return None
    if manifest.unscanned_path != layout.unscanned_items(output) or not manifest.checkpoints:
        return None
    if files_still_there(manifest, client=client):
        return None
    if source is not None and source_changes(manifest, source, client=client):
        return None
    return manifest
