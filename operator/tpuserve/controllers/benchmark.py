"""BenchmarkRun → (wait for the server) → benchmark Job → results from the termination message into status
and Prometheus."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from tpuserve import llama, tpu
from tpuserve.api import (
    BenchmarkConditionType,
    BenchmarkPhase,
    BenchmarkRun,
    BenchmarkRunStatus,
    InferenceServer,
    MeasuredServer,
    Protocol,
    ServerPhase,
)
from tpuserve.controllers import kube, naming, observe, outcomes, render, render_vllm
from tpuserve.controllers.status import Reason, set_condition, write_status
from tpuserve.results import BenchmarkSummary

log = logging.getLogger(__name__)
KIND = "BenchmarkRun"
CONTAINER = render.BENCH_CONTAINER
TERMINAL = (BenchmarkPhase.SUCCEEDED, BenchmarkPhase.FAILED)


def reconcile_benchmark(ctx: kube.Context, namespace: str, name: str) -> None:
    kube.reconcile_latest(ctx, KIND, namespace, name, outcomes.guarded(KIND, _reconcile))


def _reconcile(ctx: kube.Context, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    generation = meta.get("generation")
    now = kube.now()
    status = BenchmarkRunStatus.model_validate({k: v for k, v in (body.get("status") or {}).items() if k != "kopf"})
    status.observed_generation = generation
    if status.phase in TERMINAL:
        export_metrics(ctx, body, status)
        ctx.metrics.set_phase(KIND, ns, name, str(status.phase), meta.get("uid"))
        ctx.metrics.reconciles.labels(KIND, "ok").inc()
        return
    try:
        obj = BenchmarkRun.model_validate(
            {k: v for k, v in body.items() if k in ("apiVersion", "kind", "metadata", "spec")}
        )
    except ValidationError as exc:
        status.phase, status.message = BenchmarkPhase.FAILED, f"invalid spec: {exc}"
        status.conditions = set_condition(
            status.conditions, BenchmarkConditionType.FAILED, True, Reason.INVALID_SPEC, status.message, generation, now
        )
        write_status(ctx, KIND, body, status, event_reason=Reason.INVALID_SPEC, warning=True)
        ctx.metrics.reconciles.labels(KIND, "invalid").inc()
        return
    spec = obj.spec
    job_name = naming.job_name_bench(name)
    job = kube.get_owned_job(ctx, ns, job_name, meta["uid"])

    if job is None and status.job_name and status.phase == BenchmarkPhase.RUNNING:
        # The Job was started and is gone before its results were read (deleted by hand, or a Job TTL while the
        # operator was down): running it again would measure twice under one name. A re-run is a new object.
        status.phase = BenchmarkPhase.FAILED
        status.message = (
            f"benchmark Job {job_name} disappeared before its results were recorded; create a new BenchmarkRun "
            "to run again"
        )
        status.completion_time = now
        status.conditions = set_condition(
            status.conditions, BenchmarkConditionType.FAILED, True, Reason.JOB_FAILED, status.message, generation, now
        )
        write_status(ctx, KIND, body, status, event_reason=Reason.JOB_FAILED, warning=True)
        ctx.metrics.reconciles.labels(KIND, "ok").inc()
        return
    if job is None:
        # 1. The target.
        if spec.target is not None:
            target = spec.target.address()
            protocol = spec.target.protocol
            measured = MeasuredServer(name=target, protocol=protocol, endpoint=target)
            model, tokenizer = None, None
            status.conditions = set_condition(
                status.conditions,
                BenchmarkConditionType.SERVER_READY,
                None,
                Reason.EXTERNAL_TARGET,
                f"external target {target} (not checked before the run)",
                generation,
                now,
            )
        else:
            assert spec.server_ref is not None
            ref = spec.server_ref.name
            server_body = kube.get_custom(ctx, "InferenceServer", ns, ref)
            server_status = (server_body or {}).get("status") or {}
            if server_body is None or server_status.get("phase") != ServerPhase.READY:
                if server_body is None:
                    reason, message = (
                        Reason.SERVER_NOT_FOUND,
                        f"InferenceServer {ref} does not exist: create it or fix spec.serverRef",
                    )
                else:
                    reason = Reason.WAITING_FOR_SERVER
                    phase = server_status.get("phase") or "Pending"
                    detail = server_status.get("message") or ""
                    message = f"waiting for InferenceServer {ref} to become Ready (now {phase}" + (
                        f": {detail})" if detail else ")"
                    )
                status.phase, status.message = BenchmarkPhase.WAITING_FOR_SERVER, message
                status.server = MeasuredServer(name=ref)
                status.conditions = set_condition(
                    status.conditions, BenchmarkConditionType.SERVER_READY, False, reason, message, generation, now
                )
                write_status(ctx, KIND, body, status, event_reason=reason, warning=reason == Reason.SERVER_NOT_FOUND)
                ctx.metrics.reconciles.labels(KIND, "ok").inc()
                return
            server = InferenceServer.model_validate(
                {k: v for k, v in server_body.items() if k in ("apiVersion", "kind", "metadata", "spec")}
            )
            endpoints = server_status.get("endpoints") or {}
            if server.spec.runtime == "vllm-tpu":  # vLLM serves the OpenAI API only
                protocol = Protocol.OPENAI
                target = (endpoints.get("openai") or render_vllm.openai_base_url(ref, ns)).removesuffix("/v1")
            else:
                protocol = Protocol.JETSTREAM
                target = endpoints.get("grpc") or render.service_endpoint(ref, ns)
            default_image = ctx.settings.vllm_image if server.spec.runtime == "vllm-tpu" else ctx.settings.server_image
            measured = measured_server(server, server_status, target, default_image)
            measured.protocol = protocol
            model, tokenizer = server.spec.model, server.spec.effective_tokenizer_path()
            if protocol == Protocol.OPENAI:
                # vLLM serves under its --model (or --served-model-name): the benchmark asks the server (GET
                # /v1/models); MaxText's tokenizer file is no use to it: only an explicit tokenizer.json is.
                model, tokenizer = None, server.spec.tokenizer_path
            status.conditions = set_condition(
                status.conditions,
                BenchmarkConditionType.SERVER_READY,
                True,
                Reason.SERVER_READY,
                f"InferenceServer {ref} is Ready at {target}",
                generation,
                now,
            )
        # 2. The Job.
        desired = render.render_bench_job(
            spec, meta, ctx.settings, target=target, model=model, tokenizer=tokenizer, protocol=protocol
        )
        kube.ensure_child(ctx, KIND, desired, patchable=False)
        status.server, status.job_name = measured, job_name
        status.start_time = status.start_time or now
        status.phase = BenchmarkPhase.RUNNING
        status.message = f"benchmark Job {job_name} started against {target}"
        status.conditions = set_condition(
            status.conditions, BenchmarkConditionType.COMPLETE, False, Reason.RUNNING, status.message, generation, now
        )
        write_status(ctx, KIND, body, status, event_reason=Reason.RUNNING)
        ctx.metrics.reconciles.labels(KIND, "ok").inc()
        return

    # 3. Follow the Job.
    job_dict = job
    state = observe.job_state(job_dict)
    status.job_name = job_name
    if state.outcome == observe.JobOutcome.RUNNING:
        pods = kube.job_pods(ctx, job_dict)
        unschedulable = observe.unschedulable_message(pods)
        status.phase = BenchmarkPhase.RUNNING
        status.message = (
            f"benchmark pod cannot be scheduled: {unschedulable} (check spec.nodeSelector/tolerations)"
            if unschedulable
            else f"benchmark Job {job_name} is running"
        )
        status.conditions = set_condition(
            status.conditions, BenchmarkConditionType.COMPLETE, False, Reason.RUNNING, status.message, generation, now
        )
        write_status(ctx, KIND, body, status, event_reason=Reason.RUNNING)
        ctx.metrics.reconciles.labels(KIND, "ok").inc()
        return
    pods = kube.job_pods(ctx, job_dict)
    summary, raw = _summary(pods)
    status.completion_time = _parse_time(state.completion_time) or now
    if summary is not None:
        status.results = summary
        status.results_uri = summary.results_uri
        status.cost_per_million_output_tokens, status.roofline_efficiency = _derived(
            ctx, spec_server(body), status, summary
        )
    if state.outcome == observe.JobOutcome.SUCCEEDED and summary is not None:
        status.phase = BenchmarkPhase.SUCCEEDED
        status.message = (
            f"{summary.successful_requests} requests in {summary.duration_seconds:.1f}s: "
            f"{summary.request_throughput:.2f} req/s, {summary.output_throughput:.1f} output tok/s"
        )
        if summary.failed_requests:
            status.message += f" ({summary.failed_requests} failed: {summary.errors})"
        status.conditions = set_condition(
            status.conditions, BenchmarkConditionType.COMPLETE, True, Reason.SUCCEEDED, status.message, generation, now
        )
        status.conditions = set_condition(
            status.conditions, BenchmarkConditionType.FAILED, False, Reason.SUCCEEDED, "", generation, now
        )
        reason, warning = Reason.SUCCEEDED, False
    else:
        if state.outcome == observe.JobOutcome.SUCCEEDED:
            reason, why = (
                Reason.JOB_FAILED,
                f"the benchmark exited 0 but left no readable summary ({(raw or '')[:300]})",
            )
        elif state.reason == "DeadlineExceeded":
            reason, why = (
                Reason.DEADLINE_EXCEEDED,
                f"ran past spec.timeout ({body['spec'].get('timeout')}); raise it or send fewer prompts",
            )
        elif summary is not None:
            reason, why = Reason.BENCHMARK_FAILED, summary.message or "the benchmark exited non-zero"
        else:
            reason, why = Reason.JOB_FAILED, f"{state.reason}: {state.message or ''} {(raw or '')[-300:]}".strip()
        status.phase = BenchmarkPhase.FAILED
        status.message = f"benchmark Job {job_name} failed: {why}" + (
            " (partial results in status.results)" if summary else ""
        )
        status.conditions = set_condition(
            status.conditions, BenchmarkConditionType.COMPLETE, False, reason, status.message, generation, now
        )
        status.conditions = set_condition(
            status.conditions, BenchmarkConditionType.FAILED, True, reason, status.message, generation, now
        )
        warning = True
    write_status(ctx, KIND, body, status, event_reason=reason, warning=warning)
    export_metrics(ctx, body, status)
    ctx.metrics.reconciles.labels(KIND, "ok").inc()


def spec_server(body: dict[str, Any]) -> str | None:
    ref = (body.get("spec") or {}).get("serverRef") or {}
    return ref.get("name")


def measured_server(
    server: InferenceServer, server_status: dict[str, Any], target: str, default_image: str
) -> MeasuredServer:
    tpu_slice = server.spec.tpu.resolve()
    return MeasuredServer(
        name=server.metadata.get("name"),
        endpoint=target,
        model=server.spec.model,
        accelerator=tpu_slice.accelerator_label,
        topology=tpu_slice.topology,
        chips=tpu_slice.chips,
        machine_type=tpu_slice.machine.name,
        replicas=int(server_status.get("readyReplicas") or server.spec.replicas),
        image=server.spec.effective_image(default_image),
        engine_args=_server_args(server, server_status.get("checkpointPath") or ""),
    )


def _server_args(server: InferenceServer, checkpoint_path: str) -> list[str]:
    """The server's arguments as rendered: MaxText key=value for JetStream, vLLM --flag=value for vLLM."""
    if server.spec.runtime == "vllm-tpu":
        hub = server.spec.hugging_face
        source = render_vllm.WeightSource(checkpoint_path, hub=hub is not None, revision=hub.revision if hub else None)
        return render_vllm.vllm_args(server.spec, source)
    return render.server_args(server.spec, checkpoint_path)


