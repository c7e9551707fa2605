"""The opening and the ending every kind's reconcile shares.

Opening: read the object (kube.reconcile_latest), parse its live status and its spec with the API models; a spec
the models refuse ends the reconcile as phase Failed / reason InvalidSpec. Then the kind's own reconcile runs its
`ensure_*` steps, gathers what it saw, and computes the new status from that (`compute_status`, pure).

Ending: the status is written once, only when it differs from the live one (status.write_status, which also
logs and posts an Event on a phase change), and the reconcile is counted in `tpuserve_reconcile{result}`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import kopf
from pydantic import BaseModel

from tpuserve.controllers import kube, outcomes
from tpuserve.controllers.status import Reason, live_status, set_condition, write_status

SPEC_KEYS = ("apiVersion", "kind", "metadata", "spec")


ObjT = TypeVar("ObjT", bound=BaseModel)
StatusT = TypeVar("StatusT", bound=BaseModel)


def spec_part(body: dict[str, Any]) -> dict[str, Any]:
    """What the API model of a kind parses: everything but the status."""
    return {k: v for k, v in body.items() if k in SPEC_KEYS}


@dataclass(frozen=True)
class Parsed(Generic[ObjT, StatusT]):
    """One object as read at the start of a reconcile: the body, its parsed spec and its live status."""

    body: dict[str, Any]
    obj: ObjT
    old: StatusT  # the live status (a reconcile computes a new one from a copy; this one is never changed)
    now: datetime

    @property
    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = self.body["metadata"]
        return meta

    @property
    def namespace(self) -> str:
        return str(self.meta["namespace"])

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def uid(self) -> str:
        return str(self.meta["uid"])

    @property
    def generation(self) -> int | None:
        generation: int | None = self.meta.get("generation")
        return generation


@dataclass(frozen=True)
class Verdict:
    """What a reconcile decided: the status to hold, the Event reason for a change, and how to count it."""

    status: Any  # the kind's status model
    reason: Reason
    warning: bool = False
    result: str = "ok"  # the `result` label of tpuserve_reconcile
    retry_after: float | None = None  # after writing: ask kopf to come back (TemporaryError), not counted ok


@dataclass(frozen=True)
class Controller(Generic[ObjT, StatusT]):
    """One kind: its models, its own reconcile (steps + compute_status), and an optional further spec check."""

    kind: str
    model: type[ObjT]
    status_model: type[StatusT]
    reconcile: Callable[[kube.Context, Parsed[ObjT, StatusT]], Verdict]
    check_spec: Callable[[ObjT], object] | None = None  # raises ValueError for a spec the schema cannot refuse

    def __call__(self, ctx: kube.Context, namespace: str, name: str) -> None:
        kube.reconcile_latest(ctx, self.kind, namespace, name, outcomes.guarded(self.kind, self.run))

    def run(self, ctx: kube.Context, body: dict[str, Any]) -> None:
        now = kube.now()
        old = self.status_model.model_validate(live_status(body))
        try:
            obj = self.model.model_validate(spec_part(body))
            if self.check_spec is not None:
                self.check_spec(obj)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            verdict = invalid_spec(self.kind, old, f"invalid spec: {exc}", body["metadata"].get("generation"), now)
        else:
            verdict = self.reconcile(ctx, Parsed(body, obj, old, now))
        commit(ctx, self.kind, body, verdict)


def invalid_spec(kind: str, old: Any, message: str, generation: int | None, now: datetime) -> Verdict:
    """Phase Failed, reason InvalidSpec: on the kind's Failed condition when it has one, else its main one."""
    outcome = outcomes.OUTCOMES[kind]
    status = old.model_copy(deep=True)
    status.phase, status.message, status.observed_generation = outcome.failed, message, generation
    if outcome.failed_condition:
        condition, value = outcome.failed_condition, True
    else:
        condition, value = outcome.condition, False
    reason = Reason.INVALID_SPEC
    status.conditions = set_condition(status.conditions, condition, value, reason, message, generation, now)
    return Verdict(status, Reason.INVALID_SPEC, warning=True, result="invalid")


def commit(ctx: kube.Context, kind: str, body: dict[str, Any], verdict: Verdict) -> None:
    """The one status write of a reconcile (skipped when nothing changed), then count it or ask for a retry."""
    write_status(ctx, kind, body, verdict.status, event_reason=verdict.reason, warning=verdict.warning)
    if verdict.retry_after is not None:
        raise kopf.TemporaryError(verdict.status.message or str(verdict.reason), delay=verdict.retry_after)
    ctx.metrics.reconciles.labels(kind, verdict.result).inc()
