"""Condition reasons, condition updates, and writing status only when it changed (with an Event on every
phase change)."""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

from tpuserve.api import Condition, ConditionStatus
from tpuserve.controllers import kube

log = logging.getLogger(__name__)


class Reason(StrEnum):
    """Condition and Event reasons (CamelCase). One line each: what it means for the user."""

    ACCEPTED = "Accepted"  # the object was read; nothing started yet
    INVALID_SPEC = "InvalidSpec"  # the spec cannot be reconciled (the message says which field)
    NAME_CONFLICT = "NameConflict"  # a child's name is held by an object this one does not control (named)
    API_REJECTED = "ApiRejected"  # the API server refused a child for good (its message); not retried
    RETRIES_EXHAUSTED = "RetriesExhausted"  # a temporary problem outlasted TPUSERVE_RETRY_BUDGET_SECONDS
    # LlamaCheckpoint
    SOURCE_NOT_FOUND = "SourceNotFound"  # nothing at spec.source
    SOURCE_INCOMPLETE = "SourceIncomplete"  # spec.source lacks required files (listed)
    GCS_UNAVAILABLE = "GcsUnavailable"  # GCS could not be reached; retried, not failed
    REUSED_OUTPUT = "ReusedVerifiedOutput"  # spec.output already held a verified conversion: no Job
    CONVERTING = "Converting"  # the conversion Job is running
    CONVERTED = "Converted"  # the conversion Job succeeded
    CONVERSION_FAILED = "ConversionFailed"  # the conversion Job failed (the message has the converter's reason)
    MIRRORING = "Mirroring"  # format huggingface: the mirror Job is running
    MIRRORED = "Mirrored"  # the mirror Job copied (or found) a verified Hugging Face directory
    MIRROR_FAILED = "MirrorFailed"  # the mirror failed (checksums, headers against the catalog; message says)
    HUB_UNAUTHORIZED = "HubUnauthorized"  # the Hugging Face hub refused the token (the message names the Secret)
    HUB_UNAVAILABLE = "HubUnavailable"  # the hub kept failing; a new mirror Job is started later, not failed
    OUTPUT_CONFLICT = "OutputConflict"  # spec.output holds a manifest that cannot be read, or another conversion
    OUTPUT_IN_USE = "OutputInUse"  # a Ready InferenceServer serves from spec.output: it is not rewritten
    INVALID_SUMMARY = "InvalidSummary"  # the Job succeeded without a valid summary with paths under spec.output
    # InferenceServer
    WAITING_FOR_CHECKPOINT = "WaitingForCheckpoint"  # the referenced LlamaCheckpoint is not Ready yet
    CHECKPOINT_NOT_FOUND = "CheckpointNotFound"  # the referenced LlamaCheckpoint does not exist
    CHECKPOINT_FAILED = "CheckpointFailed"  # the referenced LlamaCheckpoint failed
    CHECKPOINT_READY = "CheckpointReady"  # the checkpoint to load is known
    CHECKPOINT_PATH = "CheckpointPath"  # spec.checkpointPath given directly
    UNSCHEDULABLE = "Unschedulable"  # the scheduler cannot place a server pod (its message says why)
    SCHEDULED = "Scheduled"  # every server pod is bound to a node
    PODS_PENDING = "PodsPending"  # server pods not bound yet (no scheduler verdict yet)
    DEPLOYING = "Deploying"  # pods are starting (image pull, weight load, XLA compile)
    AVAILABLE = "MinimumReplicasAvailable"  # replicas are ready to serve
    CONTAINER_FAILING = "ContainerFailing"  # a server container crash-loops or its image cannot be pulled
    PODS_REFUSED = "PodsRefused"  # the API server refuses the server pods (Pod Security, quota): message says why
    INSUFFICIENT_HBM = "InsufficientHbm"  # weights plus KV cache cannot fit the slice's HBM (numbers in the message)
    MONITORING_UNAVAILABLE = "MonitoringUnavailable"  # PodMonitoring/ServiceMonitor CRD missing or forbidden
    # BenchmarkRun
    WAITING_FOR_SERVER = "WaitingForServer"  # the referenced InferenceServer is not Ready yet
    SERVER_NOT_FOUND = "ServerNotFound"  # the referenced InferenceServer does not exist
    SERVER_READY = "ServerReady"  # the server to measure is ready
    EXTERNAL_TARGET = "ExternalTarget"  # spec.target given: not checked before the run
    RUNNING = "BenchmarkRunning"  # the benchmark Job is running
    SUCCEEDED = "BenchmarkSucceeded"  # results recorded in status.results
    BENCHMARK_FAILED = "BenchmarkFailed"  # the benchmark exited non-zero (its message says why)
    DEADLINE_EXCEEDED = "DeadlineExceeded"  # the Job ran past activeDeadlineSeconds (spec.timeout)
    JOB_FAILED = "JobFailed"  # the Job failed without a readable summary


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool | None,
    reason: Reason,
    message: str,
    generation: int | None,
    when: datetime,
) -> list[Condition]:
    """Return conditions with `type_` set; lastTransitionTime changes only when the status does."""
    value = ConditionStatus.UNKNOWN if status is None else ConditionStatus.TRUE if status else ConditionStatus.FALSE
    existing = next((cond for cond in conditions if cond.type == type_), None)
    updated = Condition(
        type=type_,
        status=value,
        reason=str(reason),
        message=message,
        last_transition_time=existing.last_transition_time if existing and existing.status == value else when,
        observed_generation=generation,
    )
    if existing is None:
        return [*conditions, updated]
    return [updated if cond.type == type_ else cond for cond in conditions]


