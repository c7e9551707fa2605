"""`tpuserve convert run`: check, stage, convert (scanned then unscanned), verify, upload, manifest, summary.

Order matters for "never reported done when it is not": the manifest is deleted before anything under the
output is rewritten and written only after both checkpoints are uploaded and verified in place, so any
interruption leaves an output without a manifest, which the next run treats as partial and replaces.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tpuserve import llama
from tpuserve.convert import layout, maxtext, stopping
from tpuserve.convert.expected import Layout, parameter_count
from tpuserve.convert.manifest import (
    ConversionManifest,
    ManifestUnreadable,
    OutputFiles,
    Timings,
    files_still_there,
    find_verified_output,
    read_manifest,
    write_manifest,
)
from tpuserve.convert.source import SourceStatus, check_source, describe_local_source, stage_source
from tpuserve.convert.steps import CommonOptions, ConversionError, ConversionSteps, load_arch, make_steps, tool_versions
from tpuserve.convert.storage import Progress, open_store
from tpuserve.convert.summary import ConvertSummary, FailureReason, Outcome
from tpuserve.convert.verify import VerifyReport, verify_checkpoint, verify_quantized
from tpuserve.gs_uri import is_gs_uri


@dataclass
class RunOptions(CommonOptions):
    model: str
    source: str
    output: str
    weight_dtype: str = "bfloat16"
    quantization: str | None = None
    upload_workers: int = 8
    step: str = "maxtext"
    progress_interval: float = 5.0


def log(message: str) -> None:
    print(f"tpuserve convert: {message}", file=sys.stderr, flush=True)


@dataclass
class _Context:
    options: RunOptions
    arch: llama.LlamaArch
    started: float = field(default_factory=time.monotonic)
    timings: Timings = field(default_factory=Timings)

    def summary(self, outcome: Outcome, reason: FailureReason | None = None, **fields: Any) -> ConvertSummary:
        o = self.options
        base: dict[str, Any] = {
            "ok": reason is None,
            "outcome": outcome,
            "reason": reason,
            "model": o.model,
            "weight_dtype": o.weight_dtype,
            "quantization": o.quantization,
            "duration_seconds": round(time.monotonic() - self.started, 3),
        }
        base.update(fields)
        return ConvertSummary(**base)

    def failed(self, reason: FailureReason, message: str, **fields: Any) -> ConvertSummary:
        log(f"FAILED ({reason.value}): {message}")
        return self.summary(Outcome.FAILED, reason, message=message, **fields)


def run_subprocess(argv: list[str], env: dict[str, str]) -> int:
    log("running " + " ".join(argv))
    return stopping.run_step(argv, {**os.environ, **env})


def run(options: RunOptions, *, runner: Callable[[list[str], dict[str, str]], int] = run_subprocess) -> ConvertSummary:
    """The whole conversion. Never raises for expected failures: the summary says what went wrong."""
    try:
        arch = load_arch(options.model, options.arch_json)
    except (ConversionError, ValueError) as exc:
        ctx = _Context(options, llama.LlamaArch(options.model, 0, 0, 0, 0, 0, 0, 0, 0, ""))
        return ctx.failed(FailureReason.ERROR, str(exc))
    ctx = _Context(options, arch)
    try:
        return _run(ctx, runner)
    except stopping.Stopped as exc:
        return ctx.failed(
            FailureReason.TERMINATED, f"{exc}: nothing more was uploaded and no manifest was written (not Ready)"
        )
    except ConversionError as exc:
        return ctx.failed(FailureReason.ERROR, str(exc))
    except Exception as exc:  # storage and other unexpected errors still produce a summary
        return ctx.failed(FailureReason.ERROR, f"{type(exc).__name__}: {exc}")


def _paths_summary(output: str) -> dict[str, Any]:
    return {
        "scanned_path": layout.scanned_items(output),
        "unscanned_path": layout.unscanned_items(output),
        "manifest_path": layout.manifest_path(output),
    }


def _run(ctx: _Context, runner: Callable[[list[str], dict[str, str]], int]) -> ConvertSummary:
    o, arch = ctx.options, ctx.arch
    if o.weight_dtype not in maxtext.WEIGHT_DTYPES:
        return ctx.failed(
            FailureReason.ERROR, f"weight dtype {o.weight_dtype!r}: use one of {', '.join(maxtext.WEIGHT_DTYPES)}"
        )
    if o.quantization is not None and o.quantization not in maxtext.QUANTIZATION_MODES:
        return ctx.failed(
            FailureReason.ERROR,
            f"quantization {o.quantization!r} is not a mode of {maxtext.MAXTEXT_RELEASE}; "
            f"use one of {', '.join(maxtext.QUANTIZATION_MODES)} or none",
        )
    out_store = open_store(o.output, o.client)

    # 1. Reuse a verified output with a matching manifest, converted from the source as it is now. A manifest
    # that cannot be read stops everything: it may belong to someone's finished checkpoint.
    try:
        found = None
        if not o.force:
            found = find_verified_output(
                o.output,
                o.model,
                o.weight_dtype,
                o.quantization,
                source=o.source,
                client=o.client,
                arch=llama.conversion_facts(arch),
            )
        existing = read_manifest(o.output, client=o.client)
    except ManifestUnreadable as exc:
        if not o.force:
            return ctx.failed(FailureReason.OUTPUT_CONFLICT, str(exc), **_paths_summary(o.output))
        found, existing = None, None
    if not o.force and found is not None:
        log(f"reusing the verified conversion at {o.output} (manifest of {found.created_at.isoformat()})")
        return ctx.summary(
            Outcome.REUSED,
            message=f"a verified {o.model} conversion with a matching manifest exists at {o.output}",
            parameter_count=found.parameter_count,
            quantized_path=found.quantized_path,
            **_paths_summary(o.output),
        )
    conflict = (
        existing is not None
        and existing.verified
        and not o.force
        and not existing.matches(o.model, o.weight_dtype, o.quantization)
    )
    if existing is not None and conflict and not files_still_there(existing, client=o.client):
        return ctx.failed(
            FailureReason.OUTPUT_CONFLICT,
            f"{o.output} already holds a verified conversion of {existing.model} {existing.weight_dtype}"
            f"{' ' + existing.quantization if existing.quantization else ''}; choose another output or pass "
            "--force to replace it",
            **_paths_summary(o.output),
        )

    # 2. The source must be complete before anything is deleted or downloaded.
    check = check_source(o.source, o.model, client=o.client, arch=arch)
    log(check.message)
    if check.status is SourceStatus.NOT_FOUND:
        return ctx.failed(FailureReason.SOURCE_NOT_FOUND, check.message, missing=check.missing)
    if check.status is SourceStatus.INCOMPLETE:
        return ctx.failed(FailureReason.SOURCE_INCOMPLETE, check.message, missing=check.missing)
    steps = make_steps(o.step, o.arch_json)

    # 3. Anything already under the output without a matching verified manifest is partial: replace it.
    _clear_output(o.output, out_store)

    # 4. Stage the source locally (a local source is used in place).
    work = run_work_dir(o.work_dir)
    shutil.rmtree(work, ignore_errors=True)  # left by an earlier container of the same pod
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _convert(ctx, runner, steps, arch=arch, work=work, out_store=out_store)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_work_dir(base: Path) -> Path:
    """This run's scratch under --work-dir. In a pod the process is always pid 1, so a restarted container reuses
    (and first clears) the same directory; processes sharing a machine (the local test node) do not collide."""
    return base / f"run-{socket.gethostname()}-{os.getpid()}"


def _convert(
    ctx: _Context,
    runner: Callable[[list[str], dict[str, str]], int],
    steps: ConversionSteps,
    *,
    arch: llama.LlamaArch,
    work: Path,
    out_store: Any,
) -> ConvertSummary:
    o = ctx.options
    if is_gs_uri(o.source):
        staged = work / "source"
        sources, seconds = stage_source(
            open_store(o.source, o.client),
            arch,
            staged,
            workers=o.download_workers,
            progress_interval=o.progress_interval,
        )
        ctx.timings.staging_seconds = round(seconds, 3)
        ctx.timings.staging_bytes = sum(f.bytes for f in sources)
        log(
            f"staged {ctx.timings.staging_bytes / 1e6:.1f} MB in {seconds:.1f} s "
            f"({ctx.timings.staging_bytes / 1e6 / max(seconds, 1e-9):.1f} MB/s)"
        )
    else:
        staged = Path(o.source)
        sources = describe_local_source(open_store(o.source), arch)

    # 5. MaxText (or the stand-in): scanned, then unscanned, locally.
    local_out = work / "out"
    paths = maxtext.ConversionPaths(
        source_dir=str(staged),
        scanned_dir=layout.scanned_dir(str(local_out)),
        scanned_items=layout.scanned_items(str(local_out)),
        unscanned_base=str(local_out),
        unscanned_run_name=layout.UNSCANNED_RUN_NAME,
    )
    started = time.monotonic()
    code = runner(steps.scanned(o.model, paths), maxtext.CONVERSION_ENV)
    ctx.timings.scanned_seconds = round(time.monotonic() - started, 3)
    if code != 0:
        return ctx.failed(
            FailureReason.CONVERSION_FAILED,
            f"the scanned conversion ({steps.name}) exited with code {code}; see the container log above. "
            f"It needs ~{arch.weight_bytes() * 4 / 2**30:.0f} GiB of memory for {o.model}.",
        )
    if is_gs_uri(o.source):
        shutil.rmtree(staged, ignore_errors=True)  # free the disk for the unscanned checkpoint
    started = time.monotonic()
    code = runner(steps.unscanned(o.model, o.weight_dtype, paths), maxtext.CONVERSION_ENV)
    ctx.timings.unscanned_seconds = round(time.monotonic() - started, 3)
    if code != 0:
        return ctx.failed(
            FailureReason.CONVERSION_FAILED,
            f"the unscanned (param-only) conversion ({steps.name}) exited with code {code}; see the log above",
        )
    quantized_local: Path | None = None
    if o.quantization:
        quantized_local = local_out / f"quantized-{o.quantization}"
        started = time.monotonic()
        argv = steps.quantize(o.model, o.quantization, layout.unscanned_items(str(local_out)), str(quantized_local))
        code = runner(argv, maxtext.CONVERSION_ENV)
        ctx.timings.quantize_seconds = round(time.monotonic() - started, 3)
        if code != 0:
            return ctx.failed(FailureReason.CONVERSION_FAILED, f"quantization exited with code {code}")

    # 6. Verify locally before spending upload time.
    started = time.monotonic()
    reports = [
        verify_checkpoint(layout.scanned_items(str(local_out)), arch, Layout.SCANNED),
        verify_checkpoint(layout.unscanned_items(str(local_out)), arch, Layout.UNSCANNED),
    ]
    if quantized_local is not None:
        reports.append(verify_quantized(str(quantized_local), arch))
    ctx.timings.verify_seconds = round(time.monotonic() - started, 3)
    failure = _verification_failure(ctx, reports)
    if failure is not None:
        return failure

    # 7. Upload, then verify in place.
    to_upload = [(local_out / layout.SCANNED_DIR, layout.SCANNED_DIR)]
    to_upload.append((local_out / layout.UNSCANNED_RUN_NAME, layout.UNSCANNED_RUN_NAME))
    if quantized_local is not None:
        to_upload.append((quantized_local, quantized_local.name))
    total = sum(p.stat().st_size for d, _ in to_upload for p in d.rglob("*") if p.is_file())
    progress = Progress(f"uploading to {o.output}", total, interval=o.progress_interval)
    for local_dir, prefix in to_upload:
        stopping.check(f"uploading {prefix}")
        out_store.upload_tree(local_dir, prefix, workers=o.upload_workers, progress=progress)
    ctx.timings.upload_seconds = round(progress.seconds, 3)
    ctx.timings.upload_bytes = total
    if is_gs_uri(o.output) or Path(o.output).resolve() != local_out.resolve():
        started = time.monotonic()
        reports = [
            verify_checkpoint(layout.scanned_items(o.output), arch, Layout.SCANNED, client=o.client),
            verify_checkpoint(layout.unscanned_items(o.output), arch, Layout.UNSCANNED, client=o.client),
        ]
        if quantized_local is not None:
            reports.append(verify_quantized(layout.join(o.output, quantized_local.name), arch, client=o.client))
        ctx.timings.verify_seconds = round(ctx.timings.verify_seconds + time.monotonic() - started, 3)
        failure = _verification_failure(ctx, reports)
        if failure is not None:
            return failure

    # 8. The manifest, last (never after SIGTERM: the output is then not a finished conversion).
    stopping.check("writing the manifest")
    ctx.timings.total_seconds = round(time.monotonic() - ctx.started, 3)
    quantized_path = layout.join(o.output, quantized_local.name) if quantized_local is not None else None
    checkpoint_paths = [layout.scanned_items(o.output), layout.unscanned_items(o.output)]
    checkpoint_paths += [quantized_path] if quantized_path else []
    checkpoints = [
        OutputFiles(path=p, files={name: info.size for name, info in open_store(p, o.client).list().items()})
        for p in checkpoint_paths
    ]
    manifest = ConversionManifest(
        model=o.model,
        weight_dtype=o.weight_dtype,
        quantization=o.quantization,
        arch=llama.conversion_facts(arch),
        source=o.source,
        sources=sources,
        output=o.output,
        scanned_path=layout.scanned_items(o.output),
        unscanned_path=layout.unscanned_items(o.output),
        quantized_path=quantized_path,
        checkpoints=checkpoints,
        parameter_count=parameter_count(arch),
        verified=True,
        tools=tool_versions(steps.name),
        timings=ctx.timings,
    )
    write_manifest(o.output, manifest, client=o.client)
    log(f"done: {layout.unscanned_items(o.output)} verified; manifest {layout.manifest_path(o.output)}")
    return ctx.summary(
        Outcome.CONVERTED,
        message=f"converted and verified {o.model} ({steps.name} step)",
        parameter_count=manifest.parameter_count,
        quantized_path=quantized_path,
        **_paths_summary(o.output),
    )


def _clear_output(output: str, store: Any) -> None:
    # The manifest goes first: from here until the new one is written the output is "partial".
    manifest_names = list(store.list(layout.MANIFEST_NAME))
    for name in manifest_names:
        store.delete_prefix(name)
    removed = 0
    for sub in (layout.SCANNED_DIR, layout.UNSCANNED_RUN_NAME):
        removed += store.delete_prefix(sub)
    for name in list(store.list()):
        if name.startswith("quantized-"):
            removed += store.delete_prefix(name)
    if removed:
        log(f"removed {removed} files of a partial or replaced conversion under {output}")


def _verification_failure(ctx: _Context, reports: list[VerifyReport]) -> ConvertSummary | None:
    for report in reports:
        log(report.render())
    bad = [r for r in reports if not r.ok]
    if not bad:
        return None
    mismatches = [
        f"{'quantized' if r.dtype == 'quantized' else r.expected_layout.value}: {m}" for r in bad for m in r.mismatches
    ]
    return ctx.failed(
        FailureReason.VERIFICATION_FAILED,
        f"the converted checkpoint does not match {ctx.arch.name}: {len(mismatches)} mismatch(es), first: "
        f"{mismatches[0]}",
        mismatches=mismatches,
    )
