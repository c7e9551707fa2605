"""Pure readings of child objects (plain dicts as the API returns them): Job outcome, termination messages,
scheduler verdicts. No API calls."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class JobOutcome(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class JobState:
    outcome: JobOutcome
    reason: str | None = None  # the Job's Failed condition reason (BackoffLimitExceeded, DeadlineExceeded, ...)
    message: str | None = None
    start_time: str | None = None
    completion_time: str | None = None


def job_state(job: dict[str, Any]) -> JobState:
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return JobState(
                JobOutcome.SUCCEEDED,
                start_time=status.get("startTime"),
                completion_time=status.get("completionTime") or cond.get("lastTransitionTime"),
            )
        if cond.get("type") == "Failed":
            return JobState(
                JobOutcome.FAILED,
                reason=cond.get("reason"),
                message=cond.get("message"),
                start_time=status.get("startTime"),
                completion_time=cond.get("lastTransitionTime"),
            )
    return JobState(JobOutcome.RUNNING, start_time=status.get("startTime"))


@dataclass(frozen=True)
class Termination:
    exit_code: int
    message: str | None
    reason: str | None
    finished_at: str | None


def terminations(pods: list[dict[str, Any]], container: str) -> list[Termination]:
    """Terminated states of `container` in the pods, latest finish last."""
    found: list[Termination] = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("name") != container:
                continue
            terminated = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
            if terminated:
                found.append(
                    Termination(
                        exit_code=int(terminated.get("exitCode", 0)),
                        message=terminated.get("message"),
                        reason=terminated.get("reason"),
                        finished_at=terminated.get("finishedAt"),
                    )
                )
    return sorted(found, key=lambda t: t.finished_at or "")


def unschedulable_message(pods: list[dict[str, Any]]) -> str | None:
    """The scheduler's message for the first pending pod it could not place (PodScheduled=False/Unschedulable)."""
    for pod in pods:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if (cond.get("type"), cond.get("status"), cond.get("reason")) == ("PodScheduled", "False", "Unschedulable"):
                return str(cond.get("message") or "the scheduler cannot place the pod")
    return None


def all_scheduled(pods: list[dict[str, Any]]) -> bool:
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    return bool(live) and all((p.get("spec") or {}).get("nodeName") for p in live)


# Container states that will not fix themselves without a change (image, config) or that repeat (crashes).
STUCK_WAITING_REASONS = (
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
)


def replica_failure(deployment: dict[str, Any]) -> str | None:
    """The message of a Deployment's ReplicaFailure condition: the API server refuses to create its pods (Pod
    Security admission, a quota, an admission policy), so there is no pod to read a reason from."""
    for cond in (deployment.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return str(cond.get("message") or cond.get("reason") or "ReplicaFailure")[:1000]
    return None


def container_problem(pods: list[dict[str, Any]]) -> str | None:
    """'<pod>/<container>: <reason>: <message>' for the first container stuck in a failing waiting state."""
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in STUCK_WAITING_REASONS:
                name = (pod.get("metadata") or {}).get("name")
                detail = f": {waiting['message']}" if waiting.get("message") else ""
                return f"{name}/{cs.get('name')}: {waiting['reason']}{detail}"[:1000]
    return None
