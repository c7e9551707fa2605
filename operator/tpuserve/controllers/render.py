"""Pure rendering of every child resource from the typed spec: one jinja2 template per child kind.

No API calls and no environment reads: everything comes in as arguments (the owner's typed model and metadata,
the operator settings, and what reconcile resolved, e.g. the checkpoint path or the benchmark target).
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import jinja2
import yaml

from tpuserve import tpu
from tpuserve.api import (
    GRPC_PORT,
    HTTP_PORT,
    BenchmarkRunSpec,
    ConverterPreset,
    DatasetName,
    InferenceServerSpec,
    LlamaCheckpointSpec,
    OpenAISpec,
    Protocol,
    ResourceRequirements,
    Toleration,
)
from tpuserve.api.server import secret_arg_env_name
from tpuserve.controllers import naming, pod_security
from tpuserve.convert import layout
from tpuserve.settings import OperatorSettings

CONVERT_WORK_DIR = "/var/tmp/tpuserve-convert"
ANNOTATION_OWNER = "tpuserve.dev/owner"
TPU_TOLERATION = {"key": tpu.TPU_TAINT_KEY, "operator": "Exists", "effect": tpu.TPU_TAINT_EFFECT}
# The benchmark gets this long after its own --timeout to write partial results before the Job is killed.
BENCH_DEADLINE_GRACE_SECONDS = 120
# The OpenAI API key is mounted from its Secret as a file (never an argument or a plain env value).
API_KEY_PATH = "/var/run/tpuserve/api-key/key"
# Google's inference-checkpoint image writes these under its output directory (facts: jetstream-maxtext.md).
GOOGLE_UNSCANNED_SUFFIX = "bf16/unscanned/checkpoints/0/items"
GOOGLE_SCANNED_SUFFIX = "bf16/scanned/0/items"


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tpuserve", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


def render_template(template: str, **context: Any) -> dict[str, Any]:
    text = _environment().get_template(template).render(**context)
    # libyaml's safe loader: the pure-Python one cost 8 % of the operator's CPU creating 1,000 Jobs.
    obj: dict[str, Any] = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    obj["metadata"]["annotations"][naming.ANNOTATION_SPEC_HASH] = naming.spec_hash(obj)
    return obj


def _meta(
    kind: str, owner_meta: dict[str, Any], name: str, app: str, component: str, extra_labels: dict[str, str]
) -> dict[str, Any]:
    owner_name = owner_meta["name"]
    return {
        "name": name,
        "namespace": owner_meta.get("namespace", ""),
        "labels": {**naming.labels(kind, owner_name, app, component), **extra_labels},
        "annotations": {
            ANNOTATION_OWNER: owner_name,
            naming.ANNOTATION_GENERATION: str(owner_meta.get("generation", 0)),
        },
        "owner": naming.owner_reference(kind, owner_meta),
    }


def _tolerations(items: list[Toleration]) -> list[dict[str, Any]]:
    return [t.to_wire() for t in items]


def _quantities(resources: dict[str, Any]) -> dict[str, Any]:
    """Quantities as strings (the API accepts int-or-string; the typed client wants strings)."""
    return {part: {k: str(v) for k, v in values.items()} for part, values in resources.items()}


def _resources(resources: ResourceRequirements | None) -> dict[str, Any]:
    return _quantities(resources.to_wire()) if resources is not None else {}


def _env(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in sorted(values.items())]


# --- LlamaCheckpoint ------------------------------------------------------------------------------------


def converter_args(spec: LlamaCheckpointSpec) -> list[str]:
    if spec.converter.preset == ConverterPreset.INFERENCE_CHECKPOINT:
        # Google's checkpoint_entrypoint.sh flags (GKE tutorials); it writes OUT/bf16/{scanned,unscanned}/...
        bucket = spec.output.removeprefix("gs://").split("/", 1)[0]
        args = [
            f"--bucket_name={bucket}",
            "--inference_server=jetstream-maxtext",
            "--model_name=llama-2",
            f"--model_path={spec.model.replace('llama2', 'llama-2')}",
            f"--input_directory={spec.meta_source}",
            f"--output_directory={spec.output}",
        ]
        if spec.quantization is not None:
            args += ["--quantize_weights=True", f"--quantize_type={spec.quantization}"]
        return args
    args = [
        "convert",
        "run",
        "--model",
        spec.model,
        "--source",
        spec.meta_source,
        "--output",
        spec.output,
        "--weight-dtype",
        str(spec.weight_dtype),
        "--work-dir",
        CONVERT_WORK_DIR,
    ]
    if spec.quantization is not None:
        args += ["--quantization", str(spec.quantization)]
    return args


def converter_output_paths(spec: LlamaCheckpointSpec) -> tuple[str, str]:
    """(scanned, unscanned) paths the preset writes under spec.output."""
    if spec.converter.preset == ConverterPreset.INFERENCE_CHECKPOINT:
        return layout.join(spec.output, GOOGLE_SCANNED_SUFFIX), layout.join(spec.output, GOOGLE_UNSCANNED_SUFFIX)
    return layout.scanned_items(spec.output), layout.unscanned_items(spec.output)


def render_convert_job(
    spec: LlamaCheckpointSpec, owner_meta: dict[str, Any], settings: OperatorSettings
) -> dict[str, Any]:
    size = spec.converter.work_dir_size_limit or layout.work_dir_bytes(spec.model, str(spec.weight_dtype))
    return _converter_job(
        spec,
        owner_meta,
        settings,
        job_name=naming.job_name_convert(owner_meta["name"]),
        app_name="tpuserve-converter",
        component="converter",
        args=converter_args(spec),
        env=_env({"JAX_PLATFORMS": "cpu", **settings.converter_env}),
        resources=spec.converter_resources().to_wire(),
        work_dir_size=str(size),
    )


def _converter_job(
    spec: LlamaCheckpointSpec,
    owner_meta: dict[str, Any],
    settings: OperatorSettings,
    *,
    job_name: str,
    app_name: str,
    component: str,
    args: list[str],
    env: list[dict[str, Any]],
    resources: dict[str, Any],
    work_dir_size: str,
) -> dict[str, Any]:
    """The Job both converter workloads run in (`tpuserve convert run` and `tpuserve convert mirror`): one
    template, one pod shape, the same security whichever the command."""
    conv = spec.converter
    # Google's image runs as root (pip installs, git clones into its file system); ours as uid 65532.
    security = pod_security.RESTRICTED if conv.preset == ConverterPreset.TPUSERVE else pod_security.ROOT_IMAGE
    return render_template(
        "job-convert.yaml.j2",
        meta=_meta("LlamaCheckpoint", owner_meta, job_name, app_name, component, {}),
        backoff_limit=settings.converter_backoff_limit,
        deadline_seconds=settings.converter_deadline_seconds,
        ttl_seconds=settings.job_ttl_seconds,
        pod_annotations={**conv.pod_annotations, ANNOTATION_OWNER: owner_meta["name"]},
        service_account=conv.service_account_name or settings.workload_service_account,
        node_selector=conv.node_selector,
        tolerations=_tolerations(conv.tolerations),
        image=conv.effective_image(settings.converter_images()),
        pull_policy=settings.image_pull_policy,
        args=args,
        env=env,
        resources=_quantities(resources),
        work_dir=CONVERT_WORK_DIR,
        work_dir_size=work_dir_size,
        pod_security=security.pod,
        container_security=security.container,
    )


# --- LlamaCheckpoint, format huggingface ------------------------------------------------------------------

# The mirror holds one file at a time in its scratch (Llama 3.1 70B's safetensors shards are about 5 GB).
MIRROR_WORK_DIR_SIZE = "16Gi"
# huggingface_hub's own cache and token files go to the scratch volume, not the container's filesystem.
MIRROR_ENV = {"HF_HOME": f"{CONVERT_WORK_DIR}/hf-home", "HF_HUB_DISABLE_TELEMETRY": "1"}
MIRROR_TOKEN_ENV = "HF_TOKEN"


def mirror_model_path(spec: LlamaCheckpointSpec) -> str:
    """Where the mirror puts the Hugging Face directory."""
    return layout.hf_model_dir(spec.output)


def mirror_args(spec: LlamaCheckpointSpec) -> list[str]:
    """`tpuserve convert mirror` arguments; the token itself comes in through the environment."""
    args = ["convert", "mirror", "--model", spec.model, "--output", spec.output]
    hub = spec.hugging_face
    if hub is not None:
        args += ["--repo-id", hub.repo_id, "--revision", hub.revision]
        if hub.token_secret_ref is not None:
            ref = hub.token_secret_ref
            args += ["--token-source", f"Secret {ref.name} (key {ref.key})"]
    else:
        args += ["--source", spec.meta_source]
    return [*args, "--work-dir", CONVERT_WORK_DIR]


def mirror_env(spec: LlamaCheckpointSpec, settings: OperatorSettings) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = _env({**settings.converter_env, **MIRROR_ENV})
    hub = spec.hugging_face
    if hub is not None and hub.token_secret_ref is not None:
        ref = hub.token_secret_ref
        env.append({"name": MIRROR_TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    return env


def render_mirror_job(
    spec: LlamaCheckpointSpec, owner_meta: dict[str, Any], settings: OperatorSettings
) -> dict[str, Any]:
    return _converter_job(
        spec,
        owner_meta,
        settings,
        job_name=naming.job_name_mirror(owner_meta["name"]),
        app_name="tpuserve-mirror",
        component="mirror",
        args=mirror_args(spec),
        env=mirror_env(spec, settings),
        resources=spec.mirror_resources().to_wire(),
        work_dir_size=str(spec.converter.work_dir_size_limit or MIRROR_WORK_DIR_SIZE),
    )


# --- InferenceServer ------------------------------------------------------------------------------------


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def server_args(spec: InferenceServerSpec, checkpoint_path: str) -> list[str]:
    """MaxText key=value arguments (maxengine-server's entrypoint passes them after base.yml)."""
    e = spec.engine
    args = {
        "model_name": spec.model,
        "tokenizer_path": spec.effective_tokenizer_path(),
        "load_parameters_path": checkpoint_path,
        "max_prefill_predict_length": str(e.max_prefill_predict_length),
        "max_target_length": str(e.max_target_length),
        "per_device_batch_size": _number(e.per_device_batch_size),
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


def server_selector(owner_name: str) -> dict[str, str]:
    return {naming.LABEL_SERVER: naming.labels("InferenceServer", owner_name, "", "")[naming.LABEL_SERVER]}


def server_resources(spec: InferenceServerSpec, chips: int) -> dict[str, Any]:
    base = _resources(spec.resources)
    requests = {**base.get("requests", {}), tpu.TPU_RESOURCE: str(chips)}
    limits = {**base.get("limits", {}), tpu.TPU_RESOURCE: str(chips)}
    return {"requests": requests, "limits": limits}


def render_deployment(
    spec: InferenceServerSpec, owner_meta: dict[str, Any], settings: OperatorSettings, checkpoint_path: str
) -> dict[str, Any]:
    tpu_slice = spec.tpu.resolve()
    name = naming.server_name(owner_meta["name"])
    ports = [{"name": "grpc", "containerPort": GRPC_PORT}]
    if spec.metrics.enabled:
        ports.append({"name": "metrics", "containerPort": spec.metrics.port})
    return render_template(
        "deployment.yaml.j2",
        meta=_meta("InferenceServer", owner_meta, name, "jetstream", "server", {}),
        replicas=spec.replicas,
        selector=server_selector(owner_meta["name"]),
        pod_annotations={**spec.pod_annotations, ANNOTATION_OWNER: owner_meta["name"]},
        service_account=spec.service_account_name or settings.workload_service_account,
        node_selector=tpu_slice.node_selector(),
        tolerations=[TPU_TOLERATION],
        image=spec.effective_image(settings.server_image),
        http_image=spec.effective_http_image(settings.http_image),
        pull_policy=settings.image_pull_policy,
        server_args=server_args(spec, checkpoint_path),
        server_env=server_secret_env(spec),
        server_ports=ports,
        resources=server_resources(spec, tpu_slice.chips),
        grpc_port=GRPC_PORT,
        http_port=HTTP_PORT,
        startup_failure_threshold=max(math.ceil(settings.server_startup_seconds / 10), 1),
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
        meta=_meta("InferenceServer", owner_meta, naming.server_name(owner_meta["name"]), "jetstream", "server", {}),
        selector=server_selector(owner_meta["name"]),
        ports=ports,
    )


def render_pod_monitoring(
    owner_meta: dict[str, Any], *, app: str = "jetstream", port: str = "metrics", path: str | None = None
) -> dict[str, Any]:
    """Scrape config for the server pods: JetStream's exporter port by default; vLLM serves /metrics on its API
    port."""
    return render_template(
        "podmonitoring.yaml.j2",
        meta=_meta("InferenceServer", owner_meta, naming.server_name(owner_meta["name"]), app, "server", {}),
        selector=server_selector(owner_meta["name"]),
        port=port,
        path=path,
    )


def render_service_monitor(
    owner_meta: dict[str, Any], *, app: str = "jetstream", port: str = "metrics", path: str | None = None
) -> dict[str, Any]:
    """Scrape config for the server pods: JetStream's exporter port by default; vLLM serves /metrics on its API
    port."""
    return render_template(
        "servicemonitor.yaml.j2",
        meta=_meta("InferenceServer", owner_meta, naming.server_name(owner_meta["name"]), app, "server", {}),
        selector=server_selector(owner_meta["name"]),
        port=port,
        path=path,
    )


def service_endpoint(owner_name: str, namespace: str) -> str:
    return f"{naming.server_name(owner_name)}.{namespace}.svc.cluster.local:{GRPC_PORT}"


# --- BenchmarkRun ---------------------------------------------------------------------------------------


def _rate_text(rate: float) -> str:
    return "inf" if math.isinf(rate) else _number(rate)


def bench_args(
    spec: BenchmarkRunSpec,
    target: str,
    *,
    model: str | None,
    tokenizer: str | None,
    protocol: Protocol = Protocol.JETSTREAM,
) -> list[str]:
    args = ["bench", "run", "--target", target, "--dataset", str(spec.dataset.name)]
    if protocol == Protocol.OPENAI:
        openai = spec.openai or OpenAISpec()
        args += ["--protocol", str(protocol), "--endpoint", str(openai.endpoint)]
        if openai.ignore_eos:
            args += ["--ignore-eos"]
        if openai.api_key_secret is not None:
            args += ["--api-key-file", API_KEY_PATH]
    if spec.dataset.path:
        args += ["--dataset-path", spec.dataset.path]
    if spec.dataset.name == DatasetName.SYNTHETIC and spec.dataset.synthetic is not None:
        args += [
            "--synthetic-input-length",
            str(spec.dataset.synthetic.input_length),
            "--synthetic-output-length",
            str(spec.dataset.synthetic.output_length),
        ]
    # The server's tokenizer is the default for real datasets; synthetic prompts are token ids and need none
    # (a tokenizer there only decodes outputs, which a mock engine's out-of-vocabulary ids would break).
    tokenizer = spec.tokenizer_path or (tokenizer if spec.dataset.name != DatasetName.SYNTHETIC else None)
    if tokenizer:
        args += ["--tokenizer", tokenizer]
    args += ["--num-prompts", str(spec.num_prompts), "--max-output-length", str(spec.max_output_length)]
    if spec.max_input_length is not None:
        args += ["--max-input-length", str(spec.max_input_length)]
    rates = spec.request_rates()
    if rates is None:
        args += ["--concurrency", str(spec.concurrency)]
    elif spec.sweep is not None:
        args += ["--sweep", ",".join(_rate_text(r) for r in rates)]
    else:
        args += ["--request-rate", _rate_text(rates[0])]
    if spec.burstiness is not None:
        args += ["--burstiness", _number(spec.burstiness)]
    if spec.max_concurrency is not None:
        args += ["--max-concurrency", str(spec.max_concurrency)]
    args += ["--warmup", str(spec.warmup), "--seed", str(spec.seed)]
    if spec.slo is not None:
        if spec.slo.ttft_ms is not None:
            args += ["--slo-ttft-ms", _number(spec.slo.ttft_ms)]
        if spec.slo.tpot_ms is not None:
            args += ["--slo-tpot-ms", _number(spec.slo.tpot_ms)]
    if spec.output:
        args += ["--output", spec.output]
        if spec.save_request_outputs:
            args += ["--save-request-outputs"]
    args += ["--timeout", str(int(spec.timeout_seconds()))]
    if model:
        args += ["--model", model]
    return args


def render_bench_job(
    spec: BenchmarkRunSpec,
    owner_meta: dict[str, Any],
    settings: OperatorSettings,
    *,
    target: str,
    model: str | None,
    tokenizer: str | None,
    protocol: Protocol = Protocol.JETSTREAM,
) -> dict[str, Any]:
    node_selector = spec.node_selector or settings.benchmark_node_selector
    tolerations = spec.tolerations or settings.benchmark_tolerations
    return render_template(
        "job-bench.yaml.j2",
        meta=_meta(
            "BenchmarkRun", owner_meta, naming.job_name_bench(owner_meta["name"]), "tpuserve-bench", "benchmark", {}
        ),
        deadline_seconds=int(spec.timeout_seconds()) + BENCH_DEADLINE_GRACE_SECONDS,
        ttl_seconds=settings.job_ttl_seconds,
        pod_annotations={**spec.pod_annotations, ANNOTATION_OWNER: owner_meta["name"]},
        service_account=spec.service_account_name or settings.workload_service_account,
        node_selector=node_selector,
        tolerations=_tolerations(tolerations),
        image=spec.effective_image(settings.bench_image),
        pull_policy=settings.image_pull_policy,
        args=bench_args(spec, target, model=model, tokenizer=tokenizer, protocol=protocol),
        api_key_secret=spec.openai.api_key_secret if spec.openai and protocol == Protocol.OPENAI else None,
        api_key_dir=API_KEY_PATH.rsplit("/", 1)[0],
        env=_env(settings.bench_env),
        resources=_quantities(spec.bench_resources().to_wire()),
        pod_security=pod_security.RESTRICTED.pod,
        container_security=pod_security.RESTRICTED.container,
    )
