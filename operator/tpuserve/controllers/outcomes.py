"""Endings every kind shares, recorded the same way in its status (with an Event):

- a child's name is held by an object this owner does not control → `NameConflict` on the kind's main condition,
  nothing changed, retried (the other object may be garbage-collected or renamed);
- the API server refused a child for good (a 4xx other than 404 not-found, 409 conflict, 429 throttling, e.g. a 422
  for a name or annotation Kubernetes does not accept) → phase Failed, reason `ApiRejected`, the API server's
  message; not retried;
- retries ran past the retry budget → phase Failed, reason `RetriesExhausted`, the last reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from tpuserve.api import (
    BenchmarkConditionType,
    BenchmarkPhase,
    BenchmarkRunStatus,
    CheckpointConditionType,
    CheckpointPhase,
    InferenceServerStatus,
    LlamaCheckpointStatus,
    ServerConditionType,
    ServerPhase,
)
from tpuserve.controllers import kube
from tpuserve.controllers.ownership import NameConflict
from tpuserve.controllers.status import Reason, live_status, set_condition, write_status

log = logging.getLogger(__name__)

# API answers that a retry may change: not found (deleted meanwhile), conflict (a concurrent write), throttling.
RETRIABLE_CLIENT_ERRORS = (404, 409, 429)
# How soon a NameConflict is looked at again (the other object may be on its way out: garbage collection).
NAME_CONFLICT_RETRY_SECONDS = 15


@dataclass(frozen=True)
class KindOutcome:
    status_model: Any
    pending: str
    failed: str
    condition: str  # the condition that says whether the object reached its goal
    failed_condition: str | None = None  # a separate Failed=True condition, for the kinds that have one


OUTCOMES = {
    "LlamaCheckpoint": KindOutcome(
        LlamaCheckpointStatus, CheckpointPhase.PENDING, CheckpointPhase.FAILED, CheckpointConditionType.READY
    ),
    "InferenceServer": KindOutcome(
        InferenceServerStatus, ServerPhase.PENDING, ServerPhase.FAILED, ServerConditionType.AVAILABLE
    ),
    "BenchmarkRun": KindOutcome(
        BenchmarkRunStatus,
        BenchmarkPhase.PENDING,
        BenchmarkPhase.FAILED,
        BenchmarkConditionType.COMPLETE,
        BenchmarkConditionType.FAILED,
    ),
}


def is_permanent(exc: ApiException) -> bool:
    """A 4xx that a retry will not change."""
    status = int(exc.status or 0)
    return 400 <= status < 500 and status not in RETRIABLE_CLIENT_ERRORS


def api_message(exc: ApiException) -> str:
    """The API server's own message (its Status body), else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    return f"{exc.status} {exc.reason}: {message or exc.body or ''}".strip()


def record(ctx: kube.Context, kind: str, body: dict[str, Any], reason: Reason, message: str, *, failed: bool) -> None:
    """Write `reason`/`message` on the kind's main condition: phase Failed, or (not failed) the phase unchanged."""
    outcome = OUTCOMES[kind]
    meta = body["metadata"]
    generation = meta.get("generation")
    now = kube.now()
    status = outcome.status_model.model_validate(live_status(body))
    status.observed_generation = generation
    status.message = message
    if failed:
        status.phase = outcome.failed
        if hasattr(status, "completion_time"):
            status.completion_time = now
    elif status.phase is None:
        status.phase = outcome.pending
    status.conditions = set_condition(status.conditions, outcome.condition, False, reason, message, generation, now)
    if failed and outcome.failed_condition:
        status.conditions = set_condition(
            status.conditions, outcome.failed_condition, True, reason, message, generation, now
        )
    write_status(ctx, kind, body, status, event_reason=reason, warning=True)


def guarded(kind: str, reconcile: Callable[[kube.Context, dict[str, Any]], None]) -> Callable[..., None]:
    """`reconcile` with the shared endings recorded in status (see the module docstring)."""

    def run(ctx: kube.Context, body: dict[str, Any]) -> None:
        try:
            reconcile(ctx, body)
        except NameConflict as exc:
            record(ctx, kind, body, Reason.NAME_CONFLICT, str(exc), failed=False)
            raise kopf.TemporaryError(str(exc), delay=NAME_CONFLICT_RETRY_SECONDS) from exc
        except ApiException as exc:
            if not is_permanent(exc):
                raise
            message = f"the API server refused a child of this object: {api_message(exc)}"[:4000]
            log.warning("%s %s/%s: %s", kind, body["metadata"]["namespace"], body["metadata"]["name"], message)
            record(ctx, kind, body, Reason.API_REJECTED, message, failed=True)
            ctx.metrics.reconciles.labels(kind, "invalid").inc()

    return run


def give_up(ctx: kube.Context, kind: str, namespace: str, name: str, message: str) -> None:
    """Retries ran out: Failed with the last reason (a spec change, or for servers the resync, starts over)."""
    body = kube.get_custom(ctx, kind, namespace, name)
    if body is not None:
        record(ctx, kind, body, Reason.RETRIES_EXHAUSTED, message, failed=True)
