"""The Meta-format source checkpoint: is it complete, and staging it to local disk for MaxText.

Required for a model: every `consolidated.NN.pth` shard Meta ships for that size and `params.json`
(tpuserve.llama.LlamaArch.meta_checkpoint_files). `tokenizer.model` is listed when present but not required:
the server uses MaxText's copy of the tokenizer. MaxText's converter globs `*.pth` in the directory, so a
stray extra shard would be read too: extra `.pth` files are reported as a problem.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tpuserve import llama
from tpuserve.convert.storage import ObjectInfo, Progress, Store, checksums_of_file, open_store

OPTIONAL_FILES = ("tokenizer.model", "checklist.chk")
CHECKLIST = "checklist.chk"  # Meta's download: "<md5>  <file>" per line
_SHARD = re.compile(r"^consolidated\.(\d+)\.pth$")


class SourceStatus(StrEnum):
    COMPLETE = "Complete"  # every required file is there
    INCOMPLETE = "Incomplete"  # the directory exists but required files are missing (or extra shards)
    NOT_FOUND = "NotFound"  # nothing at that location (or its bucket does not exist)


class SourceFile(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    name: str
    bytes: int = Field(ge=0)
    crc32c: str | None = None


class SourceCheck(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    uri: str
    model: str
    status: SourceStatus
    present: dict[str, int] = Field(default_factory=dict, description="Files found (name -> bytes).")
    missing: list[str] = Field(default_factory=list, description="Required files not found.")
    unexpected: list[str] = Field(default_factory=list, description="Extra .pth shards MaxText would also read.")
    corrupt: list[str] = Field(default_factory=list, description="Files whose MD5 differs from checklist.chk.")
    message: str

    @property
    def complete(self) -> bool:
        return self.status is SourceStatus.COMPLETE


def required_files(arch: llama.LlamaArch) -> tuple[str, ...]:
    return arch.meta_checkpoint_files


def _direct_files(listing: dict[str, ObjectInfo]) -> dict[str, ObjectInfo]:
    """Files directly in the source directory (MaxText reads no subdirectories)."""
    return {name: info for name, info in listing.items() if "/" not in name}


def source_files(source: str, *, client: Any = None) -> list[SourceFile]:
    """The files directly in `source` with their sizes and CRC32C (GCS reports it in the listing; a local
    directory is checksummed)."""
    store = open_store(source, client)
    listing = _direct_files(store.list())
    return [
        SourceFile(name=name, bytes=info.size, crc32c=info.crc32c or store.checksum(name, info))
        for name, info in sorted(listing.items())
    ]


def parse_checklist(text: str) -> dict[str, str]:
    """Meta's checklist.chk (md5sum output): file name -> MD5 hex."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split()
        if len(parts) == 2 and re.fullmatch(r"[0-9a-fA-F]{32}", parts[0]):
            out[parts[1].lstrip("*").removeprefix("./")] = parts[0].lower()
    return out


def checklist_mismatches(checklist: dict[str, str], md5s: dict[str, str | None]) -> list[str]:
    """Files whose known MD5 differs from Meta's checklist."""
    return sorted(n for n, md5 in md5s.items() if md5 is not None and n in checklist and checklist[n] != md5)


def evaluate_source(
    uri: str, arch: llama.LlamaArch, listing: dict[str, ObjectInfo], checklist: dict[str, str] | None = None
) -> SourceCheck:
    """Pure: judge a directory listing (and, when the store reports MD5s, Meta's checklist) against the model."""
    files = _direct_files(listing)
    required = required_files(arch)
    if not listing:
        return SourceCheck(
            uri=uri,
            model=arch.name,
            status=SourceStatus.NOT_FOUND,
            missing=list(required),
            message=f"source {uri} not found: no files there. Upload the Meta {arch.name} checkpoint directory "
            f"({', '.join(required)}) or fix the source location.",
        )
    missing = [name for name in required if name not in files]
    expected_shards = {n for n in required if _SHARD.match(n)}
    unexpected = sorted(n for n in files if n.endswith(".pth") and n not in expected_shards)
    present = {name: info.size for name, info in sorted(files.items())}
    empty = sorted(name for name in required if name in files and files[name].size == 0)
    problems: list[str] = []
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if empty:
        problems.append(f"empty {', '.join(empty)}")
    corrupt = checklist_mismatches(checklist or {}, {n: files[n].md5_hex for n in required if n in files})
    if corrupt:
        problems.append(f"MD5 differs from {CHECKLIST} for {', '.join(corrupt)} (re-upload them)")
    if unexpected:
        problems.append(
            f"unexpected {', '.join(unexpected)} ({arch.name} has {arch.meta_shards} shard(s); MaxText would read "
            "every *.pth in the directory)"
        )
    if missing:
        nested = sorted({n.rsplit("/", 1)[0] for n in listing if "/" in n and n.rsplit("/", 1)[1] in missing})
        if nested:
            problems.append(
                f"found {', '.join(missing)} under {', '.join(d + '/' for d in nested)}: point source at that directory"
            )
    if problems:
        return SourceCheck(
            uri=uri,
            model=arch.name,
            status=SourceStatus.INCOMPLETE,
            present=present,
            missing=missing + empty,
            unexpected=unexpected,
            corrupt=corrupt,
            message=f"source {uri} is incomplete for {arch.name}: {'; '.join(problems)}. "
            f"Required: {', '.join(required)}.",
        )
    return SourceCheck(
        uri=uri,
        model=arch.name,
        status=SourceStatus.COMPLETE,
        present=present,
        message=f"source {uri} has all {len(required)} required files for {arch.name} "
        f"({sum(files[n].size for n in required) / 1e9:.2f} GB).",
    )


