"""A LlamaCheckpoint in Hugging Face format on the local cluster: the operator renders the mirror Job, the local
node runs it (`tpuserve convert mirror` as a real process), and the checkpoint reaches Ready with the mirrored
directory in status; a refused token fails with a message naming the Secret.

Real: the control plane, the operator, the GCS emulator, the mirror process and `huggingface_hub` in it, the
Secret and its secretKeyRef. The Hugging Face hub is the tests' local stand-in (operator/tpuserve_dev/hub_server.py:
the file-resolution API huggingface_hub calls), reached through HF_ENDPOINT, which the operator's
`converterEnv` setting passes to the Job as it would a hub proxy's address; the tests cannot reach the hub.
The model is a tiny Llama-3-shaped one in real safetensors files, verified against its architecture given in
TPUSERVE_CONVERT_ARCH (one entry per model: the conversion tests' tiny Llama 2 beside it).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest

from localcluster.wait import wait_for
from tests.operator.conftest import LOCAL, operator_env
from tpuserve_dev.hf_model import hf_model_files, tiny3
from tpuserve_dev.hub_server import HubRepo, LocalHub, running_hub
from tpuserve_dev.operator_harness import Objects, OperatorProcess, condition
from tpuserve_dev.tiny_checkpoint import TINY

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

REPO = "meta-llama/Llama-3.1-8B-Instruct"
TOKEN = "hf_cluster_token"


@pytest.fixture(scope="module")
def hub() -> Iterator[LocalHub]:
    with running_hub(LocalHub(repos={REPO: HubRepo(files=hf_model_files(tiny3()), token=TOKEN)})) as served:
        yield served


@pytest.fixture(scope="module")
def mirror_operator(
    kube_cluster: Any,
    crds: None,  # noqa: ARG001 -- requested for its effect (the CRDs installed); marks do not apply to fixtures
    gcs_emulator: str,
    hub: LocalHub,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    if not kube_cluster.has_local_node:
        pytest.skip("needs the local node (real processes)")
    kube_cluster.set_local_node_env(STORAGE_EMULATOR_HOST=gcs_emulator)
    work = tmp_path_factory.mktemp("mirror-operator")
    # One operator-wide override for both Jobs, as in the demo: conversions get the tiny Llama 2, mirrors of
    # llama3.1-8b the tiny Llama 3. A short hub retry budget, so that an outage outlasts one Job here (the
    # default is 30 minutes).
    arch_file = work / "archs.json"
    arch_file.write_text(
        json.dumps({"llama2-7b": dataclasses.asdict(TINY), "llama3.1-8b": dataclasses.asdict(tiny3())})
    )
    converter_env = {
        "TPUSERVE_CONVERT_STEP": "synthetic",
        "TPUSERVE_CONVERT_ARCH": str(arch_file),
        "HF_ENDPOINT": hub.endpoint,
        "TPUSERVE_HUB_RETRY_SECONDS": "2",
    }
    env = operator_env(gcs_emulator, arch_file, TPUSERVE_CONVERTER_ENV=json.dumps(converter_env))
    process = OperatorProcess(kube_cluster.kubeconfig, work / "operator.log", env)
    process.start()
    yield process
    process.stop()


def hf_checkpoint(name: str, output: str, secret: str = "hf-secret") -> dict[str, Any]:
    return {
        "apiVersion": "tpuserve.dev/v1alpha1",
        "kind": "LlamaCheckpoint",
        "metadata": {"name": name},
        "spec": {
            "model": "llama3.1-8b",
            "format": "huggingface",
            "huggingFace": {"repoId": REPO, "tokenSecretRef": {"name": secret}},
            "output": output,
            "converter": LOCAL,
        },
    }


def token_secret(name: str, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"hf_api_token": token},
    }


@pytest.mark.usefixtures("mirror_operator")
def test_hf_checkpoint_is_mirrored_by_a_real_job_then_reused(
    objects: Objects, namespace: str, gcs_client: Any, gcs_bucket: str, hub: LocalHub
) -> None:
    output = f"gs://{gcs_bucket}/hf/llama3.1-8b"
    objects.apply(namespace, token_secret("hf-secret", TOKEN), hf_checkpoint("llama3", output))
    ckpt = objects.wait_phase("LlamaCheckpoint", namespace, "llama3", "Ready", "Failed", timeout=180)
    assert ckpt["phase"] == "Ready", ckpt
    assert ckpt["huggingFacePath"] == f"{output}/hf"
    assert ckpt["manifestPath"] == f"{output}/tpuserve-manifest.json"
    assert ckpt["parameterCount"] == tiny3().num_parameters
    assert ckpt["jobName"] == "llama3-mirror"
    assert condition(ckpt, "Ready")["reason"] == "Mirrored"
    assert "unscannedPath" not in ckpt
    names = {b.name for b in gcs_client.list_blobs(gcs_bucket, prefix="hf/llama3.1-8b/")}
    assert "hf/llama3.1-8b/tpuserve-manifest.json" in names
    assert "hf/llama3.1-8b/hf/model-00001-of-00002.safetensors" in names
    reasons = {e["reason"] for e in objects.events(namespace, "llama3")}
    assert {"Mirroring", "Mirrored"} <= reasons

    # A second checkpoint of the same model and output: its Job finds the intact mirror and downloads nothing.
    downloads = sum(hub.downloads.values())
    objects.apply(namespace, hf_checkpoint("again", output))
    again = objects.wait_phase("LlamaCheckpoint", namespace, "again", "Ready", "Failed", timeout=180)
    assert again["phase"] == "Ready", again
    assert "an intact mirror was reused" in again["message"]
    assert again["huggingFacePath"] == ckpt["huggingFacePath"]
    assert sum(hub.downloads.values()) == downloads


@pytest.mark.usefixtures("mirror_operator", "hub")
def test_a_refused_token_fails_with_the_secret_named(objects: Objects, namespace: str, gcs_bucket: str) -> None:
    objects.apply(
        namespace,
        token_secret("stale-token", "hf_expired"),
        hf_checkpoint("denied", f"gs://{gcs_bucket}/hf/denied", secret="stale-token"),
    )
    ckpt = objects.wait_phase("LlamaCheckpoint", namespace, "denied", "Ready", "Failed", timeout=180)
    assert ckpt["phase"] == "Failed", ckpt
    ready = condition(ckpt, "Ready")
    assert ready["reason"] == "HubUnauthorized"
    assert "HTTP 401" in ckpt["message"]
    assert f"Secret {namespace}/stale-token key hf_api_token" in ckpt["message"]
    wait_for(
        lambda: any(e["reason"] == "HubUnauthorized" for e in objects.events(namespace, "denied")),
        timeout=30,
        description="a HubUnauthorized event",
    )


@pytest.mark.usefixtures("mirror_operator")
def test_a_hub_outage_longer_than_a_job_is_retried_with_a_new_job(
    objects: Objects, namespace: str, gcs_bucket: str, hub: LocalHub
) -> None:
    hub.fail_next = 10**9  # down until the test lifts it
    try:
        objects.apply(
            namespace, token_secret("hf-secret", TOKEN), hf_checkpoint("outage", f"gs://{gcs_bucket}/hf/outage")
        )

        # Pending/HubUnavailable lasts only until the next mirror Job starts (seconds), so a status poll can miss it:
        # the Event posted on that phase change is what stays.
        def hub_unavailable_event() -> dict[str, Any] | None:
            events = [e for e in objects.events(namespace, "outage") if e.get("reason") == "HubUnavailable"]
            return events[0] if events else None

        event = wait_for(hub_unavailable_event, timeout=180, interval=1.0, description="a HubUnavailable Event")
        assert "HTTP 503" in event["message"], event
        assert "a new mirror Job starts" in event["message"], event
        assert objects.status("LlamaCheckpoint", namespace, "outage").get("phase") != "Failed"
    finally:
        hub.fail_next = 0
    ready = objects.wait_phase("LlamaCheckpoint", namespace, "outage", "Ready", "Failed", timeout=180)
    assert ready["phase"] == "Ready", ready
    assert {"HubUnavailable", "Mirrored"} <= {e["reason"] for e in objects.events(namespace, "outage")}
