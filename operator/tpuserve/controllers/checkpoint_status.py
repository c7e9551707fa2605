"""What the MaxText conversion (checkpoint.py) and the Hugging Face mirror (mirror.py) share: the typed result of
their steps (`Observed`), the pure `compute_status` that turns it into a LlamaCheckpoint status, and the steps
both take before their own (a finished generation stays as it is; a Job of an older generation is replaced)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from tpuserve.api import CheckpointConditionType, CheckpointPhase, LlamaCheckpoint, LlamaCheckpointStatus
from tpuserve.controllers import kube, naming, observe
from tpuserve.controllers.reconcile import Parsed, Verdict
from tpuserve.controllers.status import Reason, set_condition

Checkpoint = Parsed[LlamaCheckpoint, LlamaCheckpointStatus]
TERMINAL = (CheckpointPhase.READY, CheckpointPhase.FAILED)
# Reasons that are retried, not failed, and still worth a Warning Event.
RETRIED_WARNINGS = (Reason.GCS_UNAVAILABLE, Reason.HUB_UNAVAILABLE)


@dataclass(frozen=True)
class Observed:
    """Where a conversion or mirror stands, as the steps found it."""

    phase: CheckpointPhase
    reason: Reason
    message: str
    ready: bool | None  # the Ready condition
    converted: bool | None  # the Converted condition
    job_name: str | None = None  # the Job this generation runs (recorded in status.jobName)
    started: bool = False  # the Job was created by this reconcile: startTime, and no paths of an older output
    completed: bool = False  # finished (Ready or Failed): completionTime
    record: Mapping[str, Any] = field(default_factory=dict)  # status fields to record (paths, parameterCount)
    retry_after: float | None = None  # retried later (TemporaryError), not failed


def current(ckpt: Checkpoint) -> bool:
    """Whether the live status describes this generation of the spec."""
    return ckpt.old.observed_generation == ckpt.generation


def finished(ckpt: Checkpoint) -> bool:
    """Ready or Failed for this generation: nothing to do until the spec changes."""
    return current(ckpt) and ckpt.old.phase in TERMINAL


def owned_job(ctx: kube.Context, ckpt: Checkpoint, job_name: str) -> dict[str, Any] | None:
    """This object's Job of the current generation. One of an older generation is deleted (a Job's pod template
    is immutable) and the reconcile retried shortly, when it is gone."""
    job = kube.get_owned_job(ctx, ckpt.namespace, job_name, ckpt.uid)
    if job is None:
        return None
    if (job["metadata"].get("annotations") or {}).get(naming.ANNOTATION_GENERATION) != str(ckpt.generation):
        kube.delete_job(ctx, job)
        raise kopf.TemporaryError(f"replacing Job {job_name} of an older generation", delay=2)
    return job


def job_failure_message(what: str, job_name: str, state: observe.JobState, summary: Any, text: str | None) -> str:
    """`<what> Job <name> failed (...)`: the converter's summary reason when it left one, else the Job's."""
    if summary is not None and not summary.ok:
        return f"{what} Job {job_name} failed ({summary.reason}): {summary.message or ''}".strip()
    return f"{what} Job {job_name} failed ({state.reason}: {state.message or ''})" + (f": {text}" if text else "")


def compute_status(ckpt: Checkpoint, observed: Observed) -> Verdict:
    """The new status from the live one and what the steps saw; no API calls."""
    status = ckpt.old.model_copy(deep=True)
    status.phase, status.message, status.observed_generation = observed.phase, observed.message, ckpt.generation
    if observed.job_name is not None:
        status.job_name = observed.job_name
    if observed.started:
        status.start_time = status.start_time if current(ckpt) and status.start_time else ckpt.now
    if observed.completed:
        status.completion_time = ckpt.now
    for key, value in observed.record.items():
        setattr(status, key, value)
    for type_, value in (
        (CheckpointConditionType.READY, observed.ready),
        (CheckpointConditionType.CONVERTED, observed.converted),
    ):
        status.conditions = set_condition(
            status.conditions, type_, value, observed.reason, observed.message, ckpt.generation, ckpt.now
        )
    warning = observed.phase == CheckpointPhase.FAILED or observed.reason in RETRIED_WARNINGS
    return Verdict(status, observed.reason, warning=warning, retry_after=observed.retry_after)