class StatusModel(Protocol):
    phase: Any
    message: str | None

    def to_wire(self) -> dict[str, Any]: ...


def write_status(
    ctx: kube.Context,
    kind: str,
    body: dict[str, Any],
    new: StatusModel,
    *,
    event_reason: Reason,
    warning: bool = False,
) -> bool:
    """Patch status when it differs from what the body holds; post an Event when the phase changes.

    Returns whether anything was written.
    """
    meta = body["metadata"]
    old = live_status(body)
    wire = new.to_wire()
    phase = str(new.phase) if new.phase else "Pending"
    if wire == old:
        ctx.metrics.set_phase(kind, meta["namespace"], meta["name"], phase, meta.get("uid"))
        return False
    patch: dict[str, Any] = dict(wire)
    for key in old:
        if key not in wire:
            patch[key] = None
    if old.get("phase") != wire.get("phase"):
        log.info(
            "%s %s/%s: phase %s -> %s (%s): %s",
            kind,
            meta["namespace"],
            meta["name"],
            old.get("phase") or "-",
            phase,
            event_reason,
            new.message or "",
        )
    if old.get("phase") != wire.get("phase") or _verdicts(old) != _verdicts(wire):
        # The Event goes first: whoever sees the new state can also find the Event that explains it.
        kube.post_event(ctx, body, "Warning" if warning else "Normal", str(event_reason), new.message or str(new.phase))
    try:
        kube.patch_status(ctx, kind, meta["namespace"], meta["name"], patch)
    except ApiException as exc:
        if exc.status == 404:  # deleted meanwhile: nothing to write, nothing to count
            return False
        raise
    ctx.metrics.set_phase(kind, meta["namespace"], meta["name"], phase, meta.get("uid"))
    return True


def live_status(body: dict[str, Any]) -> dict[str, Any]:
    """The object's status as stored, without kopf's own bookkeeping key."""
    return {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}


def _verdicts(status: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Each condition's (status, reason): a change of either is worth an Event, a new message alone is not."""
    return {c.get("type"): (c.get("status"), c.get("reason")) for c in status.get("conditions") or []}
