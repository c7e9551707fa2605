"""LlamaCheckpoint with format huggingface → mirror Job (`tpuserve convert mirror`) → Ready with the mirrored
Hugging Face directory in status.huggingFacePath.

Kept apart from the MaxText conversion (controllers/checkpoint.py dispatches here) so both can change on their
own. The Job itself reuses an intact mirror (its summary says so) and retries a failing hub within its budget;
when it still reports the hub unavailable, the operator replaces the Job later rather than failing the object.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from tpuserve.api import CheckpointConditionType, CheckpointPhase, LlamaCheckpoint, LlamaCheckpointStatus
from tpuserve.controllers import converter_pods, kube, naming, observe, render
from tpuserve.controllers.status import Reason, set_condition, write_status

log = logging.getLogger(__name__)
KIND = "LlamaCheckpoint"

# Summary reasons (tpuserve.convert.summary.FailureReason) -> condition reasons.
_FAILURE_REASONS = {
    "SourceNotFound": Reason.SOURCE_NOT_FOUND,
    "SourceIncomplete": Reason.SOURCE_INCOMPLETE,
    "HubUnauthorized": Reason.HUB_UNAUTHORIZED,
    "HubUnavailable": Reason.HUB_UNAVAILABLE,
}


def describe_source(obj: LlamaCheckpoint) -> str:
    hub = obj.spec.hugging_face
    return f"hf://{hub.repo_id}@{hub.revision}" if hub is not None else str(obj.spec.source)


def token_hint(obj: LlamaCheckpoint) -> str:
    """What to fix after the hub refused the token: the Secret (or that there is none)."""
    hub = obj.spec.hugging_face
    namespace = obj.metadata.get("namespace", "")
    if hub is None or hub.token_secret_ref is None:
        return (
            "spec.huggingFace.tokenSecretRef is not set: create a Secret with a hub read token whose account "
            "accepted the model's license and reference it there"
        )
    ref = hub.token_secret_ref
    return (
        f"put a valid hub read token (whose account accepted the model's license) in Secret {namespace}/{ref.name} "
        f"key {ref.key}, then edit the LlamaCheckpoint to retry"
    )


def reconcile_mirror(ctx: kube.Context, body: dict[str, Any], obj: LlamaCheckpoint) -> None:
    meta = body["metadata"]
    generation = meta.get("generation")
    now = kube.now()
    spec = obj.spec
    old = obj.status or LlamaCheckpointStatus()
    status = old.model_copy(deep=True)
    current = old.observed_generation == generation
    if current and old.phase in (CheckpointPhase.READY, CheckpointPhase.FAILED):
        ctx.metrics.set_phase(KIND, meta["namespace"], meta["name"], str(old.phase), meta.get("uid"))
        ctx.metrics.reconciles.labels(KIND, "ok").inc()
        return  # terminal for this generation; a spec change starts over

    def done(phase: CheckpointPhase, reason: Reason, message: str, *, ready: bool, mirrored: bool | None) -> None:
        status.phase, status.message, status.observed_generation = phase, message, generation
        status.conditions = set_condition(
            status.conditions, CheckpointConditionType.READY, ready, reason, message, generation, now
        )
        status.conditions = set_condition(
            status.conditions, CheckpointConditionType.CONVERTED, mirrored, reason, message, generation, now
        )
        warning = phase == CheckpointPhase.FAILED or reason == Reason.HUB_UNAVAILABLE
        write_status(ctx, KIND, body, status, event_reason=reason, warning=warning)
        ctx.metrics.reconciles.labels(KIND, "ok").inc()

    job_name = naming.job_name_mirror(meta["name"])
    job_dict = kube.get_owned_job(ctx, meta["namespace"], job_name, meta["uid"])
    if job_dict is not None:
        job_generation = (job_dict["metadata"].get("annotations") or {}).get(naming.ANNOTATION_GENERATION)
        if job_generation != str(generation):
            kube.delete_job(ctx, job_dict)
            raise kopf.TemporaryError("replacing the mirror Job of an older generation", delay=2)

    if job_dict is None:
        kube.ensure_child(ctx, KIND, render.render_mirror_job(spec, meta, ctx.settings), patchable=False)
        status.job_name = job_name
        status.start_time = status.start_time if current and status.start_time else now
        # Paths of an earlier generation (another source, or a MaxText conversion before a format change) no
        # longer describe what this checkpoint holds.
        status.hugging_face_path = status.scanned_path = status.unscanned_path = None
        done(
            CheckpointPhase.CONVERTING,
            Reason.MIRRORING,
            f"mirror Job {job_name} started: {describe_source(obj)} → {render.mirror_model_path(spec)}",
            ready=False,
            mirrored=False,
        )
        return

    state = observe.job_state(job_dict)
    status.job_name = job_name
    pods = kube.job_pods(ctx, job_dict)
    summary = converter_pods.converter_summary(pods)
    if state.outcome == observe.JobOutcome.SUCCEEDED and summary is not None and summary.ok:
        status.hugging_face_path = summary.model_path or render.mirror_model_path(spec)
        status.manifest_path = summary.manifest_path
        status.parameter_count = summary.parameter_count
        status.completion_time = now
        reused = " (an intact mirror was reused)" if str(summary.outcome) == "reused" else ""
        done(
            CheckpointPhase.READY,
            Reason.MIRRORED,
            f"mirrored and verified{reused}: vLLM servers can load {status.hugging_face_path}",
            ready=True,
            mirrored=True,
        )
    elif state.outcome in (observe.JobOutcome.SUCCEEDED, observe.JobOutcome.FAILED):
        reason = _FAILURE_REASONS.get(str(summary.reason), Reason.MIRROR_FAILED) if summary else Reason.MIRROR_FAILED
        if reason == Reason.HUB_UNAVAILABLE:
            # Retried, not failed: a new Job after a pause (the Job already retried within its own budget).
            kube.delete_job(ctx, job_dict)
            message = (
                f"{summary.message if summary else 'the Hugging Face hub is unavailable'}; "
                f"a new mirror Job starts in {ctx.settings.gcs_retry_seconds:g}s"
            )
            done(CheckpointPhase.PENDING, reason, message, ready=False, mirrored=None)
            raise kopf.TemporaryError(message, delay=ctx.settings.gcs_retry_seconds)
        status.completion_time = now
        if summary is not None and not summary.ok:
            message = f"mirror Job {job_name} failed ({summary.reason}): {summary.message or ''}".strip()
        else:
            text = converter_pods.last_converter_message(pods)
            message = f"mirror Job {job_name} failed ({state.reason}: {state.message or ''})" + (
                f": {text}" if text else ""
            )
        if reason == Reason.HUB_UNAUTHORIZED:
            message += "; " + token_hint(obj)
        else:
            message += f"; fix the cause and edit the LlamaCheckpoint to retry (see kubectl logs job/{job_name})"
        done(CheckpointPhase.FAILED, reason, message, ready=False, mirrored=False)
    else:
        problem = observe.unschedulable_message(pods) or observe.container_problem(pods)
        message = f"mirror Job {job_name} is running: {describe_source(obj)} → {render.mirror_model_path(spec)}"
        if problem:
            message = f"mirror Job {job_name} cannot start: {problem}"
        done(CheckpointPhase.CONVERTING, Reason.MIRRORING, message, ready=False, mirrored=False)
