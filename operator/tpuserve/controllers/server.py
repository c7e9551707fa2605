"""InferenceServer → (wait for the checkpoint) → Deployment + Service (+ monitors) → Ready with endpoints.

Steps, in order: the spec must fit the slice's HBM (JetStream); the checkpoint to load is resolved (waiting for a
LlamaCheckpoint, unless a Deployment already serves an earlier one); the children are created or patched back to
what is rendered (`kube.ensure_child`: a hand-edited Deployment or Service is restored); the server pods are read.
`compute_status` turns what the steps saw (`Observed`) into the status; reconcile.commit writes it once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from tpuserve.api import (
    HTTP_PORT,
    CheckpointPhase,
    Endpoints,
    InferenceServer,
    InferenceServerStatus,
    Runtime,
    ServerConditionType,
    ServerPhase,
    TpuStatus,
)
from tpuserve.controllers import kube, monitors, naming, observe, render, render_vllm
from tpuserve.controllers.reconcile import Controller, Parsed, Verdict
from tpuserve.controllers.status import Reason, set_condition

log = logging.getLogger(__name__)
KIND = "InferenceServer"
Server = Parsed[InferenceServer, InferenceServerStatus]


@dataclass(frozen=True)
class CheckpointView:
    """The checkpoint to load and the CheckpointReady condition; `path` None: nothing to load (wait)."""

    path: str | None
    ready: bool
    reason: Reason
    message: str


@dataclass(frozen=True)
class Rollout:
    """The children as the API server holds them after the ensure steps, and the server pods."""

    endpoints: Endpoints
    deployment: dict[str, Any]
    pods: list[dict[str, Any]]
    monitor_notes: str = ""


@dataclass(frozen=True)
class Observed:
    checkpoint: CheckpointView
    rollout: Rollout | None = None  # None: nothing deployed, waiting for the checkpoint


def _reconcile(ctx: kube.Context, server: Server) -> Verdict:
    spec = server.obj.spec
    # Before any pod: a JetStream server whose weights plus preallocated KV cache cannot fit would only crash on
    # the TPU (vLLM's bound is part of the spec's validation and the CRD's).
    shortfall = None if spec.runtime == Runtime.VLLM_TPU else spec.jetstream_hbm_shortfall()
    if shortfall:
        return insufficient_hbm(server, shortfall)
    checkpoint = resolve_checkpoint(ctx, server)
    if checkpoint.path is None:
        if kube.get_deployment(ctx, server.namespace, naming.server_name(server.name)) is None:
            return compute_status(server, Observed(checkpoint))  # the checkpoint's own events wake this up
        # Already deployed from an earlier Ready checkpoint: keep serving what it loaded.
        checkpoint = CheckpointView(server.old.checkpoint_path, False, checkpoint.reason, checkpoint.message)
    return compute_status(server, Observed(checkpoint, ensure_children(ctx, server, checkpoint.path or "")))


CONTROLLER = Controller(
    KIND, InferenceServer, InferenceServerStatus, _reconcile, check_spec=lambda obj: obj.spec.tpu.resolve()
)


def reconcile_server(ctx: kube.Context, namespace: str, name: str) -> None:
    CONTROLLER(ctx, namespace, name)


# --- steps ------------------------------------------------------------------------------------------------


def resolve_checkpoint(ctx: kube.Context, server: Server) -> CheckpointView:
    spec = server.obj.spec
    if spec.hugging_face is not None:
        path = spec.hugging_face.repo_id
        message = f"downloading {path} from the Hugging Face hub at start-up (every replica)"
        return CheckpointView(path, True, Reason.CHECKPOINT_PATH, message)
    if spec.checkpoint_path is not None:
        return CheckpointView(spec.checkpoint_path, True, Reason.CHECKPOINT_PATH, f"loading {spec.checkpoint_path}")
    assert spec.checkpoint_ref is not None
    ref = spec.checkpoint_ref.name
    ckpt = kube.get_custom(ctx, "LlamaCheckpoint", server.namespace, ref)
    return checkpoint_view(server.obj, ref, ckpt)


def checkpoint_view(server: InferenceServer, ref: str, ckpt: dict[str, Any] | None) -> CheckpointView:
    """What a LlamaCheckpoint offers this server: its status names what each runtime loads (MaxText's unscanned
    checkpoint, or the mirrored Hugging Face directory of format huggingface)."""
    vllm = server.spec.runtime == Runtime.VLLM_TPU
    path_field = "huggingFacePath" if vllm else "unscannedPath"
    ckpt_status = (ckpt or {}).get("status") or {}
    ready = ckpt_status.get("phase") == CheckpointPhase.READY
    path = ckpt_status.get(path_field) if ready else None
    if path is not None:
        return CheckpointView(path, True, Reason.CHECKPOINT_READY, f"LlamaCheckpoint {ref} is Ready: loading {path}")
    if ckpt is None:
        message = f"LlamaCheckpoint {ref} does not exist: create it or fix spec.checkpointRef"
        return CheckpointView(None, False, Reason.CHECKPOINT_NOT_FOUND, message)
    if ready:
        wanted = "format huggingface (a Hugging Face mirror)" if vllm else "format meta (a MaxText conversion)"
        message = (
            f"LlamaCheckpoint {ref} is Ready but has no status.{path_field}: runtime {server.spec.runtime} "
            f"needs a LlamaCheckpoint of {wanted}"
        )
        return CheckpointView(None, False, Reason.CHECKPOINT_FAILED, message)
    if ckpt_status.get("phase") == CheckpointPhase.FAILED:
        message = f"LlamaCheckpoint {ref} failed: {ckpt_status.get('message', '')}"
        return CheckpointView(None, False, Reason.CHECKPOINT_FAILED, message)
    phase = ckpt_status.get("phase") or "Pending"
    message = f"waiting for LlamaCheckpoint {ref} to become Ready (now {phase})"
    return CheckpointView(None, False, Reason.WAITING_FOR_CHECKPOINT, message)


def ensure_children(ctx: kube.Context, server: Server, checkpoint_path: str) -> Rollout:
    """Deployment, Service and the monitors, created or patched back to what is rendered; then the pods."""
    spec, meta, name, ns = server.obj.spec, server.meta, server.name, server.namespace
    vllm = spec.runtime == Runtime.VLLM_TPU
    if vllm:
        hub = spec.hugging_face
        source = render_vllm.WeightSource(checkpoint_path, hub=hub is not None, revision=hub.revision if hub else None)
        desired_deployment = render_vllm.render_vllm_deployment(spec, meta, ctx.settings, source)
        desired_service = render_vllm.render_vllm_service(meta)
        openai = render_vllm.openai_base_url(name, ns)
        endpoints = Endpoints(http=openai.removesuffix("/v1"), openai=openai)
    else:
        desired_deployment = render.render_deployment(spec, meta, ctx.settings, checkpoint_path)
        desired_service = render.render_service(spec, meta)
        http = f"http://{naming.server_name(name)}.{ns}.svc.cluster.local:{HTTP_PORT}"
        endpoints = Endpoints(grpc=render.service_endpoint(name, ns), http=http)
    deployment = kube.ensure_child(ctx, KIND, desired_deployment)
    kube.ensure_child(ctx, KIND, desired_service)
    notes = ensure_monitors(ctx, spec.metrics.pod_monitoring, spec.metrics.service_monitor, meta, vllm)
    pods = kube.list_pods(ctx, ns, render.server_selector(name))
    return Rollout(endpoints, deployment, pods, ("; " + "; ".join(notes)) if notes else "")


def ensure_monitors(
    ctx: kube.Context, pod_monitoring: bool, service_monitor: bool, meta: dict[str, Any], vllm: bool = False
) -> list[str]:
    """The wanted PodMonitoring/ServiceMonitor; a note for each one the cluster does not serve or allow."""
    # vLLM serves /metrics on its API port; JetStream's exporter has its own port (default path).
    scrape: dict[str, Any] = {"app": "vllm", "port": "http", "path": "/metrics"} if vllm else {}
    notes = []
    wanted = {monitors.POD_MONITORING: pod_monitoring, monitors.SERVICE_MONITOR: service_monitor}
    for monitor in (m for m, on in wanted.items() if on):
        if not ctx.has_api_resource(monitor.group_version, monitor.plural):
            notes.append(
                f"{monitor.kind} not created: {monitor.group_version} {monitor.plural} is not served by this "
                "cluster (or not allowed)"
            )
            continue
        if monitor is monitors.POD_MONITORING:
            desired = render.render_pod_monitoring(meta, **scrape)
        else:
            desired = render.render_service_monitor(meta, **scrape)
        try:
            kube.ensure_child(ctx, KIND, desired)
        except ApiException as exc:
            if exc.status not in (403, 404):
                raise
            notes.append(f"{monitor.kind} not created: {exc.status} {exc.reason}")
    return notes


# --- status -----------------------------------------------------------------------------------------------


def _base(server: Server) -> InferenceServerStatus:
    status = server.old.model_copy(deep=True)
    status.observed_generation = server.generation
    tpu_slice = server.obj.spec.tpu.resolve()
    status.tpu = TpuStatus(
        accelerator=tpu_slice.accelerator_label,
        topology=tpu_slice.topology,
        chips=tpu_slice.chips,
        machine_type=tpu_slice.machine.name,
    )
    return status


def _condition(
    server: Server, status: InferenceServerStatus, type_: str, value: bool | None, reason: Reason, message: str
) -> None:
    status.conditions = set_condition(status.conditions, type_, value, reason, message, server.generation, server.now)


def insufficient_hbm(server: Server, shortfall: str) -> Verdict:
    status = _base(server)
    status.phase = ServerPhase.FAILED
    status.message = f"{shortfall}: use a larger spec.tpu slice, a smaller engine.perDeviceBatchSize or maxTargetLength"
    _condition(server, status, ServerConditionType.AVAILABLE, False, Reason.INSUFFICIENT_HBM, status.message)
    return Verdict(status, Reason.INSUFFICIENT_HBM, warning=True, result="invalid")


def compute_status(server: Server, observed: Observed) -> Verdict:
    """The new status from the live one and what the steps saw; no API calls."""
    status = _base(server)
    ckpt = observed.checkpoint
    _condition(server, status, ServerConditionType.CHECKPOINT_READY, ckpt.ready, ckpt.reason, ckpt.message)
    if observed.rollout is None:
        status.phase, status.message = ServerPhase.WAITING_FOR_CHECKPOINT, ckpt.message
        return Verdict(status, ckpt.reason, warning=ckpt.reason != Reason.WAITING_FOR_CHECKPOINT)
    rollout = observed.rollout
    status.checkpoint_path = ckpt.path
    name = naming.server_name(server.name)
    status.deployment_name, status.service_name, status.endpoints = name, name, rollout.endpoints
    desired = server.obj.spec.replicas
    ready = int((rollout.deployment.get("status") or {}).get("readyReplicas") or 0)
    status.replicas, status.ready_replicas = desired, ready
    _scheduled_condition(server, status, rollout.pods)
    if desired > 0 and ready >= desired and _rolled_out(rollout.deployment, desired):
        vllm = server.obj.spec.runtime == Runtime.VLLM_TPU
        serving_at = rollout.endpoints.openai if vllm else rollout.endpoints.grpc
        status.phase = ServerPhase.READY
        status.message = f"{ready}/{desired} replica(s) serving at {serving_at}" + rollout.monitor_notes
        if vllm:
            status.message += server.obj.spec.kv_capacity_note()
        _condition(server, status, ServerConditionType.AVAILABLE, True, Reason.AVAILABLE, status.message)
        return Verdict(status, Reason.AVAILABLE)
    reason, status.message = _not_ready(server, rollout, ready, desired)
    status.phase = ServerPhase.DEPLOYING
    _condition(server, status, ServerConditionType.AVAILABLE, ready > 0, reason, status.message)
    warning = reason in (Reason.UNSCHEDULABLE, Reason.CONTAINER_FAILING, Reason.PODS_REFUSED)
    return Verdict(status, reason, warning=warning)


def _rolled_out(deployment: dict[str, Any], desired: int) -> bool:
    dstatus = deployment.get("status") or {}
    return (
        int(dstatus.get("observedGeneration") or 0) >= int(deployment["metadata"].get("generation") or 0)
        and int(dstatus.get("updatedReplicas") or 0) >= desired
    )


def _scheduled_condition(server: Server, status: InferenceServerStatus, pods: list[dict[str, Any]]) -> None:
    unschedulable = observe.unschedulable_message(pods)
    desired = server.obj.spec.replicas
    scheduled = ServerConditionType.SCHEDULED
    if unschedulable:
        tpu_slice = server.obj.spec.tpu.resolve()
        message = (
            f"no node can take a {tpu_slice.generation.name} {tpu_slice.topology} server pod "
            f"({tpu_slice.chips} google.com/tpu, nodeSelector {tpu_slice.node_selector()}): {unschedulable}. "
            "Add a matching TPU node pool or capacity, or change spec.tpu"
        )
        _condition(server, status, scheduled, False, Reason.UNSCHEDULABLE, message)
    elif desired > 0 and observe.all_scheduled(pods) and len(pods) >= desired:
        message = f"{len(pods)} server pod(s) bound to TPU nodes"
        _condition(server, status, scheduled, True, Reason.SCHEDULED, message)
    else:
        _condition(server, status, scheduled, None, Reason.PODS_PENDING, "waiting for the scheduler")


def _not_ready(server: Server, rollout: Rollout, ready: int, desired: int) -> tuple[Reason, str]:
    """Why the server is not Ready yet: the first of unschedulable, refused pods, a failing container, loading."""
    unschedulable = observe.unschedulable_message(rollout.pods)
    if unschedulable:
        return Reason.UNSCHEDULABLE, f"Unschedulable: {unschedulable}"
    refused = observe.replica_failure(rollout.deployment)
    if refused:
        return (
            Reason.PODS_REFUSED,
            f"the API server refuses the server pods: {refused} (what the pods need: docs/security.md)",
        )
    problem = observe.container_problem(rollout.pods)
    if problem:
        vllm = server.obj.spec.runtime == Runtime.VLLM_TPU
        return Reason.CONTAINER_FAILING, (
            f"a server container is failing ({problem}); check the image, "
            f"{'vllm.extraArgs' if vllm else 'engine.extraArgs'} and "
            f"`kubectl logs deploy/{naming.server_name(server.name)} -c {'vllm' if vllm else 'jetstream'}`"
        )
    loading = f"{ready}/{desired} replica(s) ready; the server loads weights and compiles (minutes)"
    return Reason.DEPLOYING, loading + rollout.monitor_notes
