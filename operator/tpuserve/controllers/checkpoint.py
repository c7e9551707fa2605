"""LlamaCheckpoint → (reuse a verified output | conversion Job) → Ready with the checkpoint paths.

Steps, in order: format huggingface goes to mirror.py; a finished generation stays as it is; a Job of an older
generation is replaced; an existing Job is observed; else GCS is checked (a verified output is reused, a missing
or incomplete source fails), an output that Ready servers load from is refused, and the Job is created. The steps
return a typed `Observed`; checkpoint_status.compute_status turns it into the status, written once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from tpuserve.api import CheckpointFormat, CheckpointPhase, ConverterPreset, LlamaCheckpoint, LlamaCheckpointStatus
from tpuserve.controllers import checkpoint_guard, converter_pods, kube, mirror, naming, observe, render
from tpuserve.controllers.checkpoint_status import (
    Checkpoint,
    Observed,
    compute_status,
    finished,
    job_failure_message,
    owned_job,
)
from tpuserve.controllers.reconcile import Controller, Verdict
from tpuserve.controllers.status import Reason

log = logging.getLogger(__name__)
T = TypeVar("T")
KIND = "LlamaCheckpoint"


def _transient_gcs_error(exc: BaseException) -> bool:
    """Errors that mean 'GCS not reachable right now' (retry), as opposed to a definite answer."""
    import requests
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc

    transient = (
        gexc.ServiceUnavailable,
        gexc.InternalServerError,
        gexc.TooManyRequests,
        gexc.GatewayTimeout,
        gexc.BadGateway,
        gexc.RetryError,
        gexc.Forbidden,  # Workload Identity bindings take minutes to propagate: keep retrying, say so
        aexc.TransportError,
        aexc.DefaultCredentialsError,
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        ConnectionError,
        TimeoutError,
    )
    return isinstance(exc, transient)


_GCS_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gcs")


def _gcs_call(ctx: kube.Context, call: Callable[[], T]) -> T:
    """Run a GCS call with a deadline: google-cloud-storage itself retries connection errors for up to 120 s,
    which would hold a handler thread; past the deadline it counts as 'GCS unavailable' (retried later)."""
    future = _GCS_POOL.submit(call)
    try:
        return future.result(timeout=ctx.settings.gcs_timeout_seconds)
    except FutureTimeout:
        raise TimeoutError(f"no answer from GCS within {ctx.settings.gcs_timeout_seconds:g}s") from None


def reconcile_checkpoint(ctx: kube.Context, namespace: str, name: str) -> None:
    CONTROLLER(ctx, namespace, name)


def _reconcile(ctx: kube.Context, ckpt: Checkpoint) -> Verdict:
    if ckpt.obj.spec.format == CheckpointFormat.HUGGING_FACE:
        return mirror.reconcile_mirror(ctx, ckpt)
    if finished(ckpt):
        return Verdict(ckpt.old, Reason.ACCEPTED)  # terminal for this generation; a spec change starts over
    job_name = naming.job_name_convert(ckpt.name)
    job = owned_job(ctx, ckpt, job_name)
    observed = observe_job(ctx, ckpt, job, job_name) if job is not None else start(ctx, ckpt, job_name)
    return compute_status(ckpt, observed)


CONTROLLER = Controller("LlamaCheckpoint", LlamaCheckpoint, LlamaCheckpointStatus, _reconcile)


# --- steps before the Job ---------------------------------------------------------------------------------


def start(ctx: kube.Context, ckpt: Checkpoint, job_name: str) -> Observed:
    """Check GCS, refuse an output in use, then create the conversion Job."""
    spec = ckpt.obj.spec
    if ctx.settings.check_gcs:
        verdict = check_gcs(ctx, ckpt)
        if verdict is not None:
            return verdict
    in_use = checkpoint_guard.servers_loading_from(ctx, ckpt.namespace, spec.output)
    if in_use:
        message = checkpoint_guard.in_use_message(spec.output, in_use)
        return Observed(CheckpointPhase.FAILED, Reason.OUTPUT_IN_USE, message, False, False)
    kube.ensure_child(ctx, KIND, render.render_convert_job(spec, ckpt.meta, ctx.settings), patchable=False)
    message = f"conversion Job {job_name} started: {spec.source} → {spec.output}"
    cleared = {"scanned_path": None, "unscanned_path": None}
    return Observed(
        CheckpointPhase.CONVERTING, Reason.CONVERTING, message, False, False, job_name, started=True, record=cleared
    )


def check_gcs(ctx: kube.Context, ckpt: Checkpoint) -> Observed | None:
    """A verified output to reuse, or a source that cannot be converted; None: go ahead with a Job."""
    from tpuserve.convert.manifest import ManifestUnreadable
    from tpuserve.convert.source import SourceStatus, check_source

    spec = ckpt.obj.spec
    try:
        reused = reuse_verified_output(ctx, ckpt)
        if reused is not None:
            return reused
        check = _gcs_call(ctx, lambda: check_source(spec.meta_source, spec.model, client=ctx.gcs()))
    except ManifestUnreadable as exc:
        return Observed(CheckpointPhase.FAILED, Reason.OUTPUT_CONFLICT, str(exc), False, False)
    except Exception as exc:
        if not _transient_gcs_error(exc):
            raise
        ctx.metrics.gcs_errors.labels("check_source").inc()
        message = (
            f"GCS unavailable ({type(exc).__name__}: {str(exc)[:200]}); retrying in {ctx.settings.gcs_retry_seconds:g}s"
        )
        retry = ctx.settings.gcs_retry_seconds
        return Observed(CheckpointPhase.PENDING, Reason.GCS_UNAVAILABLE, message, False, None, retry_after=retry)
    if check.status == SourceStatus.NOT_FOUND:
        message = (
            f"nothing found at {spec.source}: upload Meta's {spec.model} checkpoint there "
            "(consolidated.NN.pth, params.json) or fix spec.source. " + check.message
        )
        return Observed(CheckpointPhase.FAILED, Reason.SOURCE_NOT_FOUND, message, False, False)
    if check.status != SourceStatus.COMPLETE:
        missing = ", ".join(check.missing) or "see message"
        message = f"{spec.source} is missing {missing}: upload them and edit the object to retry. " + check.message
        return Observed(CheckpointPhase.FAILED, Reason.SOURCE_INCOMPLETE, message, False, False)
    return None


def reuse_verified_output(ctx: kube.Context, ckpt: Checkpoint) -> Observed | None:
    """spec.output already holds a verified conversion of this spec (tpuserve converter only): Ready, no Job."""
    from tpuserve.convert import layout
    from tpuserve.convert.manifest import find_verified_output

    spec = ckpt.obj.spec
    if spec.converter.preset != ConverterPreset.TPUSERVE:
        return None
    quantization = str(spec.quantization) if spec.quantization else None
    manifest = _gcs_call(
        ctx,
        lambda: find_verified_output(
            spec.output, spec.model, str(spec.weight_dtype), quantization, source=spec.source, client=ctx.gcs()
        ),
    )
    if manifest is None:
        return None
    record = {
        "scanned_path": manifest.scanned_path,
        "unscanned_path": manifest.unscanned_path,
        "parameter_count": manifest.parameter_count,
        "manifest_path": layout.manifest_path(spec.output),
    }
    message = f"{spec.output} already holds a verified {spec.model} conversion; no conversion Job needed"
    return Observed(CheckpointPhase.READY, Reason.REUSED_OUTPUT, message, True, True, completed=True, record=record)


# --- the Job ----------------------------------------------------------------------------------------------

_SUMMARY_REASONS = {
    "SourceNotFound": Reason.SOURCE_NOT_FOUND,
    "SourceIncomplete": Reason.SOURCE_INCOMPLETE,
    "OutputConflict": Reason.OUTPUT_CONFLICT,
}


def observe_job(ctx: kube.Context, ckpt: Checkpoint, job: dict[str, Any], job_name: str) -> Observed:
    spec, seen = ckpt.obj.spec, converter_pods.read_job(ctx, job)
    state, pods, summary = seen.state, seen.pods, seen.summary
    if state.outcome == observe.JobOutcome.RUNNING:
        unschedulable = observe.unschedulable_message(pods)
        message = f"conversion Job {job_name} is running"
        if unschedulable:
            message = f"conversion Job {job_name} cannot be scheduled: {unschedulable}"
        return Observed(CheckpointPhase.CONVERTING, Reason.CONVERTING, message, False, False, job_name)
    if state.outcome == observe.JobOutcome.FAILED:
        reason = Reason.CONVERSION_FAILED
        if summary is not None and not summary.ok:
            reason = _SUMMARY_REASONS.get(str(summary.reason), Reason.CONVERSION_FAILED)
        text = None if summary is not None and not summary.ok else converter_pods.last_converter_message(pods)
        message = _failure_message(job_name, state, summary, text)
        return Observed(CheckpointPhase.FAILED, reason, message, False, False, job_name, completed=True)
    problem = checkpoint_guard.summary_problem(spec, summary)
    if problem is not None:
        message = f"conversion Job {job_name} exited 0 but {problem}; not Ready (see kubectl logs job/{job_name})"
        return Observed(CheckpointPhase.FAILED, Reason.INVALID_SUMMARY, message, False, False, job_name, completed=True)
    scanned, unscanned = render.converter_output_paths(spec)
    record: dict[str, Any] = {}
    if summary is not None and summary.ok:
        scanned, unscanned = summary.scanned_path or scanned, summary.unscanned_path or unscanned
        record = {"manifest_path": summary.manifest_path, "parameter_count": summary.parameter_count}
    record.update(scanned_path=scanned, unscanned_path=unscanned)
    reused = summary is not None and summary.outcome == "reused"
    message = f"converted{' (verified output reused by the converter)' if reused else ''}: servers can load {unscanned}"
    return Observed(
        CheckpointPhase.READY, Reason.CONVERTED, message, True, True, job_name, completed=True, record=record
    )


def _failure_message(job_name: str, state: observe.JobState, summary: Any, text: str | None) -> str:
    return (
        job_failure_message("conversion", job_name, state, summary, text)
        + f"; fix the cause and edit the LlamaCheckpoint to retry (see kubectl logs job/{job_name})"
    )
