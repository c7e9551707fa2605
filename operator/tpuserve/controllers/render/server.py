"""A `jetstream-maxtext` InferenceServer's children: the Deployment (MaxText server plus the HTTP sidecar), the
Service, and the scrape configs (PodMonitoring, ServiceMonitor) that the vllm-tpu runtime shares."""

from __future__ import annotations

import math
from typing import Any

from tpuserve import tpu
from tpuserve.api import GRPC_PORT, HTTP_PORT, InferenceServer, InferenceServerSpec
from tpuserve.api.jetstream import secret_arg_env_name
from tpuserve.controllers import monitors, naming, pod_security
from tpuserve.controllers.render.common import (
    TPU_TOLERATION,
    child_meta,
    number,
    pod_annotations,
    render_template,
    resources,
)
from tpuserve.settings import OperatorSettings


def server_args(spec: InferenceServerSpec, checkpoint_path: str) -> list[str]:
    """MaxText key=value arguments (maxengine-server's entrypoint passes them after base.yml)."""
    e = spec.engine
    args = {
        "model_name": spec.model,
        "tokenizer_path": spec.effective_tokenizer_path(),
        "load_parameters_path": checkpoint_path,
        "max_prefill_predict_length": str(e.max_prefill_predict_length),
        "max_target_length": str(e.max_target_length),
        "per_device_batch_size": number(e.per_device_batch_size),
        "ici_fsdp_parallelism": str(e.ici_fsdp_parallelism),
        "ici_autoregressive_parallelism": str(e.ici_autoregressive_parallelism),
        "ici_tensor_parallelism": str(e.ici_tensor_parallelism),
        "scan_layers": str(e.scan_layers).lower(),
        "weight_dtype": str(e.weight_dtype),
        "attention": str(e.attention),
    }
    if e.quantization is not None:
        args["quantization"] = str(e.quantization)
    if e.quantize_kvcache:
        args["quantize_kvcache"] = "true"
    if spec.metrics.enabled:
        args["prometheus_port"] = str(spec.metrics.port)
    rendered = [f"{k}={v}" for k, v in args.items()]
    # extraArgs last, sorted for a stable rendering; the API refuses keys rendered above.
    rendered += [f"{k}={v}" for k, v in sorted(e.extra_args.items())]
    # Values from Secrets: the kubelet expands $(VAR) from the container's env (server_secret_env).
    rendered += [f"{k}=$({secret_arg_env_name(k)})" for k in sorted(e.extra_args_from)]
    return rendered


def server_secret_env(spec: InferenceServerSpec) -> list[dict[str, Any]]:
    """The server container's env: one variable per engine.extraArgsFrom entry, read from its Secret."""
    return [
        {
            "name": secret_arg_env_name(key),
            "valueFrom": {"secretKeyRef": {"name": source.secret_key_ref.name, "key": source.secret_key_ref.key}},
        }
        for key, source in sorted(spec.engine.extra_args_from.items())
    ]


def server_child_meta(owner_meta: dict[str, Any], app: str) -> dict[str, Any]:
    """Metadata of the Deployment, Service and scrape configs of an InferenceServer (they share its name)."""
    return child_meta(InferenceServer.KIND, owner_meta, naming.server_name(owner_meta["name"]), app, "server")


def server_pod_fields(
    spec: InferenceServerSpec, owner_meta: dict[str, Any], settings: OperatorSettings, app: str, image: str
) -> dict[str, Any]:
    """What both runtimes' Deployment templates take alike: the Deployment's metadata, the server image, replicas,
    the TPU placement, the pod's identity and annotations, the startup budget."""
    tpu_slice = spec.tpu.resolve()
    return {
        "meta": server_child_meta(owner_meta, app),
        "image": image,
        "replicas": spec.replicas,
        "selector": server_selector(owner_meta["name"]),
        "pod_annotations": pod_annotations(spec.pod_annotations, owner_meta),
        "service_account": spec.service_account_name or settings.workload_service_account,
        "node_selector": tpu_slice.node_selector(),
        "tolerations": [TPU_TOLERATION],
        "pull_policy": settings.image_pull_policy,
        "resources": server_resources(spec, tpu_slice.chips),
        "startup_failure_threshold": max(math.ceil(settings.server_startup_seconds / 10), 1),
    }


