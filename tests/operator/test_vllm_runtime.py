"""A vllm-tpu InferenceServer on the local cluster: the operator renders the vLLM Deployment, the pod lands on a
simulated v6e 2x4 host (kwok), the server reaches Ready with its OpenAI endpoint; the container's arguments, read
back from the cluster, start vLLM's real OpenAI server (CPU build) that answers /v1/models and a completion, and a
BenchmarkRun measures it end to end over the OpenAI protocol.
A vllm-tpu server whose LlamaCheckpoint is not a Hugging Face mirror says so; a server that cannot fit its slice's
HBM is reported before any pod."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from localcluster import sim
from localcluster.wait import wait_for
from tests.operator.conftest import LOCAL, benchmark, checkpoint, server
from tpuserve_dev.operator_harness import Objects, condition
from tpuserve_dev.vllm_rendered import start_rendered_server
from tpuserve_dev.vllm_server import model_dir

pytestmark = [pytest.mark.cluster, pytest.mark.vllm, pytest.mark.slow]


def vllm_server(name: str, **spec: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "runtime": "vllm-tpu",
        "model": "llama3.1-8b",
        "tpu": {"accelerator": "v6e", "topology": "2x4"},
    }
    return server(name, **(defaults | spec))


@pytest.mark.usefixtures("operator")
def test_vllm_server_ready_and_its_rendered_args_run_a_real_vllm(
    objects: Objects, namespace: str, tmp_path: Path
) -> None:
    objects.apply(
        namespace,
        vllm_server(
            "llama31-8b",
            path="gs://models-bucket/llama3.1-8b/hf",
            vllm={"maxModelLen": 1024, "maxNumSeqs": 8},
            metrics={"podMonitoring": True},
        ),
    )
    status = objects.wait_phase("InferenceServer", namespace, "llama31-8b", "Ready", timeout=90)
    openai = f"http://llama31-8b.{namespace}.svc.cluster.local:8000/v1"
    assert status["endpoints"] == {"http": openai.removesuffix("/v1"), "openai": openai}
    assert openai in status["message"]
    assert condition(status, "CheckpointReady")["message"] == "loading gs://models-bucket/llama3.1-8b/hf"
    table = objects.kubectl("get", "inferenceservers", "-n", namespace).stdout
    assert "RUNTIME" in table
    assert "vllm-tpu" in table
    deployment = objects.get("Deployment", namespace, "llama31-8b")
    assert deployment is not None
    pod_spec = deployment["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    assert container["name"] == "vllm"
    assert container["image"] == "vllm/vllm-tpu:v0.32.0"
    assert pod_spec["nodeSelector"]["cloud.google.com/gke-tpu-accelerator"] == "tpu-v6e-slice"
    service = objects.get("Service", namespace, "llama31-8b")
    assert service is not None
    assert [p["port"] for p in service["spec"]["ports"]] == [8000]

    with start_rendered_server(container["args"], tmp_path / "vllm.log") as running:
        dropped = {a.rendered.split("=", 1)[0] for a in running.adapted if a.ran is None}
        assert dropped == {"--load-format", "--tensor-parallel-size"}
        with urllib.request.urlopen(f"{running.base_url}/v1/models", timeout=10) as response:
            models = json.load(response)
        assert [m["id"] for m in models["data"]] == ["llama3.1-8b"]
        assert models["data"][0]["max_model_len"] == 512  # the rendered 1024, capped to the small model's positions
        body = json.dumps({"model": "llama3.1-8b", "prompt": "a tensor processing unit", "max_tokens": 5}).encode()
        request = urllib.request.Request(
            f"{running.base_url}/v1/completions", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            completion = json.load(response)
        assert completion["usage"]["completion_tokens"] == 5

        # The same server measured end to end by a BenchmarkRun over the OpenAI protocol: the operator renders the
        # benchmark Job, the local node runs `tpuserve bench` against the Service (its simulated DNS points at the
        # real vLLM), and the results land in the run's status.
        address = running.base_url.removeprefix("http://")
        objects.kubectl(
            "annotate", "service", "llama31-8b", "-n", namespace, f"{sim.ADDRESS_ANNOTATION}={address}", "--overwrite"
        )
        objects.apply(
            namespace,
            benchmark(
                "llama31-8b-bench",
                server_ref="llama31-8b",
                tokenizerPath=model_dir(),
                requestRate="inf",
                openai={"ignoreEos": True},
                **LOCAL,
            ),
        )
        run = objects.wait_phase("BenchmarkRun", namespace, "llama31-8b-bench", "Succeeded", "Failed", timeout=300)
    assert run["phase"] == "Succeeded", run.get("message")
    assert run["server"]["protocol"] == "openai"
    assert run["server"]["model"] == "llama3.1-8b"
    assert run["server"]["endpoint"] == f"http://llama31-8b.{namespace}.svc.cluster.local:8000"
    results = run["results"]
    assert results["successfulRequests"] == 8
    assert results["failedRequests"] == 0
    assert results["totalOutputTokens"] == 8 * 8  # maxOutputLength 8, EOS ignored
    assert results["outputThroughput"] > 0
    assert results["ttftMs"]["median"] > 0


@pytest.mark.usefixtures("operator")
def test_vllm_server_refuses_a_maxtext_checkpoint(
    objects: Objects, namespace: str, meta_source: Any, gcs_bucket: str
) -> None:
    """A Ready LlamaCheckpoint of format meta has no Hugging Face directory: the vLLM server says which format it
    needs instead of waiting forever."""
    objects.apply(
        namespace,
        checkpoint("llama2-7b", meta_source(), f"gs://{gcs_bucket}/llama2-7b/maxtext", **LOCAL),
        vllm_server("llama2-on-vllm", ref="llama2-7b", model="llama2-7b"),
    )
    objects.wait_phase("LlamaCheckpoint", namespace, "llama2-7b", "Ready", timeout=120)

    def checkpoint_failed() -> dict[str, Any] | None:
        status = objects.status("InferenceServer", namespace, "llama2-on-vllm")
        conds = {c["type"]: c for c in status.get("conditions") or []}
        return status if conds.get("CheckpointReady", {}).get("reason") == "CheckpointFailed" else None

    status = wait_for(checkpoint_failed, timeout=60, interval=1, description="CheckpointReady reason CheckpointFailed")
    cond = condition(status, "CheckpointReady")
    assert cond["reason"] == "CheckpointFailed"
    assert "has no status.huggingFacePath" in cond["message"]
    assert "format huggingface" in cond["message"]
    assert objects.get("Deployment", namespace, "llama2-on-vllm") is None


@pytest.mark.usefixtures("operator")
def test_a_server_that_cannot_fit_hbm_is_reported_before_any_pod(objects: Objects, namespace: str) -> None:
    """JetStream (checked by the operator, so objects written before still validate): Failed with the numbers and
    no Deployment. vLLM: refused at admission by the CRD's rule (tests/api/cases.py)."""
    objects.apply(
        namespace,
        server(
            "llama2-70b-tiny",
            path="gs://bkt/ckpt/0/items",
            model="llama2-70b",
            tpu={"accelerator": "v5e", "topology": "1x1"},
        ),
    )
    status = objects.wait_phase("InferenceServer", namespace, "llama2-70b-tiny", "Failed", timeout=30)
    assert status["message"].startswith("llama2-70b bf16 needs 128.5 GiB of weights; v5e 1x1 has 14.9 GiB of HBM")
    assert condition(status, "Available")["reason"] == "InsufficientHbm"
    assert objects.get("Deployment", namespace, "llama2-70b-tiny") is None
    assert any(e["reason"] == "InsufficientHbm" for e in objects.events(namespace, "llama2-70b-tiny"))
