"""LlamaCheckpoint → (reuse a verified output | conversion Job) → Ready with the checkpoint paths."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import kopf
from pydantic import ValidationError

from tpuserve.api import (
    CheckpointConditionType,
    CheckpointFormat,
    CheckpointPhase,
    ConverterPreset,
    LlamaCheckpoint,
    LlamaCheckpointStatus,
)
from tpuserve.controllers import checkpoint_guard, converter_pods, kube, mirror, naming, observe, outcomes, render
from tpuserve.controllers.status import Reason, set_condition, write_status

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
    kube.reconcile_latest(ctx, KIND, namespace, name, outcomes.guarded(KIND, _reconcile))


def _reconcile(ctx: kube.Context, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    generation = meta.get("generation")
    now = kube.now()
    try:
        obj = LlamaCheckpoint.model_validate(
            {k: v for k, v in body.items() if k in ("apiVersion", "kind", "metadata", "spec")}
        )
    except ValidationError as exc:
        status = LlamaCheckpointStatus.model_validate(
            {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
        )
        status.phase, status.message, status.observed_generation = (
            CheckpointPhase.FAILED,
            f"invalid spec: {exc}",
            generation,
        )
        status.conditions = set_condition(
            status.conditions,
            CheckpointConditionType.READY,
            False,
            Reason.INVALID_SPEC,
            status.message,
            generation,
            now,
        )
        write_status(ctx, KIND, body, status, event_reason=Reason.INVALID_SPEC, warning=True)
        ctx.metrics.reconciles.labels(KIND, "invalid").inc()
        return
    if obj.spec.format == CheckpointFormat.HUGGING_FACE:
        mirror.reconcile_mirror(ctx, body, obj)
        return
    spec = obj.spec
    old = obj.status or LlamaCheckpointStatus()
    status = old.model_copy(deep=True)
    current = old.observed_generation == generation
    if current and old.phase in (CheckpointPhase.READY, CheckpointPhase.FAILED):
        ctx.metrics.set_phase(KIND, meta["namespace"], meta["name"], str(old.phase), meta.get("uid"))
        ctx.metrics.reconciles.labels(KIND, "ok").inc()
        return  # terminal for this generation; a spec change starts over

    job_name = naming.job_name_convert(meta["name"])
    job_dict = kube.get_owned_job(ctx, meta["namespace"], job_name, meta["uid"])
    if job_dict is not None:
        job_generation = (job_dict["metadata"].get("annotations") or {}).get(naming.ANNOTATION_GENERATION)
        if job_generation != str(generation):
            # The spec changed since this Job was rendered (a Job's pod template is immutable): replace it.
            kube.delete_job(ctx, job_dict)
            status.job_name = None
            job_dict = None
            raise kopf.TemporaryError("replacing the conversion Job of an older generation", delay=2)

    def done(
        phase: CheckpointPhase, reason: Reason, message: str, *, ready: bool | None, converted: bool | None
    ) -> None:
        status.phase, status.message, status.observed_generation = phase, message, generation
        status.conditions = set_condition(
            status.conditions, CheckpointConditionType.READY, ready, reason, message, generation, now
        )
        if converted is not None or reason != Reason.ACCEPTED:
            status.conditions = set_condition(
                status.conditions, CheckpointConditionType.CONVERTED, converted, reason, message, generation, now
            )
        write_status(
            ctx,
            KIND,
            body,
            status,
            event_reason=reason,
            warning=phase == CheckpointPhase.FAILED or reason == Reason.GCS_UNAVAILABLE,
        )

    if job_dict is None:
        scanned, unscanned = render.converter_output_paths(spec)
        if ctx.settings.check_gcs:
            try:
                manifest = None
                if spec.converter.preset == ConverterPreset.TPUSERVE:
                    from tpuserve.convert.manifest import find_verified_output

                    quantization = str(spec.quantization) if spec.quantization else None
                    manifest = _gcs_call(
                        ctx,
                        lambda: find_verified_output(
                            spec.output,
                            spec.model,
                            str(spec.weight_dtype),
                            quantization,
                            source=spec.source,
                            client=ctx.gcs(),
                        ),
                    )
                if manifest is not None:
                    status.scanned_path = manifest.scanned_path
                    status.unscanned_path = manifest.unscanned_path
                    status.parameter_count = manifest.parameter_count
                    from tpuserve.convert import layout

                    status.manifest_path = layout.manifest_path(spec.output)
                    status.completion_time = now
                    done(
                        CheckpointPhase.READY,
                        Reason.REUSED_OUTPUT,
                        f"{spec.output} already holds a verified {spec.model} conversion; no conversion Job needed",
                        ready=True,
                        converted=True,
                    )
                    ctx.metrics.reconciles.labels(KIND, "ok").inc()
                    return
                from tpuserve.convert.source import SourceStatus, check_source

                check = _gcs_call(ctx, lambda: check_source(spec.meta_source, spec.model, client=ctx.gcs()))
            except Exception as exc:
                from tpuserve.convert.manifest import ManifestUnreadable

                if isinstance(exc, ManifestUnreadable):
                    done(CheckpointPhase.FAILED, Reason.OUTPUT_CONFLICT, str(exc), ready=False, converted=False)
                    ctx.metrics.reconciles.labels(KIND, "ok").inc()
                    return
                if not _transient_gcs_error(exc):
                    raise
                ctx.metrics.gcs_errors.labels("check_source").inc()
                message = (
                    f"GCS unavailable ({type(exc).__name__}: {str(exc)[:200]}); "
                    f"retrying in {ctx.settings.gcs_retry_seconds:g}s"
                )
                done(CheckpointPhase.PENDING, Reason.GCS_UNAVAILABLE, message, ready=False, converted=None)
                raise kopf.TemporaryError(message, delay=ctx.settings.gcs_retry_seconds) from exc
            if check.status == SourceStatus.NOT_FOUND:
                done(
                    CheckpointPhase.FAILED,
                    Reason.SOURCE_NOT_FOUND,
                    f"nothing found at {spec.source}: upload Meta's {spec.model} checkpoint there "
                    "(consolidated.NN.pth, params.json) or fix spec.source. " + check.message,
                    ready=False,
                    converted=False,
                )
                ctx.metrics.reconciles.labels(KIND, "ok").inc()
                return
            if check.status != SourceStatus.COMPLETE:
                missing = ", ".join(check.missing) or "see message"
                done(
                    CheckpointPhase.FAILED,
                    Reason.SOURCE_INCOMPLETE,
                    f"{spec.source} is missing {missing}: upload them and edit the object to retry. " + check.message,
                    ready=False,
                    converted=False,
                )
                ctx.metrics.reconciles.labels(KIND, "ok").inc()
                return
        in_use = checkpoint_guard.servers_loading_from(ctx, meta["namespace"], spec.output)
        if in_use:
            done(
                CheckpointPhase.FAILED,
                Reason.OUTPUT_IN_USE,
                checkpoint_guard.in_use_message(spec.output, in_use),
                ready=False,
                converted=False,
            )
            ctx.metrics.reconciles.labels(KIND, "ok").inc()
            return
        desired = render.render_convert_job(spec, meta, ctx.settings)
        created = kube.ensure_child(ctx, KIND, desired, patchable=False)
        status.job_name = job_name
        status.start_time = status.start_time if current and status.start_time else now
        status.scanned_path, status.unscanned_path = None, None
        del scanned, unscanned
        done(
            CheckpointPhase.CONVERTING,
            Reason.CONVERTING,
            f"conversion Job {job_name} started: {spec.source} → {spec.output}",
            ready=False,
            converted=False,
        )
        del created
        ctx.metrics.reconciles.labels(KIND, "ok").inc()
        return

    state = observe.job_state(job_dict)
    status.job_name = job_name
    pods = kube.job_pods(ctx, job_dict)
    summary = converter_pods.converter_summary(pods)
    problem = checkpoint_guard.summary_problem(spec, summary) if state.outcome == observe.JobOutcome.SUCCEEDED else None
    if problem is not None:
        status.completion_time = now
        message = f"conversion Job {job_name} exited 0 but {problem}; not Ready (see kubectl logs job/{job_name})"
        done(CheckpointPhase.FAILED, Reason.INVALID_SUMMARY, message, ready=False, converted=False)
    elif state.outcome == observe.JobOutcome.SUCCEEDED:
        scanned, unscanned = render.converter_output_paths(spec)
        if summary is not None and summary.ok:
            scanned = summary.scanned_path or scanned
            unscanned = summary.unscanned_path or unscanned
            status.manifest_path = summary.manifest_path
            status.parameter_count = summary.parameter_count
        status.scanned_path, status.unscanned_path = scanned, unscanned
        status.completion_time = now
        outcome = (
            " (verified output reused by the converter)" if summary is not None and summary.outcome == "reused" else ""
        )
        done(
            CheckpointPhase.READY,
            Reason.CONVERTED,
            f"converted{outcome}: servers can load {unscanned}",
            ready=True,
            converted=True,
        )
    elif state.outcome == observe.JobOutcome.FAILED:
        status.completion_time = now
        if summary is not None and not summary.ok:
            reason = {
                "SourceNotFound": Reason.SOURCE_NOT_FOUND,
                "SourceIncomplete": Reason.SOURCE_INCOMPLETE,
                "OutputConflict": Reason.OUTPUT_CONFLICT,
            }.get(str(summary.reason), Reason.CONVERSION_FAILED)
            message = f"conversion Job {job_name} failed ({summary.reason}): {summary.message or ''}".strip()
        else:
            reason = Reason.CONVERSION_FAILED
            text = converter_pods.last_converter_message(pods)
            message = f"conversion Job {job_name} failed ({state.reason}: {state.message or ''})" + (
                f": {text}" if text else ""
            )
        message += "; fix the cause and edit the LlamaCheckpoint to retry (see kubectl logs job/" + job_name + ")"
        done(CheckpointPhase.FAILED, reason, message, ready=False, converted=False)
    else:
        unschedulable = observe.unschedulable_message(pods)
        message = f"conversion Job {job_name} is running"
        if unschedulable:
            message = f"conversion Job {job_name} cannot be scheduled: {unschedulable}"
        done(CheckpointPhase.CONVERTING, Reason.CONVERTING, message, ready=False, converted=False)
    ctx.metrics.reconciles.labels(KIND, "ok").inc()