def server_selector(owner_name: str) -> dict[str, str]:
    return {naming.LABEL_SERVER: naming.labels(InferenceServer.KIND, owner_name, "", "")[naming.LABEL_SERVER]}


def server_resources(spec: InferenceServerSpec, chips: int) -> dict[str, Any]:
    base = resources(spec.resources)
    requests = {**base.get("requests", {}), tpu.TPU_RESOURCE: str(chips)}
    limits = {**base.get("limits", {}), tpu.TPU_RESOURCE: str(chips)}
    return {"requests": requests, "limits": limits}


def render_deployment(
    spec: InferenceServerSpec, owner_meta: dict[str, Any], settings: OperatorSettings, checkpoint_path: str
) -> dict[str, Any]:
    ports = [{"name": "grpc", "containerPort": GRPC_PORT}]
    if spec.metrics.enabled:
        ports.append({"name": "metrics", "containerPort": spec.metrics.port})
    return render_template(
        "deployment.yaml.j2",
        **server_pod_fields(spec, owner_meta, settings, "jetstream", spec.effective_image(settings.server_image)),
        http_image=spec.effective_http_image(settings.http_image),
        server_args=server_args(spec, checkpoint_path),
        server_env=server_secret_env(spec),
        server_ports=ports,
        grpc_port=GRPC_PORT,
        http_port=HTTP_PORT,
        pod_security=pod_security.ROOT_IMAGE.pod,
        server_security=pod_security.server_container(settings.server_privileged),
        sidecar_security=pod_security.ROOT_IMAGE.container,
    )


def render_service(spec: InferenceServerSpec, owner_meta: dict[str, Any]) -> dict[str, Any]:
    ports: list[dict[str, Any]] = [
        {"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT, "protocol": "TCP"},
        {"name": "http", "port": HTTP_PORT, "targetPort": HTTP_PORT, "protocol": "TCP"},
    ]
    if spec.metrics.enabled:
        ports.append({"name": "metrics", "port": spec.metrics.port, "targetPort": spec.metrics.port, "protocol": "TCP"})
    return render_template(
        "service.yaml.j2",
        meta=server_child_meta(owner_meta, "jetstream"),
        selector=server_selector(owner_meta["name"]),
        ports=ports,
    )


def render_pod_monitoring(
    owner_meta: dict[str, Any], *, app: str = "jetstream", port: str = "metrics", path: str | None = None
) -> dict[str, Any]:
    """Google Managed Prometheus' scrape config for the server pods (see _render_monitor)."""
    return _render_monitor(
        "podmonitoring.yaml.j2", monitors.POD_MONITORING.group_version, owner_meta, app=app, port=port, path=path
    )


def render_service_monitor(
    owner_meta: dict[str, Any], *, app: str = "jetstream", port: str = "metrics", path: str | None = None
) -> dict[str, Any]:
    """The Prometheus Operator's scrape config for the server pods (see _render_monitor)."""
    return _render_monitor(
        "servicemonitor.yaml.j2", monitors.SERVICE_MONITOR.group_version, owner_meta, app=app, port=port, path=path
    )


def _render_monitor(
    template: str, api_version: str, owner_meta: dict[str, Any], *, app: str, port: str, path: str | None
) -> dict[str, Any]:
    """Scrape config for the server pods: JetStream's exporter port by default; vLLM serves /metrics on its API
    port."""
    return render_template(
        template,
        api_version=api_version,
        meta=server_child_meta(owner_meta, app),
        selector=server_selector(owner_meta["name"]),
        port=port,
        path=path,
    )


def service_endpoint(owner_name: str, namespace: str) -> str:
    return f"{naming.server_name(owner_name)}.{namespace}.svc.cluster.local:{GRPC_PORT}"
