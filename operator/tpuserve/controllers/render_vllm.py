"""Pure rendering of a `vllm-tpu` InferenceServer's Deployment and Service (GKE's vLLM TPU samples, with the
operator's choices: pinned image, streamed gs:// weights, an XLA compilation cache, a long startup budget).

Where the weights come from (`WeightSource`) is resolved by reconcile: a LlamaCheckpoint mirror or a gs://
directory (a Hugging Face model directory in GCS) or a hub repo id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tpuserve.api import VLLM_PORT, InferenceServerSpec, WeightLoading
from tpuserve.controllers import naming
from tpuserve.controllers.render.common import number, render_template
from tpuserve.controllers.render.server import server_child_meta, server_pod_fields, server_selector
from tpuserve.gs_uri import GsPath
from tpuserve.settings import OperatorSettings

APP = "vllm"
XLA_CACHE_DIR = "/var/cache/vllm-xla"  # VLLM_XLA_CACHE_PATH: tpu-inference's jax compilation cache
HUB_DOWNLOAD_DIR = "/data/hf"  # --download-dir for hub models
GCSFUSE_MOUNT = "/data/model"  # where the GCSFuse CSI volume puts the model directory
GCSFUSE_DRIVER = "gcsfuse.csi.storage.gke.io"
# GKE's vLLM TPU tutorial's mount options: parallel downloads into an unbounded file cache.
GCSFUSE_MOUNT_OPTIONS = (
    "implicit-dirs,file-cache:enable-parallel-downloads:true,file-cache:parallel-downloads-per-file:100,"
    "file-cache:max-parallel-downloads:-1,file-cache:download-chunk-size-mb:10,file-cache:max-size-mb:-1"
)
TOKEN_ENV = "HF_TOKEN"


@dataclass(frozen=True)
class WeightSource:
    """What vLLM loads: `uri` is a gs:// Hugging Face model directory or a hub repo id (`hub` True)."""

    uri: str
    hub: bool = False
    revision: str | None = None


def vllm_args(spec: InferenceServerSpec, source: WeightSource) -> list[str]:
    """vLLM OpenAI API server flags, `--flag=value` (boolean flags bare), typed fields first, extraArgs last."""
    settings = spec.vllm_settings()
    chips = spec.tpu.resolve().chips
    if source.hub:
        model = [f"--model={source.uri}", f"--download-dir={HUB_DOWNLOAD_DIR}"]
        if source.revision:
            model.append(f"--revision={source.revision}")
    elif settings.weight_loading == WeightLoading.GCSFUSE:
        model = [f"--model={GCSFUSE_MOUNT}"]
    else:
        model = [f"--model={source.uri.rstrip('/')}", "--load-format=runai_streamer"]
    args = [
        *model,
        # Clients name the model as the catalog does (`kubectl get infsrv` shows it), whatever the weights' path.
        f"--served-model-name={spec.model}",
        "--host=0.0.0.0",
        f"--port={VLLM_PORT}",
        f"--tensor-parallel-size={settings.tensor_parallel_size or chips}",
        f"--max-model-len={settings.max_model_len}",
        f"--max-num-seqs={settings.max_num_seqs}",
    ]
    if settings.max_num_batched_tokens is not None:
        args.append(f"--max-num-batched-tokens={settings.max_num_batched_tokens}")
    args.append("--enable-prefix-caching" if settings.enable_prefix_caching else "--no-enable-prefix-caching")
    args.append(f"--gpu-memory-utilization={number(settings.hbm_utilization)}")
    return args + list(settings.extra_args)


def _env(spec: InferenceServerSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": "VLLM_XLA_CACHE_PATH", "value": XLA_CACHE_DIR}]
    hub = spec.hugging_face
    if hub is not None and hub.token_secret_ref is not None:
        ref = hub.token_secret_ref
        env.append({"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    return env


def _volumes(spec: InferenceServerSpec, source: WeightSource) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts): memory-backed /dev/shm, the XLA cache, and the weights' volume when one is needed."""
    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        {"name": "xla-cache", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "xla-cache", "mountPath": XLA_CACHE_DIR},
    ]
    if source.hub:
        volumes.append({"name": "hf-download", "emptyDir": {}})
        mounts.append({"name": "hf-download", "mountPath": HUB_DOWNLOAD_DIR})
    elif spec.vllm_settings().weight_loading == WeightLoading.GCSFUSE:
        path = GsPath.parse(source.uri)
        bucket, directory = path.bucket, path.prefix
        options = GCSFUSE_MOUNT_OPTIONS + (f",only-dir={directory}" if directory else "")
        attributes = {"bucketName": bucket, "mountOptions": options}
        volumes.append(
            {"name": "model", "csi": {"driver": GCSFUSE_DRIVER, "readOnly": True, "volumeAttributes": attributes}}
        )
        mounts.append({"name": "model", "mountPath": GCSFUSE_MOUNT, "readOnly": True})
    return volumes, mounts


def render_vllm_deployment(
    spec: InferenceServerSpec, owner_meta: dict[str, Any], settings: OperatorSettings, source: WeightSource
) -> dict[str, Any]:
    fields = server_pod_fields(spec, owner_meta, settings, APP, spec.effective_image(settings.vllm_image))
    if not source.hub and spec.vllm_settings().weight_loading == WeightLoading.GCSFUSE:
        # GKE injects the GCSFuse sidecar for this annotation; "0" lifts the sidecar's resource limits (GKE sample).
        fields["pod_annotations"] |= {
            "gke-gcsfuse/volumes": "true",
            "gke-gcsfuse/cpu-limit": "0",
            "gke-gcsfuse/memory-limit": "0",
            "gke-gcsfuse/ephemeral-storage-limit": "0",
        }
    volumes, mounts = _volumes(spec, source)
    return render_template(
        "deployment-vllm.yaml.j2",
        **fields,
        args=vllm_args(spec, source),
        env=_env(spec),
        port=VLLM_PORT,
        volume_mounts=mounts,
        volumes=volumes,
    )


def render_vllm_service(owner_meta: dict[str, Any]) -> dict[str, Any]:
    return render_template(
        "service.yaml.j2",
        meta=server_child_meta(owner_meta, APP),
        selector=server_selector(owner_meta["name"]),
        ports=[{"name": "http", "port": VLLM_PORT, "targetPort": VLLM_PORT, "protocol": "TCP"}],
    )


def openai_base_url(owner_name: str, namespace: str) -> str:
    return f"http://{naming.server_name(owner_name)}.{namespace}.svc.cluster.local:{VLLM_PORT}/v1"
