"""The demo's second runtime (`make demo`, after the JetStream scenario): Llama 3.1 8B on a v6e 2x4 host with
vLLM's TPU backend, as an InferenceServer of runtime vllm-tpu. The operator renders GKE's vLLM Deployment; the
pod lands on a simulated v6e host; the rendered arguments, read back from the cluster, start vLLM's real OpenAI
server (CPU build, small random-weight Llama-3-architecture model); a streaming completion goes through the
Service's simulated DNS entry."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.cluster import sim
from tests.operator.harness import Objects
from tests.vllm.rendered import start_rendered_server

EXAMPLE = Path(__file__).resolve().parents[1] / "manifests" / "examples" / "llama3.1-8b-v6e" / "server.yaml"
NAME = "llama31-8b-v6e"

WHAT_IS_WHAT = """\
  vLLM scenario (Llama 3.1 8B, runtime vllm-tpu, v6e 2x4)
  REAL       the operator's vLLM Deployment, Service and PodMonitoring rendering; the scheduler placing the pod on
             the v6e 2x4 pool; vLLM 0.32's OpenAI API server (CPU build: the same server, scheduler and vllm:
             metrics as the TPU image) started with the arguments read from that Deployment.
  SIMULATED  the v6e host and the pod on it (kwok); the model: a small random-weight Llama-3-architecture model
             (2 layers, GQA 4/2 heads) instead of Llama 3.1 8B's weights (their gs:// path is rendered, not read);
             cluster DNS (sim.tpuserve.dev/address on the Service).
  NOT YET    the Hugging Face mirror (LlamaCheckpoint format huggingface) and the BenchmarkRun over the OpenAI
             protocol come from other branches: this scenario stops at a real completion."""


def server_object(bucket: str) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    obj["metadata"]["name"] = NAME
    obj["spec"]["checkpointPath"] = f"gs://{bucket}/llama3.1-8b-instruct/hf"
    obj["spec"]["tpu"]["topology"] = "2x4"  # the demo shape (the example is the 1-chip recipe)
    obj["spec"].pop("serviceAccountName", None)
    return obj


def run(kubectl: Any, objects: Objects, namespace: str, bucket: str, work: Path, step: Any) -> bool:
    srv = server_object(bucket)
    step(f"vLLM 1/3 kubectl apply: InferenceServer {NAME} (runtime vllm-tpu, llama3.1-8b, v6e 2x4)")
    print(yaml.safe_dump(srv, sort_keys=False))
    objects.apply(namespace, srv)
    status = objects.wait_phase("InferenceServer", namespace, NAME, "Ready", "Failed", timeout=120)
    print(kubectl("get", "inferenceservers", "-n", namespace, "-o", "wide").stdout)
    if status.get("phase") != "Ready":
        print(f"NOT OK: {status.get('message')}")
        return False
    print(f"  status.endpoints.openai: {status['endpoints']['openai']}")
    deployment = objects.get("Deployment", namespace, NAME)
    assert deployment is not None
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    print(f"  rendered: {container['image']} {' '.join(container['command'])} \\\n    " + " ".join(container["args"]))

    step("vLLM 2/3 the rendered arguments start vLLM's real OpenAI server on this CPU")
    with start_rendered_server(container["args"], work / "vllm.log") as running:
        for a in running.adapted:
            what = f"{a.rendered or '(added)'} -> {a.ran or 'dropped'}"
            print(f"  {what:70s} {a.why}")
        address = running.base_url.removeprefix("http://")
        kubectl("annotate", "service", NAME, "-n", namespace, f"{sim.ADDRESS_ANNOTATION}={address}", "--overwrite")
        print(f"  {NAME}.{namespace}.svc:8000 -> {address} (simulated DNS); log {work / 'vllm.log'}")

        step("vLLM 3/3 a streaming completion through the OpenAI API")
        body = json.dumps(
            {
                "model": srv["spec"]["model"],
                "prompt": "A tensor processing unit",
                "max_tokens": 12,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ).encode()
        request = urllib.request.Request(
            f"{running.base_url}/v1/completions", body, {"Content-Type": "application/json"}
        )
        started = time.monotonic()
        chunks: list[dict[str, Any]] = []
        with urllib.request.urlopen(request, timeout=60) as response:
            for line in response:
                text = line.decode().strip()
                if text.startswith("data: ") and text != "data: [DONE]":
                    chunks.append(json.loads(text.removeprefix("data: ")))
        elapsed = time.monotonic() - started
        generated = "".join(c["choices"][0].get("text", "") for c in chunks if c.get("choices"))
        usage: dict[str, Any] = next((c["usage"] for c in chunks if c.get("usage")), {})
        print(f"  {len(chunks)} SSE chunks in {elapsed:.2f}s; usage {usage}; text (random weights): {generated!r}")
        with urllib.request.urlopen(f"{running.base_url}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        for line in metrics.splitlines():
            if line.startswith(("vllm:generation_tokens_total{", "vllm:kv_cache_usage_perc{", "vllm:num_requests_")):
                print("  " + line)
        ok = usage.get("completion_tokens") == 12
    print(f"\n{'OK' if ok else 'NOT OK'}: vLLM InferenceServer Ready, rendered args served a real completion.")
    return ok
