"""InferenceServer → (wait for the checkpoint) → Deployment + Service (+ monitors) → Ready with endpoints."""

from __future__ import annotations

import logging
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

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
from tpuserve.controllers import kube, naming, observe, outcomes, render, render_vllm
from tpuserve.controllers.status import Reason, set_condition, write_status

log = logging.getLogger(__name__)
KIND = "InferenceServer"
MONITORS = (
    ("PodMonitoring", "monitoring.googleapis.com/v1", "podmonitorings"),
    ("ServiceMonitor", "monitoring.coreos.com/v1", "servicemonitors"),
)


def reconcile_server(ctx: kube.Context, namespace: str, name: str) -> None:
    kube.reconcile_latest(ctx, KIND, namespace, name, outcomes.guarded(KIND, _reconcile))


def _reconcile(ctx: kube.Context, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    generation = meta.get("generation")
    now = kube.now()
    old_status = InferenceServerStatus.model_validate(
        {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
    )
    status = old_status.model_copy(deep=True)
    status.observed_generation = generation
    try:
        obj = InferenceServer.model_validate(
            {k: v for k, v in body.items() if k in ("apiVersion", "kind", "metadata", "spec")}
        )
        tpu_slice = obj.spec.tpu.resolve()
    except (ValidationError, ValueError) as exc:
        status.phase, status.message = ServerPhase.FAILED, f"invalid spec: {exc}"
        status.conditions = set_condition(
            status.conditions,
            ServerConditionType.AVAILABLE,
            False,
            Reason.INVALID_SPEC,
            status.message,
            generation,
            now,
        )
        write_status(ctx, KIND, body, status, event_reason=Reason.INVALID_SPEC, warning=True)
        ctx.metrics.reconciles.labels(KIND, "invalid").inc()
        return
    spec = obj.spec
    status.tpu = TpuStatus(
        accelerator=tpu_slice.accelerator_label,
        topology=tpu_slice.topology,
        chips=tpu_slice.chips,
        machine_type=tpu_slice.machine.name,
    )
    deploy_name = naming.server_name(name)
    vllm = spec.runtime == Runtime.VLLM_TPU
    # Before any pod: a JetStream server whose weights plus preallocated KV cache cannot fit would only crash on
    # the TPU (vLLM's bound is part of the spec's validation and the CRD's).
    shortfall = None if vllm else spec.jetstream_hbm_shortfall()
    if shortfall:
        status.phase = ServerPhase.FAILED
        status.message = (
            f"{shortfall}: use a larger spec.tpu slice, a smaller engine.perDeviceBatchSize or maxTargetLength"
        )
        status.conditions = set_condition(
            status.conditions,
            ServerConditionType.AVAILABLE,
            False,
            Reason.INSUFFICIENT_HBM,
            status.message,
            generation,
            now,
        )
        write_status(ctx, KIND, body, status, event_reason=Reason.INSUFFICIENT_HBM, warning=True)
        ctx.metrics.reconciles.labels(KIND, "invalid").inc()
        return
    # A LlamaCheckpoint's status names what each runtime loads: MaxText's unscanned checkpoint, or the mirrored
    # Hugging Face directory (format huggingface).
    path_field = "huggingFacePath" if vllm else "unscannedPath"

    # 1. The checkpoint.
    if spec.checkpoint_path is not None or spec.hugging_face is not None:
        checkpoint_path: str | None = spec.checkpoint_path
        loading = f"loading {checkpoint_path}"
        if spec.hugging_face is not None:
            checkpoint_path = spec.hugging_face.repo_id
            loading = f"downloading {checkpoint_path} from the Hugging Face hub at start-up (every replica)"
        status.conditions = set_condition(
            status.conditions,
            ServerConditionType.CHECKPOINT_READY,
            True,
            Reason.CHECKPOINT_PATH,
            loading,
            generation,
            now,
        )
    else:
        assert spec.checkpoint_ref is not None
        ref = spec.checkpoint_ref.name
        ckpt = kube.get_custom(ctx, "LlamaCheckpoint", ns, ref)
        ckpt_status = (ckpt or {}).get("status") or {}
        ckpt_ready = ckpt_status.get("phase") == CheckpointPhase.READY
        checkpoint_path = ckpt_status.get(path_field) if ckpt_ready else None
        if checkpoint_path is None:
            live = kube.get_or_none(ctx.apps.read_namespaced_deployment, deploy_name, ns)
            if ckpt is None:
                reason, message = (
                    Reason.CHECKPOINT_NOT_FOUND,
                    f"LlamaCheckpoint {ref} does not exist: create it or fix spec.checkpointRef",
                )
            elif ckpt_ready:
                wanted = "format huggingface (a Hugging Face mirror)" if vllm else "format meta (a MaxText conversion)"
                reason, message = (
                    Reason.CHECKPOINT_FAILED,
                    f"LlamaCheckpoint {ref} is Ready but has no status.{path_field}: runtime {spec.runtime} "
                    f"needs a LlamaCheckpoint of {wanted}",
                )
            elif ckpt_status.get("phase") == CheckpointPhase.FAILED:
                reason, message = (
                    Reason.CHECKPOINT_FAILED,
                    f"LlamaCheckpoint {ref} failed: {ckpt_status.get('message', '')}",
                )
            else:
                reason, message = (
                    Reason.WAITING_FOR_CHECKPOINT,
                    f"waiting for LlamaCheckpoint {ref} to become Ready (now {ckpt_status.get('phase') or 'Pending'})",
                )
            status.conditions = set_condition(
                status.conditions, ServerConditionType.CHECKPOINT_READY, False, reason, message, generation, now
            )
            if live is None:
                # Nothing deployed yet: wait (the checkpoint's own events wake this object up).
                status.phase, status.message = ServerPhase.WAITING_FOR_CHECKPOINT, message
                write_status(
                    ctx, KIND, body, status, event_reason=reason, warning=reason != Reason.WAITING_FOR_CHECKPOINT
                )
                ctx.metrics.reconciles.labels(KIND, "ok").inc()
                return
            # Already deployed from an earlier Ready checkpoint: keep serving what it loaded.
            checkpoint_path = status.checkpoint_path
        else:
            status.conditions = set_condition(
                status.conditions,
                ServerConditionType.CHECKPOINT_READY,
                True,
                Reason.CHECKPOINT_READY,
                f"LlamaCheckpoint {ref} is Ready: loading {checkpoint_path}",
                generation,
                now,
            )
    status.checkpoint_path = checkpoint_path
    assert checkpoint_path is not None

    # 2. Children.
    if vllm:
        source = render_vllm.WeightSource(
            checkpoint_path,
            hub=spec.hugging_face is not None,
            revision=spec.hugging_face.revision if spec.hugging_face else None,
        )
        desired_deployment = render_vllm.render_vllm_deployment(spec, meta, ctx.settings, source)
        desired_service = render_vllm.render_vllm_service(meta)
        openai = render_vllm.openai_base_url(name, ns)
        endpoints = Endpoints(http=openai.removesuffix("/v1"), openai=openai)
    else:
        desired_deployment = render.render_deployment(spec, meta, ctx.settings, checkpoint_path)
        desired_service = render.render_service(spec, meta)
        endpoints = Endpoints(
            grpc=render.service_endpoint(name, ns), http=f"http://{deploy_name}.{ns}.svc.cluster.local:{HTTP_PORT}"
        )
    deployment = kube.ensure_child(ctx, KIND, desired_deployment)
    kube.ensure_child(ctx, KIND, desired_service)
    monitor_notes = _ensure_monitors(ctx, spec.metrics.pod_monitoring, spec.metrics.service_monitor, meta, vllm)
    status.deployment_name, status.service_name = deploy_name, deploy_name
    status.endpoints = endpoints

    # 3. Observe.
    dstatus = deployment.get("status") or {}
    desired = spec.replicas
    ready = int(dstatus.get("readyReplicas") or 0)
    status.replicas, status.ready_replicas = desired, ready
    pods = kube.list_pods(ctx, ns, render.server_selector(name))
    unschedulable = observe.unschedulable_message(pods)
    if unschedulable:
        msg = (
            f"no node can take a {tpu_slice.generation.name} {tpu_slice.topology} server pod "
            f"({tpu_slice.chips} google.com/tpu, nodeSelector {tpu_slice.node_selector()}): {unschedulable}. "
            "Add a matching TPU node pool or capacity, or change spec.tpu"
        )
        status.conditions = set_condition(
            status.conditions, ServerConditionType.SCHEDULED, False, Reason.UNSCHEDULABLE, msg, generation, now
        )
    elif desired > 0 and observe.all_scheduled(pods) and len(pods) >= desired:
        status.conditions = set_condition(
            status.conditions,
            ServerConditionType.SCHEDULED,
            True,
            Reason.SCHEDULED,
            f"{len(pods)} server pod(s) bound to TPU nodes",
            generation,
            now,
        )
    else:
        status.conditions = set_condition(
            status.conditions,
            ServerConditionType.SCHEDULED,
            None,
            Reason.PODS_PENDING,
            "waiting for the scheduler",
            generation,
            now,
        )
    rolled_out = (
        int(dstatus.get("observedGeneration") or 0) >= int(deployment["metadata"].get("generation") or 0)
        and int(dstatus.get("updatedReplicas") or 0) >= desired
    )
    if desired > 0 and ready >= desired and rolled_out:
        status.phase = ServerPhase.READY
        serving_at = endpoints.openai if vllm else endpoints.grpc
        status.message = f"{ready}/{desired} replica(s) serving at {serving_at}" + monitor_notes
        if vllm:
            status.message += spec.kv_capacity_note()
        status.conditions = set_condition(
            status.conditions, ServerConditionType.AVAILABLE, True, Reason.AVAILABLE, status.message, generation, now
        )
        reason = Reason.AVAILABLE
    else:
        status.phase = ServerPhase.DEPLOYING
        problem = observe.container_problem(pods)
        refused = observe.replica_failure(deployment)
        if unschedulable:
            status.message = f"Unschedulable: {unschedulable}"
            reason = Reason.UNSCHEDULABLE
        elif refused:
            status.message = f"the API server refuses the server pods: {refused} (what the pods need: docs/security.md)"
            reason = Reason.PODS_REFUSED
        elif problem:
            status.message = (
                f"a server container is failing ({problem}); check the image, "
                f"{'vllm.extraArgs' if vllm else 'engine.extraArgs'} and "
                f"`kubectl logs deploy/{deploy_name} -c {'vllm' if vllm else 'jetstream'}`"
            )
            reason = Reason.CONTAINER_FAILING
        else:
            status.message = (
                f"{ready}/{desired} replica(s) ready; the server loads weights and compiles (minutes)" + monitor_notes
            )
            reason = Reason.DEPLOYING
        status.conditions = set_condition(
            status.conditions, ServerConditionType.AVAILABLE, ready > 0, reason, status.message, generation, now
        )
    warning = reason in (Reason.UNSCHEDULABLE, Reason.CONTAINER_FAILING, Reason.PODS_REFUSED)
    write_status(ctx, KIND, body, status, event_reason=reason, warning=warning)
    ctx.metrics.reconciles.labels(KIND, "ok").inc()


def _ensure_monitors(
    ctx: kube.Context, pod_monitoring: bool, service_monitor: bool, meta: dict[str, Any], vllm: bool = False
) -> str:
    # vLLM serves /metrics on its API port; JetStream's exporter has its own port (default path).
    scrape: dict[str, Any] = {"app": "vllm", "port": "http", "path": "/metrics"} if vllm else {}
    notes = []
    for (kind, group_version, plural), wanted in zip(MONITORS, (pod_monitoring, service_monitor), strict=True):
        if not wanted:
            continue
        if not ctx.has_api_resource(group_version, plural):
            notes.append(f"{kind} not created: {group_version} {plural} is not served by this cluster (or not allowed)")
            continue
        desired = (
            render.render_pod_monitoring(meta, **scrape)
            if kind == "PodMonitoring"
            else render.render_service_monitor(meta, **scrape)
        )
        try:
            kube.ensure_child(ctx, KIND, desired)
        except ApiException as exc:
            if exc.status not in (403, 404):
                raise
            notes.append(f"{kind} not created: {exc.status} {exc.reason}")
    return ("; " + "; ".join(notes)) if notes else ""
