"""BenchmarkRun → (wait for the server) → benchmark Job → results from the termination message into status
and Prometheus.

Steps, in order, each stopping the reconcile when it is not done: a finished run stays as it is; the Job, when
it exists, is observed; a Job that vanished while running fails the run; else the target is resolved (waiting for
an InferenceServer to be Ready) and the Job created. `compute_status` turns what the steps saw (`Observed`) into
the new status; reconcile.commit writes it once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from tpuserve.api import (
    BenchmarkConditionType,
    BenchmarkPhase,
    BenchmarkRun,
    BenchmarkRunStatus,
    InferenceServer,
    MeasuredServer,
    Protocol,
    Runtime,
    ServerPhase,
)
from tpuserve.controllers import kube, naming, observe, render, render_vllm
from tpuserve.controllers.measured import derived, measured_server
from tpuserve.controllers.reconcile import Controller, Parsed, Verdict, spec_part
from tpuserve.controllers.status import Reason, set_condition
from tpuserve.results import BenchmarkSummary
from tpuserve.settings import OperatorSettings

log = logging.getLogger(__name__)
KIND = "BenchmarkRun"
CONTAINER = render.BENCH_CONTAINER
TERMINAL = (BenchmarkPhase.SUCCEEDED, BenchmarkPhase.FAILED)
Run = Parsed[BenchmarkRun, BenchmarkRunStatus]


@dataclass(frozen=True)
class Target:
    """The server the benchmark Job dials, and the SERVER_READY condition that says so."""

    measured: MeasuredServer
    endpoint: str
    protocol: Protocol
    model: str | None
    tokenizer: str | None
    ready: bool | None  # None: an external target, not checked
    reason: Reason
    message: str


@dataclass(frozen=True)
class NotReady:
    """The referenced InferenceServer is absent or not Ready: the run waits."""

    server: str
    reason: Reason
    message: str


@dataclass(frozen=True)
class Finished:
    """A Job that ended, with the summary its pod left (if readable) and the figures derived from it."""

    state: observe.JobState
    summary: BenchmarkSummary | None
    raw: str | None
    cost: float | None = None
    roofline: float | None = None


@dataclass(frozen=True)
class Observed:
    """What the steps saw; exactly one of the optional parts is set (or none: the Job vanished)."""

    job_name: str
    waiting: NotReady | None = None
    started: Target | None = None
    running_unschedulable: str | None = None  # the Job runs; the scheduler's verdict on its pod, if any
    running: bool = False
    finished: Finished | None = None


def _reconcile(ctx: kube.Context, run: Run) -> Verdict:
    if run.old.phase in TERMINAL:  # for good: a re-run is a new object
        export_metrics(ctx, run.body, run.old)
        return Verdict(run.old, Reason.SUCCEEDED)
    verdict = compute_status(run, observe_run(ctx, run))
    export_metrics(ctx, run.body, verdict.status)
    return verdict


CONTROLLER = Controller(KIND, BenchmarkRun, BenchmarkRunStatus, _reconcile)


def reconcile_benchmark(ctx: kube.Context, namespace: str, name: str) -> None:
    CONTROLLER(ctx, namespace, name)


# --- steps ------------------------------------------------------------------------------------------------


def observe_run(ctx: kube.Context, run: Run) -> Observed:
    job_name = naming.job_name_bench(run.name)
    job = kube.get_owned_job(ctx, run.namespace, job_name, run.uid)
    if job is not None:
        return observe_job(ctx, run, job, job_name)
    if run.old.job_name and run.old.phase == BenchmarkPhase.RUNNING:
        return Observed(job_name)  # started, and gone before its results were read
    target = resolve_target(ctx, run)
    if isinstance(target, NotReady):
        return Observed(job_name, waiting=target)
    ensure_job(ctx, run, target)
    return Observed(job_name, started=target)


def resolve_target(ctx: kube.Context, run: Run) -> Target | NotReady:
    spec = run.obj.spec
    if spec.target is not None:
        address = spec.target.address()
        measured = MeasuredServer(name=address, protocol=spec.target.protocol, endpoint=address)
        message = f"external target {address} (not checked before the run)"
        return Target(measured, address, spec.target.protocol, None, None, None, Reason.EXTERNAL_TARGET, message)
    assert spec.server_ref is not None
    ref = spec.server_ref.name
    server_body = kube.get_custom(ctx, "InferenceServer", run.namespace, ref)
    if server_body is None:
        missing = f"InferenceServer {ref} does not exist: create it or fix spec.serverRef"
        return NotReady(ref, Reason.SERVER_NOT_FOUND, missing)
    server_status = server_body.get("status") or {}
    if server_status.get("phase") != ServerPhase.READY:
        phase, detail = server_status.get("phase") or "Pending", server_status.get("message") or ""
        now_text = f"{phase}: {detail}" if detail else phase
        message = f"waiting for InferenceServer {ref} to become Ready (now {now_text})"
        return NotReady(ref, Reason.WAITING_FOR_SERVER, message)
    server = InferenceServer.model_validate(spec_part(server_body))
    return server_target(server, server_status, ctx.settings)


def server_target(server: InferenceServer, server_status: dict[str, Any], settings: OperatorSettings) -> Target:
    """A Ready InferenceServer as the benchmark dials it: vLLM speaks the OpenAI API only."""
    ref, namespace = server.metadata.get("name", ""), server.metadata.get("namespace", "")
    endpoints = server_status.get("endpoints") or {}
    model: str | None = server.spec.model
    tokenizer: str | None = server.spec.effective_tokenizer_path()
    if server.spec.runtime == Runtime.VLLM_TPU:
        protocol = Protocol.OPENAI
        endpoint = (endpoints.get("openai") or render_vllm.openai_base_url(ref, namespace)).removesuffix("/v1")
        # vLLM serves under its --model (or --served-model-name): the benchmark asks the server (GET /v1/models);
        # MaxText's tokenizer file is no use to it: only an explicit tokenizer.json is.
        model, tokenizer = None, server.spec.tokenizer_path
        default_image = settings.vllm_image
    else:
        protocol = Protocol.JETSTREAM
        endpoint = endpoints.get("grpc") or render.service_endpoint(ref, namespace)
        default_image = settings.server_image
    measured = measured_server(server, server_status, endpoint, default_image)
    measured.protocol = protocol
    message = f"InferenceServer {ref} is Ready at {endpoint}"
    return Target(measured, endpoint, protocol, model, tokenizer, True, Reason.SERVER_READY, message)


def ensure_job(ctx: kube.Context, run: Run, target: Target) -> None:
    desired = render.render_bench_job(
        run.obj.spec,
        run.meta,
        ctx.settings,
        target=target.endpoint,
        model=target.model,
        tokenizer=target.tokenizer,
        protocol=target.protocol,
    )
    kube.ensure_child(ctx, KIND, desired, patchable=False)


def observe_job(ctx: kube.Context, run: Run, job: dict[str, Any], job_name: str) -> Observed:
    state = observe.job_state(job)
    pods = kube.job_pods(ctx, job)
    if state.outcome == observe.JobOutcome.RUNNING:
        return Observed(job_name, running=True, running_unschedulable=observe.unschedulable_message(pods))
    summary, raw = _summary(pods)
    cost, roofline = (None, None)
    if summary is not None:
        cost, roofline = derived(ctx.settings, spec_server(run.body), run.old.server, summary)
    return Observed(job_name, finished=Finished(state, summary, raw, cost, roofline))


# --- status -----------------------------------------------------------------------------------------------


def compute_status(run: Run, observed: Observed) -> Verdict:
    """The new status from the live one and what the steps saw; no API calls."""
    status = run.old.model_copy(deep=True)
    status.observed_generation = run.generation
    if observed.waiting is not None:
        return _waiting(run, status, observed.waiting)
    status.job_name = observed.job_name
    if observed.started is not None:
        return _started(run, status, observed.started)
    if observed.running:
        return _running(run, status, observed.running_unschedulable)
    if observed.finished is not None:
        return _finished(run, status, observed.finished)
    # The Job was started and is gone before its results were read (deleted by hand, or a Job TTL while the
    # operator was down): running it again would measure twice under one name. A re-run is a new object.
    message = (
        f"benchmark Job {observed.job_name} disappeared before its results were recorded; create a new "
        "BenchmarkRun to run again"
    )
    status.phase, status.message, status.completion_time = BenchmarkPhase.FAILED, message, run.now
    _condition(run, status, BenchmarkConditionType.FAILED, True, Reason.JOB_FAILED)
    return Verdict(status, Reason.JOB_FAILED, warning=True)


def _condition(
    run: Run, status: BenchmarkRunStatus, type_: str, value: bool | None, reason: Reason, message: str | None = None
) -> None:
    text = (status.message or "") if message is None else message
    status.conditions = set_condition(status.conditions, type_, value, reason, text, run.generation, run.now)


def _waiting(run: Run, status: BenchmarkRunStatus, waiting: NotReady) -> Verdict:
    status.phase, status.message = BenchmarkPhase.WAITING_FOR_SERVER, waiting.message
    status.server = MeasuredServer(name=waiting.server)
    _condition(run, status, BenchmarkConditionType.SERVER_READY, False, waiting.reason)
    return Verdict(status, waiting.reason, warning=waiting.reason == Reason.SERVER_NOT_FOUND)


def _started(run: Run, status: BenchmarkRunStatus, target: Target) -> Verdict:
    _condition(run, status, BenchmarkConditionType.SERVER_READY, target.ready, target.reason, target.message)
    status.server = target.measured
    status.start_time = status.start_time or run.now
    status.phase = BenchmarkPhase.RUNNING
    status.message = f"benchmark Job {status.job_name} started against {target.endpoint}"
    _condition(run, status, BenchmarkConditionType.COMPLETE, False, Reason.RUNNING)
    return Verdict(status, Reason.RUNNING)


def _running(run: Run, status: BenchmarkRunStatus, unschedulable: str | None) -> Verdict:
    status.phase = BenchmarkPhase.RUNNING
    status.message = (
        f"benchmark pod cannot be scheduled: {unschedulable} (check spec.nodeSelector/tolerations)"
        if unschedulable
        else f"benchmark Job {status.job_name} is running"
    )
    _condition(run, status, BenchmarkConditionType.COMPLETE, False, Reason.RUNNING)
    return Verdict(status, Reason.RUNNING)


def _finished(run: Run, status: BenchmarkRunStatus, finished: Finished) -> Verdict:
    summary = finished.summary
    status.completion_time = _parse_time(finished.state.completion_time) or run.now
    if summary is not None:
        # The results URI is spelled once in status: status.resultsURI (not again inside status.results).
        status.results = summary.readable().model_copy(update={"results_uri": None})
        status.results_uri = summary.results_uri
        status.cost_per_million_output_tokens, status.roofline_efficiency = finished.cost, finished.roofline
    if finished.state.outcome == observe.JobOutcome.SUCCEEDED and summary is not None:
        status.phase = BenchmarkPhase.SUCCEEDED
        status.message = (
            f"{summary.successful_requests} requests in {summary.duration_seconds:.1f}s: "
            f"{summary.request_throughput:.2f} req/s, {summary.output_throughput:.1f} output tok/s"
        )
        if summary.failed_requests:
            status.message += f" ({summary.failed_requests} failed: {summary.errors})"
        _condition(run, status, BenchmarkConditionType.COMPLETE, True, Reason.SUCCEEDED)
        _condition(run, status, BenchmarkConditionType.FAILED, False, Reason.SUCCEEDED, "")
        return Verdict(status, Reason.SUCCEEDED)
    reason, why = _failure(run, finished)
    status.phase = BenchmarkPhase.FAILED
    status.message = f"benchmark Job {status.job_name} failed: {why}" + (
        " (partial results in status.results)" if summary else ""
    )
    _condition(run, status, BenchmarkConditionType.COMPLETE, False, reason)
    _condition(run, status, BenchmarkConditionType.FAILED, True, reason)
    return Verdict(status, reason, warning=True)


def _failure(run: Run, finished: Finished) -> tuple[Reason, str]:
    """Why a finished Job did not give a result: the reason and the words for status.message."""
    state, summary, raw = finished.state, finished.summary, finished.raw or ""
    if state.outcome == observe.JobOutcome.SUCCEEDED:
        return Reason.JOB_FAILED, f"the benchmark exited 0 but left no readable summary ({raw[:300]})"
    if state.reason == "DeadlineExceeded":
        timeout = (run.body.get("spec") or {}).get("timeout")
        return Reason.DEADLINE_EXCEEDED, f"ran past spec.timeout ({timeout}); raise it or send fewer prompts"
    if summary is not None:
        return Reason.BENCHMARK_FAILED, summary.message or "the benchmark exited non-zero"
    return Reason.JOB_FAILED, f"{state.reason}: {state.message or ''} {raw[-300:]}".strip()


# --- what was measured ------------------------------------------------------------------------------------


def spec_server(body: dict[str, Any]) -> str | None:
    ref = (body.get("spec") or {}).get("serverRef") or {}
    name: str | None = ref.get("name")
    return name


def _summary(pods: list[dict[str, Any]]) -> tuple[BenchmarkSummary | None, str | None]:
    terms = observe.terminations(pods, CONTAINER)
    raw = terms[-1].message if terms else None
    for term in reversed(terms):
        if term.message:
            try:
                return BenchmarkSummary.from_termination_message(term.message), term.message
            except ValidationError:
                continue
    return None, raw


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


# --- metrics ----------------------------------------------------------------------------------------------


def run_labels(body: dict[str, Any], status: BenchmarkRunStatus) -> dict[str, str]:
    meta = body["metadata"]
    m = status.server or MeasuredServer()
    return {
        "namespace": meta["namespace"],
        "name": meta["name"],
        "server": spec_server(body) or m.name or "",
        "model": m.model or "",
        "accelerator": m.accelerator or "",
        "topology": m.topology or "",
    }


def export_metrics(ctx: kube.Context, body: dict[str, Any], status: BenchmarkRunStatus) -> None:
    if status.results is None or status.phase not in TERMINAL:
        return
    completion = status.completion_time.timestamp() if status.completion_time else kube.now().timestamp()
    ctx.metrics.record_run(
        run_labels(body, status),
        status.results,
        succeeded=status.phase == BenchmarkPhase.SUCCEEDED,
        completion_timestamp=completion,
        cost=status.cost_per_million_output_tokens,
        roofline=status.roofline_efficiency,
    )