def _engine_value(args: list[str], key: str) -> str | None:
    for arg in args:
        if arg.startswith(key + "="):
            return arg.split("=", 1)[1]
    return None


def _derived(
    ctx: kube.Context, server: str | None, status: BenchmarkRunStatus, summary: BenchmarkSummary
) -> tuple[float | None, float | None]:
    """Cost per million output tokens and roofline efficiency, for runs against a known TPU slice."""
    m = status.server
    if server is None or m is None or not m.accelerator or not m.topology or summary.output_throughput <= 0:
        return None, None
    try:
        tpu_slice = tpu.resolve(m.accelerator, m.topology)
    except tpu.CatalogError:
        return None, None
    replicas = max(m.replicas or 1, 1)
    price = ctx.settings.usd_per_chip_hour(tpu_slice.generation)
    cost = tpu.cost_per_million_tokens(tpu_slice, summary.output_throughput / replicas, price)
    roofline = None
    if m.model in llama.MODELS and summary.successful_requests > 0:
        arch = llama.arch(m.model)
        dtype = _engine_value(m.engine_args, "weight_dtype") or "bfloat16"
        weight_bytes = arch.weight_bytes("int8" if _engine_value(m.engine_args, "quantization") else dtype)
        # Decode batch: MaxText's slots (per chip), or vLLM's --max-num-seqs.
        max_num_seqs = _engine_value(m.engine_args, "--max-num-seqs")
        per_device = float(_engine_value(m.engine_args, "per_device_batch_size") or 1)
        batch = int(max_num_seqs) if max_num_seqs else max(int(per_device * tpu_slice.chips), 1)
        # Mean live context during decode: the prompt plus half the answer.
        context = (summary.total_input_tokens + summary.total_output_tokens / 2) / summary.successful_requests
        ceiling = tpu.decode_roofline_tokens_per_second(
            tpu_slice, weight_bytes, arch.kv_bytes_per_token(dtype), batch, context
        )
        roofline = summary.output_throughput / (ceiling * replicas)
    return round(cost, 6), (round(roofline, 6) if roofline is not None else None)


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
