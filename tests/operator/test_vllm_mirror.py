"""Hugging Face mirror -> vLLM server on the local cluster: a LlamaCheckpoint of format huggingface mirrors a
gs:// Hugging Face model directory (the mirror Job runs as a real process on tpuserve-local and verifies every
safetensors header), and an InferenceServer of runtime vllm-tpu that refers to it waits for it, then serves its
status.huggingFacePath (rendered as vLLM's --model, streamed with runai_streamer). The model is a tiny
Llama-3-shaped one, verified against its architecture given as the converter's override."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.operator.conftest import LOCAL, operator_env, server
from tpuserve_dev.hf_model import arch_json, hf_model_files, tiny3
from tpuserve_dev.operator_harness import Objects, OperatorProcess, condition

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def mirror_operator(
    kube_cluster: Any,
    crds: None,  # noqa: ARG001 -- requested for its effect (the CRDs installed); marks do not apply to fixtures
    gcs_emulator: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    if not kube_cluster.has_local_node:
        pytest.skip("needs the local node (real processes)")
    kube_cluster.set_local_node_env(STORAGE_EMULATOR_HOST=gcs_emulator)
    work = tmp_path_factory.mktemp("vllm-mirror-operator")
    arch_file = arch_json(tiny3(), work / "tiny3.json")
    env = operator_env(
        gcs_emulator, arch_file, TPUSERVE_CONVERTER_ENV=json.dumps({"TPUSERVE_CONVERT_ARCH": str(arch_file)})
    )
    process = OperatorProcess(kube_cluster.kubeconfig, work / "operator.log", env)
    process.start()
    yield process
    process.stop()


@pytest.mark.usefixtures("mirror_operator")
def test_vllm_server_serves_the_verified_mirror(
    objects: Objects, namespace: str, gcs_client: Any, gcs_bucket: str
) -> None:
    for name, data in hf_model_files(tiny3()).items():
        gcs_client.bucket(gcs_bucket).blob(f"export/llama3.1-8b/{name}").upload_from_string(data)
    checkpoint = {
        "apiVersion": "tpuserve.dev/v1alpha1",
        "kind": "LlamaCheckpoint",
        "metadata": {"name": "llama31-8b-hf"},
        "spec": {
            "model": "llama3.1-8b",
            "format": "huggingface",
            "source": f"gs://{gcs_bucket}/export/llama3.1-8b",
            "output": f"gs://{gcs_bucket}/mirror/llama3.1-8b",
            "converter": LOCAL,
        },
    }
    vllm = server(
        "llama31-8b",
        ref="llama31-8b-hf",
        runtime="vllm-tpu",
        model="llama3.1-8b",
        tpu={"accelerator": "v6e", "topology": "2x4"},
    )
    objects.apply(namespace, vllm, checkpoint)  # the server first: it waits for the mirror
    ready = objects.wait_phase("LlamaCheckpoint", namespace, "llama31-8b-hf", "Ready", "Failed", timeout=180)
    assert ready["phase"] == "Ready", ready.get("message")
    hf_path = ready["huggingFacePath"]
    assert hf_path.startswith(f"gs://{gcs_bucket}/mirror/llama3.1-8b")
    status = objects.wait_phase("InferenceServer", namespace, "llama31-8b", "Ready", timeout=90)
    assert status["checkpointPath"] == hf_path
    assert (
        condition(status, "CheckpointReady")["message"] == f"LlamaCheckpoint llama31-8b-hf is Ready: loading {hf_path}"
    )
    deployment = objects.get("Deployment", namespace, "llama31-8b")
    assert deployment is not None
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][:2] == [f"--model={hf_path.rstrip('/')}", "--load-format=runai_streamer"]