def check_source(uri: str, model: str, *, client: Any = None, arch: llama.LlamaArch | None = None) -> SourceCheck:
    """What is present and missing at a Meta checkpoint location (gs:// or local). A missing bucket is NotFound;
    permission errors propagate (google.api_core.exceptions.Forbidden)."""
    arch = arch or llama.arch(model)
    from google.api_core import exceptions as gcs_errors

    store = open_store(uri, client)
    try:
        listing = store.list()
    except gcs_errors.NotFound:  # the bucket does not exist; 403 and network errors propagate
        listing = {}
    checklist = parse_checklist(store.read(CHECKLIST).decode("utf-8", "replace")) if CHECKLIST in listing else None
    return evaluate_source(uri, arch, listing, checklist)


def stage_source(
    store: Store,
    arch: llama.LlamaArch,
    dest: Path,
    *,
    workers: int = 8,
    progress_interval: float = 5.0,
) -> tuple[list[SourceFile], float]:
    """Download the required files (and the tokenizer if present) into `dest` with parallel ranged reads, check
    each against the source's CRC32C, and return the files with sizes and checksums plus the seconds it took."""
    listing = _direct_files(store.list())
    names = [n for n in required_files(arch) if n in listing] + [n for n in OPTIONAL_FILES if n in listing]
    total = sum(listing[n].size for n in names)
    progress = Progress("staging source", total, interval=progress_interval)
    files: list[SourceFile] = []
    checklist = parse_checklist(store.read(CHECKLIST).decode("utf-8", "replace")) if CHECKLIST in listing else {}
    for name in names:
        info = store.download(name, dest / name, workers=workers, progress=progress)
        local_crc, local_md5 = checksums_of_file(dest / name, md5=name in checklist)
        if checklist_mismatches(checklist, {name: local_md5}):
            raise OSError(f"{name}: MD5 {local_md5} differs from {CHECKLIST} ({checklist[name]}); re-upload it")
        remote_crc = info.crc32c or listing[name].crc32c
        if remote_crc is not None and remote_crc != local_crc:
            raise OSError(f"checksum mismatch for {name}: source crc32c {remote_crc}, downloaded {local_crc}")
        if (dest / name).stat().st_size != listing[name].size:
            raise OSError(f"size mismatch for {name}: source {listing[name].size} bytes, downloaded fewer")
        files.append(SourceFile(name=name, bytes=listing[name].size, crc32c=local_crc))
    return files, progress.seconds


def describe_local_source(store: Store, arch: llama.LlamaArch) -> list[SourceFile]:
    """Sizes and checksums of a local source used in place (not copied)."""
    listing = _direct_files(store.list())
    names = [n for n in required_files(arch) if n in listing] + [n for n in OPTIONAL_FILES if n in listing]
    checklist = parse_checklist(store.read(CHECKLIST).decode("utf-8", "replace")) if CHECKLIST in listing else {}
    files = []
    for name in names:
        crc, md5 = checksums_of_file(Path(store.uri) / name, md5=name in checklist)
        if checklist_mismatches(checklist, {name: md5}):
            raise OSError(f"{name}: MD5 {md5} differs from {CHECKLIST} ({checklist[name]})")
        files.append(SourceFile(name=name, bytes=listing[name].size, crc32c=crc))
    return files
