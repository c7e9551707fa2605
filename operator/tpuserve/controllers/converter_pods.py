"""What the converter container's pods report: the summary in their termination message, shared by the
MaxText conversion and the Hugging Face mirror (both run `tpuserve convert` in a container named `converter`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tpuserve.controllers import kube, observe, render

if TYPE_CHECKING:
    from tpuserve.convert.summary import ConvertSummary

CONTAINER = render.CONVERTER_CONTAINER


def converter_summary(pods: list[dict[str, Any]]) -> ConvertSummary | None:
    """The newest termination message that parses as a ConvertSummary, if any."""
    # Imported here: the operator reads summaries but never runs the converter's heavier modules at start-up.
    from tpuserve.convert.summary import ConvertSummary

    for term in reversed(observe.terminations(pods, CONTAINER)):
        if term.message:
            try:
                return ConvertSummary.from_termination_message(term.message)
            except ValidationError:
                continue
    return None


def last_converter_message(pods: list[dict[str, Any]]) -> str | None:
    """The tail of the newest termination message (for a status message when no summary parses)."""
    terms = observe.terminations(pods, CONTAINER)
    return terms[-1].message[-500:] if terms and terms[-1].message else None


@dataclass(frozen=True)
class ConverterJob:
    """A conversion or mirror Job as read: its state, its pods and the summary they left (if any)."""

    state: observe.JobState
    pods: list[dict[str, Any]]
    summary: ConvertSummary | None


def read_job(ctx: kube.Context, job: dict[str, Any]) -> ConverterJob:
    pods = kube.job_pods(ctx, job)
    return ConverterJob(observe.job_state(job), pods, converter_summary(pods))
