"""A LlamaCheckpoint's Job: the MaxText conversion (`tpuserve convert run`, or Google's inference-checkpoint
image) or, with format huggingface, the mirror (`tpuserve convert mirror`); one template for both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tpuserve.api import ConverterPreset, LlamaCheckpoint, LlamaCheckpointSpec, ResourceRequirements
from tpuserve.controllers import naming, pod_security
from tpuserve.controllers.render.common import (
    child_meta,
    env_list,
    pod_annotations,
    quantities,
    render_template,
    tolerations,
)
from tpuserve.convert import layout
from tpuserve.gs_uri import GsPath
from tpuserve.settings import OperatorSettings

# The scratch volume is mounted where the converter looks by default (it is also passed, for a readable Job).
CONVERT_WORK_DIR = layout.DEFAULT_WORK_DIR
# The container's name, which the operator reads the summary (termination message) of.
CONVERTER_CONTAINER = "converter"
# Google's inference-checkpoint image writes these under its output directory (facts: jetstream-maxtext.md).
GOOGLE_UNSCANNED_SUFFIX = "bf16/unscanned/checkpoints/0/items"
GOOGLE_SCANNED_SUFFIX = "bf16/scanned/0/items"


def converter_args(spec: LlamaCheckpointSpec) -> list[str]:
    if spec.converter.preset == ConverterPreset.INFERENCE_CHECKPOINT:
        # Google's checkpoint_entrypoint.sh flags (GKE tutorials); it writes OUT/bf16/{scanned,unscanned}/...
        bucket = GsPath.parse(spec.output).bucket
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


@dataclass(frozen=True)
class _Workload:
    """What differs between the two converter Jobs; the rest of the Job is the same (see _converter_job)."""

    component: str  # "converter" or "mirror"; the app label is tpuserve-<component>
    job_name: str
    args: list[str]
    env: list[dict[str, Any]]
    resources: ResourceRequirements
    work_dir_size: str


def render_convert_job(
    spec: LlamaCheckpointSpec, owner_meta: dict[str, Any], settings: OperatorSettings
) -> dict[str, Any]:
    size = spec.converter.work_dir_size_limit or layout.work_dir_bytes(spec.model, str(spec.weight_dtype))
    env = env_list({"JAX_PLATFORMS": "cpu", **settings.converter_env})
    job_name = naming.job_name_convert(owner_meta["name"])
    workload = _Workload("converter", job_name, converter_args(spec), env, spec.converter_resources(), str(size))
    return _converter_job(spec, owner_meta, settings, workload)


def _converter_job(
    spec: LlamaCheckpointSpec, owner_meta: dict[str, Any], settings: OperatorSettings, workload: _Workload
) -> dict[str, Any]:
    """The Job both converter workloads run in (`tpuserve convert run` and `tpuserve convert mirror`): one
    template, one pod shape, the same security whichever the command."""
    conv = spec.converter
    # Google's image runs as root (pip installs, git clones into its file system); ours as uid 65532.
    security = pod_security.RESTRICTED if conv.preset == ConverterPreset.TPUSERVE else pod_security.ROOT_IMAGE
    return render_template(
        "job-convert.yaml.j2",
        meta=child_meta(
            LlamaCheckpoint.KIND, owner_meta, workload.job_name, f"tpuserve-{workload.component}", workload.component
        ),
        backoff_limit=settings.converter_backoff_limit,
        deadline_seconds=settings.converter_deadline_seconds,
        ttl_seconds=settings.job_ttl_seconds,
        pod_annotations=pod_annotations(conv.pod_annotations, owner_meta),
        service_account=conv.service_account_name or settings.workload_service_account,
        node_selector=conv.node_selector,
        tolerations=tolerations(conv.tolerations),
        container=CONVERTER_CONTAINER,
        image=conv.effective_image(settings.converter_images()),
        pull_policy=settings.image_pull_policy,
        args=workload.args,
        env=workload.env,
        resources=quantities(workload.resources.to_wire()),
        work_dir=CONVERT_WORK_DIR,
        work_dir_size=workload.work_dir_size,
        pod_security=security.pod,
        container_security=security.container,
    )


# --- format huggingface: the mirror Job -----------------------------------------------------------------

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
    env: list[dict[str, Any]] = env_list({**settings.converter_env, **MIRROR_ENV})
    hub = spec.hugging_face
    if hub is not None and hub.token_secret_ref is not None:
        ref = hub.token_secret_ref
        env.append({"name": MIRROR_TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    return env


def render_mirror_job(
    spec: LlamaCheckpointSpec, owner_meta: dict[str, Any], settings: OperatorSettings
) -> dict[str, Any]:
    size = str(spec.converter.work_dir_size_limit or MIRROR_WORK_DIR_SIZE)
    job_name = naming.job_name_mirror(owner_meta["name"])
    workload = _Workload(
        "mirror", job_name, mirror_args(spec), mirror_env(spec, settings), spec.mirror_resources(), size
    )
    return _converter_job(spec, owner_meta, settings, workload)
