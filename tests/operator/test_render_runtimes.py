"""Rendering per runtime: JetStream objects render byte-for-byte as before the vllm-tpu runtime existed (snapshots
written by the old renderer, tests/operator/jetstream_snapshots.py), and the vLLM children as GKE's vLLM TPU
samples have them, valid against the Kubernetes schemas (strict)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.operator import jetstream_snapshots
from tpuserve import images
from tpuserve.api import InferenceServerSpec
from tpuserve.controllers import render, render_vllm
from tpuserve.settings import OperatorSettings

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"
K8S_VERSION = "1.35"
OWNER: dict[str, Any] = {"name": "llama31-8b", "namespace": "team-a", "uid": "0b4c3f9e-1111-2222", "generation": 1}
MIRROR = "gs://models-bucket/llama3.1-8b/hf"


@pytest.mark.parametrize("name", sorted(jetstream_snapshots.example_specs()))
def test_jetstream_children_render_byte_for_byte_as_before(name: str) -> None:
    spec = jetstream_snapshots.example_specs()[name]
    before = (jetstream_snapshots.SNAPSHOTS / f"jetstream-{name}.json").read_text()
    assert jetstream_snapshots.rendered(spec) == before
    # As the API server returns it now: with the defaulted runtime field.
    assert jetstream_snapshots.rendered({**spec, "runtime": "jetstream-maxtext"}) == before


def vllm_spec(**changes: Any) -> InferenceServerSpec:
    spec = {
        "runtime": "vllm-tpu",
        "model": "llama3.1-8b",
        "checkpointPath": MIRROR,
        "tpu": {"accelerator": "v6e", "topology": "2x4"},
        **changes,
    }
    return InferenceServerSpec.model_validate(spec)


def container(obj: dict[str, Any]) -> dict[str, Any]:
    (only,) = obj["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = only
    return result


def test_vllm_deployment_is_gkes_sample_with_streamed_weights() -> None:
    settings = OperatorSettings()
    obj = render_vllm.render_vllm_deployment(vllm_spec(), OWNER, settings, render_vllm.WeightSource(MIRROR))
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    pod = obj["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice",
        "cloud.google.com/gke-tpu-topology": "2x4",
    }
    c = container(obj)
    assert c["image"] == images.VLLM_TPU_IMAGE == "vllm/vllm-tpu:v0.32.0"
    assert c["command"] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    assert c["args"] == [
        f"--model={MIRROR}",
        "--load-format=runai_streamer",
        "--served-model-name=llama3.1-8b",
        "--host=0.0.0.0",
        "--port=8000",
        "--tensor-parallel-size=8",  # every chip of the slice by default
        "--max-model-len=2048",
        "--max-num-seqs=128",
        "--enable-prefix-caching",
        "--gpu-memory-utilization=0.9",
    ]
    assert "securityContext" not in c  # no privileged container
    assert c["ports"] == [{"name": "http", "containerPort": 8000}]
    assert c["resources"]["limits"]["google.com/tpu"] == "8"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": 8000}
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= settings.server_startup_seconds >= 1800
    assert {"name": "VLLM_XLA_CACHE_PATH", "value": render_vllm.XLA_CACHE_DIR} in c["env"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"] == {"name": "dshm", "emptyDir": {"medium": "Memory"}}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]
    assert {"name": "xla-cache", "mountPath": render_vllm.XLA_CACHE_DIR} in c["volumeMounts"]
    assert "model" not in volumes  # streamed: no GCSFuse volume, no sidecar annotation
    assert "gke-gcsfuse/volumes" not in obj["spec"]["template"]["metadata"]["annotations"]


def test_vllm_settings_and_extra_args_render_in_order() -> None:
    spec = vllm_spec(
        vllm={
            "maxModelLen": 4096,
            "maxNumSeqs": 256,
            "maxNumBatchedTokens": 512,
            "tensorParallelSize": 4,
            "enablePrefixCaching": False,
            "hbmUtilization": 0.95,
            "extraArgs": ["--async-scheduling", "--seed=42"],
        }
    )
    args = render_vllm.vllm_args(spec, render_vllm.WeightSource(MIRROR))
    assert args[-7:] == [
        "--max-model-len=4096",
        "--max-num-seqs=256",
        "--max-num-batched-tokens=512",
        "--no-enable-prefix-caching",
        "--gpu-memory-utilization=0.95",
        "--async-scheduling",
        "--seed=42",
    ]
    assert "--tensor-parallel-size=4" in args
    flags = [a.split("=", 1)[0] for a in args]
    assert len(flags) == len(set(flags))


def test_vllm_gcsfuse_mount_as_gkes_tutorial() -> None:
    spec = vllm_spec(vllm={"weightLoading": "gcsfuse"})
    obj = render_vllm.render_vllm_deployment(spec, OWNER, OperatorSettings(), render_vllm.WeightSource(MIRROR))
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    c = container(obj)
    assert c["args"][0] == f"--model={render_vllm.GCSFUSE_MOUNT}"
    assert "--load-format=runai_streamer" not in c["args"]
    volumes = {v["name"]: v for v in obj["spec"]["template"]["spec"]["volumes"]}
    csi = volumes["model"]["csi"]
    assert csi["driver"] == "gcsfuse.csi.storage.gke.io"
    assert csi["volumeAttributes"]["bucketName"] == "models-bucket"
    assert csi["volumeAttributes"]["mountOptions"].endswith(",only-dir=llama3.1-8b/hf")
    assert "file-cache:enable-parallel-downloads:true" in csi["volumeAttributes"]["mountOptions"]
    assert obj["spec"]["template"]["metadata"]["annotations"]["gke-gcsfuse/volumes"] == "true"


def test_vllm_hub_model_with_token_secret() -> None:
    example = yaml.safe_load((EXAMPLES / "llama3.3-70b-v6e" / "server.yaml").read_text())
    spec = InferenceServerSpec.model_validate(example["spec"])
    assert spec.hugging_face is not None
    source = render_vllm.WeightSource(spec.hugging_face.repo_id, hub=True)
    obj = render_vllm.render_vllm_deployment(spec, OWNER, OperatorSettings(), source)
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    c = container(obj)
    assert c["args"][:2] == ["--model=meta-llama/Llama-3.3-70B-Instruct", "--download-dir=/data/hf"]
    assert "--tensor-parallel-size=8" in c["args"]
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-secret", "key": "hf_api_token"}}} in c["env"]
    assert {"name": "hf-download", "mountPath": "/data/hf"} in c["volumeMounts"]


def test_vllm_service_and_monitors_scrape_the_api_port() -> None:
    svc = render_vllm.render_vllm_service(OWNER)
    kubernetes_validate.validate(svc, K8S_VERSION, strict=True)
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": 8000, "protocol": "TCP"}]
    for monitor in (
        render.render_pod_monitoring(OWNER, app="vllm", port="http", path="/metrics"),
        render.render_service_monitor(OWNER, app="vllm", port="http", path="/metrics"),
    ):
        assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]
    assert render_vllm.openai_base_url("llama31-8b", "team-a") == "http://llama31-8b.team-a.svc.cluster.local:8000/v1"


def test_a_benchmark_records_the_vllm_servers_rendered_flags() -> None:
    from tpuserve.api import InferenceServer
    from tpuserve.controllers.measured import measured_server

    server = InferenceServer.model_validate({"metadata": {"name": "llama31-8b"}, "spec": vllm_spec().to_wire()})
    measured = measured_server(server, {"readyReplicas": 1, "checkpointPath": MIRROR}, "t:8000", images.VLLM_TPU_IMAGE)
    assert measured.engine_args == render_vllm.vllm_args(server.spec, render_vllm.WeightSource(MIRROR))
    assert "--max-num-seqs=128" in measured.engine_args
    assert measured.image == images.VLLM_TPU_IMAGE
    assert (measured.model, measured.chips, measured.topology) == ("llama3.1-8b", 8, "2x4")
    assert (measured.weight_dtype, measured.quantization, measured.decode_batch) == ("bfloat16", None, 128)
