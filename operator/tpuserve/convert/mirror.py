"""`tpuserve convert mirror`: copy a Hugging Face model (hub repo at a revision, or a gs:// directory) into
OUT/hf with checksums, verify every safetensors header against the catalog, write the manifest last.

The guarantees are the conversion's (tpuserve.convert.run): nothing is deleted before the source is known to be
complete; the manifest goes first when an output is replaced and is written only after every file is uploaded
with a matching CRC32C and every header in place matches the model, so an interrupted run leaves no manifest
and the next one replaces the partial copy; an intact mirror of the same source is reused without uploading.
Files are copied one at a time through the scratch directory (a Llama 3.1 70B shard is about 5 GB), each
checked against the source's own checksum (hub SHA-256 / git blob id, GCS CRC32C) and, for safetensors, its
header checked before it is uploaded.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tpuserve import __version__, llama
from tpuserve.convert import hf_expected, layout
from tpuserve.convert.hf_source import (
    CONFIG_NAME,
    HubSource,
    HubUnavailableError,
    ModelSource,
    RetryPolicy,
    SourceError,
    SourceListing,
    StoreSource,
    content_mismatch,
    parse_index_shards,
    required_missing,
)
from tpuserve.convert.manifest import read_raw_manifest
from tpuserve.convert.mirror_manifest import (
    MODEL_DIR,
    MirroredFile,
    MirrorManifest,
    MirrorTimings,
    model_path,
    other_manifest_owner,
    output_problems,
    parse_mirror_manifest,
    source_problems,
    write_mirror_manifest,
)
from tpuserve.convert.run import run_work_dir
from tpuserve.convert.safetensors_header import (
    INDEX_NAME,
    compare_headers,
    parameter_count,
    read_header,
)
from tpuserve.convert.steps import CommonOptions, ConversionError, load_arch
from tpuserve.convert.storage import LocalStore, checksums_of_file, open_store
from tpuserve.convert.summary import ConvertSummary, FailureReason, Outcome

COMMIT_HASH = re.compile(r"^[0-9a-f]{40}$")  # a hub revision that names a commit
# A corrupted transfer is downloaded again this many times before the file counts as corrupt at the source.
DOWNLOAD_ATTEMPTS = 3


@dataclass
class MirrorOptions(CommonOptions):
    model: str
    output: str
    repo_id: str | None = None  # exactly one of repo_id and source
    revision: str = "main"
    source: str | None = None  # gs:// (or local) Hugging Face model directory
    token: str | None = None
    token_source: str = "HF_TOKEN"
    endpoint: str | None = None  # HF_ENDPOINT
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep


def log(message: str) -> None:
    print(f"tpuserve convert mirror: {message}", file=sys.stderr, flush=True)


@dataclass
class _Context:
    options: MirrorOptions
    started: float = field(default_factory=time.monotonic)
    timings: MirrorTimings = field(default_factory=MirrorTimings)

    def summary(self, outcome: Outcome, reason: FailureReason | None = None, **fields: Any) -> ConvertSummary:
        o = self.options
        return ConvertSummary(
            ok=reason is None,
            outcome=outcome,
            reason=reason,
            model=o.model,
            weight_dtype="as published",
            duration_seconds=round(time.monotonic() - self.started, 3),
            **fields,
        )

    def failed(self, reason: FailureReason, message: str, **fields: Any) -> ConvertSummary:
        log(f"FAILED ({reason.value}): {message}")
        return self.summary(Outcome.FAILED, reason, message=message, **fields)


class _Failed(Exception):
    def __init__(self, summary: ConvertSummary) -> None:
        super().__init__(summary.message)
        self.summary = summary


def make_source(o: MirrorOptions) -> ModelSource:
    if (o.repo_id is None) == (o.source is None):
        raise ConversionError("give exactly one of --repo-id (a Hugging Face repo) and --source (a gs:// directory)")
    if o.repo_id is not None:
        return HubSource(
            o.repo_id, o.revision, o.token, o.endpoint, token_source=o.token_source, policy=o.policy, sleep=o.sleep
        )
    assert o.source is not None
    return StoreSource(o.source, o.client, workers=o.download_workers)


def mirror(options: MirrorOptions) -> ConvertSummary:
    """The whole mirror. Never raises for expected failures: the summary says what went wrong."""
    ctx = _Context(options)
    try:
        arch = load_arch(options.model, options.arch_json)
        return _mirror(ctx, arch, make_source(options))
    except _Failed as failed:
        return failed.summary
    except SourceError as exc:
        return ctx.failed(FailureReason(exc.kind), str(exc))
    except HubUnavailableError as exc:
        return ctx.failed(
            FailureReason.HUB_UNAVAILABLE,
            f"{exc}; no manifest was written (the next run replaces anything half-copied): run the mirror again later",
        )
    except (ConversionError, ValueError) as exc:
        return ctx.failed(FailureReason.ERROR, str(exc))
    except Exception as exc:  # storage and other unexpected errors still produce a summary
        return ctx.failed(FailureReason.ERROR, f"{type(exc).__name__}: {exc}")


def _paths(output: str) -> dict[str, Any]:
    return {"model_path": model_path(output), "manifest_path": layout.manifest_path(output)}


def _mirror(ctx: _Context, arch: llama.LlamaArch, source: ModelSource) -> ConvertSummary:
    o = ctx.options
    work = run_work_dir(o.work_dir)
    shutil.rmtree(work, ignore_errors=True)  # left by an earlier container of the same pod
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _mirror_in(ctx, arch, source, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _mirror_in(ctx: _Context, arch: llama.LlamaArch, source: ModelSource, work: Path) -> ConvertSummary:
    o = ctx.options
    pinned = _reuse_pinned_commit(ctx, arch)
    if pinned is not None:
        return pinned
    listing = source.listing()
    log(f"{listing.description}: {len(listing.files)} files to mirror, {_mb(listing)} MB")
    if not listing.files:
        return ctx.failed(FailureReason.SOURCE_NOT_FOUND, f"nothing to mirror at {listing.description}")

    # 1. Reuse an intact mirror of the same source (its listing, index included, is unchanged: nothing is
    #    downloaded); refuse to overwrite another model's output.
    out_store = open_store(o.output, o.client)
    facts = hf_expected.catalog_facts(arch)
    raw = read_raw_manifest(o.output, client=o.client)
    existing = parse_mirror_manifest(raw)
    if existing is not None and not o.force:
        reasons = _reuse_blockers(existing, o, facts, listing)
        if not reasons:
            log(f"reusing the verified mirror at {existing.model_path} (manifest of {existing.created_at.isoformat()})")
            return ctx.summary(
                Outcome.REUSED,
                message=f"a verified mirror of {listing.description} exists at {existing.model_path}",
                parameter_count=existing.parameter_count,
                **_paths(o.output),
            )
        if existing.verified and existing.model != o.model:
            return ctx.failed(
                FailureReason.OUTPUT_CONFLICT,
                f"{o.output} already holds a verified mirror of {existing.model}; choose another output or pass "
                "--force to replace it",
                **_paths(o.output),
            )
        log("replacing the mirror at " + existing.model_path + ": " + "; ".join(reasons[:5]))
    owner = other_manifest_owner(raw)
    if owner is not None and not o.force:
        return ctx.failed(
            FailureReason.OUTPUT_CONFLICT,
            f"{o.output} already holds {owner}; choose another output or pass --force to replace it",
            **_paths(o.output),
        )

    # 2. The source must be complete before anything is deleted (the index names the shards).
    shards: list[str] | None = None
    if INDEX_NAME in listing.files:
        _fetch_checked(ctx, source, listing, INDEX_NAME, work / INDEX_NAME)
        shards = parse_index_shards((work / INDEX_NAME).read_bytes())
    missing = required_missing(set(listing.files), shards)
    if missing:
        return ctx.failed(
            FailureReason.SOURCE_INCOMPLETE,
            f"{listing.description} lacks {', '.join(missing)}: not a complete Hugging Face model directory",
            missing=missing,
        )

    # 3. Clear: the manifest first, so that from here until the new one is written the output is "partial".
    for name in out_store.list(layout.MANIFEST_NAME):
        out_store.delete_prefix(name)
    removed = out_store.delete_prefix(MODEL_DIR)
    if removed:
        log(f"removed {removed} files of a partial or replaced mirror under {model_path(o.output)}")

    # 4. Copy file by file: download, check against the source's checksum and the catalog, upload.
    expected = hf_expected.tensor_shapes(arch)
    dtype = hf_expected.dtype(arch)
    mirrored: dict[str, MirroredFile] = {}
    model_store = open_store(model_path(o.output), o.client)
    for name in sorted(listing.files):
        local = work / "files" / name
        started = time.monotonic()
        _fetch_checked(ctx, source, listing, name, local)
        ctx.timings.download_seconds = round(ctx.timings.download_seconds + time.monotonic() - started, 3)
        ctx.timings.download_bytes += local.stat().st_size
        if name.endswith(".safetensors"):
            header = read_header(LocalStore(local.parent), name, local.stat().st_size)
            problems = compare_headers([header], expected, dtype, None, complete=False)
            if problems:
                raise _Failed(_verification_failed(ctx, arch, listing, problems))
        crc32c = checksums_of_file(local)[0]
        started = time.monotonic()
        model_store.upload_file(local, name)
        ctx.timings.upload_seconds = round(ctx.timings.upload_seconds + time.monotonic() - started, 3)
        mirrored[name] = MirroredFile(bytes=local.stat().st_size, crc32c=crc32c)
        log(f"mirrored {name} ({mirrored[name].bytes:,} bytes, CRC32C {crc32c})")
        local.unlink()

    # 5. Verify in place: every file's size and CRC32C as uploaded, every header, config.json.
    started = time.monotonic()
    listing_out = model_store.list()
    problems = []
    for name, recorded in mirrored.items():
        info = listing_out.get(name)
        if info is None or info.size != recorded.bytes or model_store.checksum(name, info) != recorded.crc32c:
            problems.append(f"{model_path(o.output)}/{name} does not have the size and CRC32C that was uploaded")
    headers = [read_header(model_store, n, mirrored[n].bytes) for n in sorted(mirrored) if n.endswith(".safetensors")]
    index = json.loads(model_store.read(INDEX_NAME)) if INDEX_NAME in mirrored else None
    problems += compare_headers(headers, expected, dtype, index)
    problems += hf_expected.config_mismatches(json.loads(model_store.read(CONFIG_NAME)), arch)
    ctx.timings.verify_seconds = round(time.monotonic() - started, 3)
    if problems:
        return _verification_failed(ctx, arch, listing, problems)

    # 6. The manifest, last.
    ctx.timings.total_seconds = round(time.monotonic() - ctx.started, 3)
    count = parameter_count(headers)
    manifest = MirrorManifest(
        model=o.model,
        arch=facts,
        source=listing.identity,
        source_files=list(listing.files.values()),
        output=o.output,
        model_path=model_path(o.output),
        files=mirrored,
        dtype=dtype,
        tensor_count=sum(len(h.tensors) for h in headers),
        parameter_count=count,
        verified=True,
        tools=_tools(),
        timings=ctx.timings,
    )
    write_mirror_manifest(out_store, manifest)
    log(f"done: {model_path(o.output)} verified ({count:,} parameters); manifest {layout.manifest_path(o.output)}")
    return ctx.summary(
        Outcome.MIRRORED,
        message=f"mirrored and verified {listing.description} ({len(mirrored)} files)",
        parameter_count=count,
        **_paths(o.output),
    )


def _reuse_pinned_commit(ctx: _Context, arch: llama.LlamaArch) -> ConvertSummary | None:
    """A hub revision that is a commit hash cannot change, so an intact mirror of that commit is reused without
    asking the hub (snapshot_download skips the hub for commit hashes too): a hub outage or a revoked token does
    not hold up a model that is already mirrored and verified."""
    o = ctx.options
    if o.force or o.repo_id is None or not COMMIT_HASH.fullmatch(o.revision):
        return None
    existing = parse_mirror_manifest(read_raw_manifest(o.output, client=o.client))
    if (
        existing is None
        or not existing.verified
        or existing.model != o.model
        or existing.arch != hf_expected.catalog_facts(arch)
        or existing.source.get("repoId") != o.repo_id
        or existing.source.get("commit") != o.revision
        or existing.model_path != model_path(o.output)
        or output_problems(existing, client=o.client)
    ):
        return None
    log(f"reusing the verified mirror of commit {o.revision} at {existing.model_path} without asking the hub")
    return ctx.summary(
        Outcome.REUSED,
        message=f"a verified mirror of hf://{o.repo_id}@{o.revision} exists at {existing.model_path}",
        parameter_count=existing.parameter_count,
        **_paths(o.output),
    )


def _mb(listing: SourceListing) -> str:
    return f"{sum(f.bytes for f in listing.files.values()) / 1e6:.1f}"


def _reuse_blockers(
    manifest: MirrorManifest, o: MirrorOptions, facts: dict[str, Any], listing: SourceListing
) -> list[str]:
    """Why an existing mirror manifest cannot be reused (empty: reuse it)."""
    if not manifest.verified:
        return ["the manifest is not marked verified"]
    if manifest.model != o.model or manifest.arch != facts:
        return [f"it is a mirror of {manifest.model} with other architecture facts"]
    if manifest.model_path != model_path(o.output):
        return [f"it describes {manifest.model_path}"]
    same_source = {k: v for k, v in manifest.source.items() if k in ("repoId", "uri")}
    if same_source != {k: v for k, v in listing.identity.items() if k in ("repoId", "uri")}:
        return [f"it mirrors another source ({manifest.source})"]
    return source_problems(manifest, listing.files) or output_problems(manifest, client=o.client)


def _fetch_checked(ctx: _Context, source: ModelSource, listing: SourceListing, name: str, dest: Path) -> None:
    """Download `name` and check it against the source's listing; a mismatch is downloaded again (a corrupted
    transfer), then reported as corrupt at the source."""
    entry = listing.files[name]
    problem: str | None = None
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        dest.unlink(missing_ok=True)
        source.download(entry, dest)
        problem = content_mismatch(entry, dest)
        if problem is None:
            return
        log(f"attempt {attempt} of {DOWNLOAD_ATTEMPTS}: {problem}")
    raise _Failed(
        ctx.failed(
            FailureReason.VERIFICATION_FAILED,
            f"{listing.description}: {problem} after {DOWNLOAD_ATTEMPTS} downloads; the file is corrupt at the "
            "source or in transit. Nothing was marked ready.",
            mismatches=[problem] if problem else [],
        )
    )


def _verification_failed(
    ctx: _Context, arch: llama.LlamaArch, listing: SourceListing, problems: list[str]
) -> ConvertSummary:
    return ctx.failed(
        FailureReason.VERIFICATION_FAILED,
        f"{listing.description} does not match {arch.name}: {len(problems)} problem(s), first: {problems[0]}",
        mismatches=problems,
        **_paths(ctx.options.output),
    )


def _tools() -> dict[str, str | None]:
    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {"tpuserve": __version__, "huggingface_hub": version("huggingface_hub"), "python": sys.version.split()[0]}


def options_from_env(**kwargs: Any) -> MirrorOptions:
    """Options with the hub endpoint and token read from the environment (HF_ENDPOINT, HF_TOKEN) at run time."""
    return MirrorOptions(
        endpoint=os.environ.get("HF_ENDPOINT") or None, token=os.environ.get("HF_TOKEN") or None, **kwargs
    )
