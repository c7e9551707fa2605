"""LlamaCheckpoint with format huggingface → mirror Job (`tpuserve convert mirror`) → Ready with the mirrored
Hugging Face directory in status.huggingFacePath.

Kept apart from the MaxText conversion (controllers/checkpoint.py dispatches here) so both can change on their
own. The Job itself reuses an intact mirror (its summary says so) and retries a failing hub within its budget;
when it still reports the hub unavailable, the operator replaces the Job later rather than failing the object.
"""

from __future__ import annotations

import logging
from typing import Any

from tpuserve.api import CheckpointPhase, LlamaCheckpoint
from tpuserve.controllers import checkpoint_status, converter_pods, kube, naming, observe, render
from tpuserve.controllers.checkpoint_status import Checkpoint, Observed
from tpuserve.controllers.reconcile import Verdict
from tpuserve.controllers.status import Reason

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


def reconcile_mirror(ctx: kube.Context, ckpt: Checkpoint) -> Verdict:
    """The same steps as a conversion: a finished generation stays; an older generation's Job is replaced; the
    Job is observed, or created."""
    if checkpoint_status.finished(ckpt):
        return Verdict(ckpt.old, Reason.ACCEPTED)  # terminal for this generation; a spec change starts over
    job_name = naming.job_name_mirror(ckpt.name)
    job = checkpoint_status.owned_job(ctx, ckpt, job_name)
    if job is None:
        return checkpoint_status.compute_status(ckpt, start(ctx, ckpt, job_name))
    return checkpoint_status.compute_status(ckpt, observe_job(ctx, ckpt, job, job_name))


def start(ctx: kube.Context, ckpt: Checkpoint, job_name: str) -> Observed:
    spec = ckpt.obj.spec
    kube.ensure_child(ctx, KIND, render.render_mirror_job(spec, ckpt.meta, ctx.settings), patchable=False)
    # Paths of an earlier generation (another source, or a MaxText conversion before a format change) no longer
    # describe what this checkpoint holds.
    cleared = {"hugging_face_path": None, "scanned_path": None, "unscanned_path": None}
    message = f"mirror Job {job_name} started: {describe_source(ckpt.obj)} → {render.mirror_model_path(spec)}"
    return Observed(
        CheckpointPhase.CONVERTING, Reason.MIRRORING, message, False, False, job_name, started=True, record=cleared
    )


def observe_job(ctx: kube.Context, ckpt: Checkpoint, job: dict[str, Any], job_name: str) -> Observed:
    spec, seen = ckpt.obj.spec, converter_pods.read_job(ctx, job)
    state, pods, summary = seen.state, seen.pods, seen.summary
    if state.outcome == observe.JobOutcome.RUNNING:
        problem = observe.unschedulable_message(pods) or observe.container_problem(pods)
        message = f"mirror Job {job_name} is running: {describe_source(ckpt.obj)} → {render.mirror_model_path(spec)}"
        if problem:
            message = f"mirror Job {job_name} cannot start: {problem}"
        return Observed(CheckpointPhase.CONVERTING, Reason.MIRRORING, message, False, False, job_name)
    if state.outcome == observe.JobOutcome.SUCCEEDED and summary is not None and summary.ok:
        path = summary.model_path or render.mirror_model_path(spec)
        record = {
            "hugging_face_path": path,
            "manifest_path": summary.manifest_path,
            "parameter_count": summary.parameter_count,
        }
        reused = " (an intact mirror was reused)" if str(summary.outcome) == "reused" else ""
        message = f"mirrored and verified{reused}: vLLM servers can load {path}"
        return Observed(
            CheckpointPhase.READY, Reason.MIRRORED, message, True, True, job_name, completed=True, record=record
        )
    reason = _FAILURE_REASONS.get(str(summary.reason), Reason.MIRROR_FAILED) if summary else Reason.MIRROR_FAILED
    if reason == Reason.HUB_UNAVAILABLE:
        # Retried, not failed: a new Job after a pause (the Job already retried within its own budget).
        kube.delete_job(ctx, job)
        retry = ctx.settings.gcs_retry_seconds
        message = (
            f"{summary.message if summary else 'the Hugging Face hub is unavailable'}; "
            f"a new mirror Job starts in {retry:g}s"
        )
        return Observed(CheckpointPhase.PENDING, reason, message, False, None, job_name, retry_after=retry)
    text = None if summary is not None and not summary.ok else converter_pods.last_converter_message(pods)
    message = checkpoint_status.job_failure_message("mirror", job_name, state, summary, text)
    if reason == Reason.HUB_UNAUTHORIZED:
        message += "; " + token_hint(ckpt.obj)
    else:
        message += f"; fix the cause and edit the LlamaCheckpoint to retry (see kubectl logs job/{job_name})"
    return Observed(CheckpointPhase.FAILED, reason, message, False, False, job_name, completed=True)
