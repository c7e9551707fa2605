"""The demo's second runtime (`make demo`, after the JetStream scenario): Llama 3.1 8B on a v6e 2x4 host with
vLLM's TPU backend, as an InferenceServer of runtime vllm-tpu. The operator renders GKE's vLLM Deployment; the
pod lands on a simulated v6e host; the rendered arguments, read back from the cluster, start vLLM's real OpenAI
server (CPU build, small random-weight Llama-3-architecture model); a streaming completion goes through the
Service's simulated DNS entry."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.cluster import sim
from tests.operator.harness import Objects
from tests.vllm.rendered import RunningServer, start_rendered_server

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


class Scenario:
    """Applied next to the JetStream objects; vLLM starts in the background (about a minute on 2 cores) while the
    JetStream chain runs, and `finish` prints what happened and sends the completion."""

    def __init__(self, kubectl: Any, objects: Objects, namespace: str, bucket: str, work: Path) -> None:
        self.kubectl, self.objects, self.namespace, self.work = kubectl, objects, namespace, work
        self.srv = server_object(bucket)
        self.stack = contextlib.ExitStack()
        self.status: dict[str, Any] = {}
        self.container: dict[str, Any] = {}
        self.running: RunningServer | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._start, daemon=True)

    def start(self) -> None:
        self.objects.apply(self.namespace, self.srv)
        self.thread.start()

    def _start(self) -> None:
        try:
            self.status = self.objects.wait_phase(
                "InferenceServer", self.namespace, NAME, "Ready", "Failed", timeout=120
            )
            if self.status.get("phase") != "Ready":
                return
            deployment = self.objects.get("Deployment", self.namespace, NAME)
            assert deployment is not None
            (self.container,) = deployment["spec"]["template"]["spec"]["containers"]
            self.running = self.stack.enter_context(
                start_rendered_server(self.container["args"], self.work / "vllm.log")
            )
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self, step: Any) -> bool:
        try:
            return self._finish(step)
        finally:
            self.stack.close()

    def _finish(self, step: Any) -> bool:
        step(f"vLLM 1/3 InferenceServer {NAME} (runtime vllm-tpu, llama3.1-8b, v6e 2x4), applied with the others")
        print(yaml.safe_dump(self.srv, sort_keys=False))
        self.thread.join(timeout=400)
        print(self.kubectl("get", "inferenceservers", "-n", self.namespace, "-o", "wide").stdout)
        if self.error is not None or self.running is None:
            print(f"NOT OK: {self.error or self.status.get('message')}")
            return False
        print(f"  status.endpoints.openai: {self.status['endpoints']['openai']}")
        c = self.container
        print(f"  rendered: {c['image']} {' '.join(c['command'])} \\\n    " + " ".join(c["args"]))

        step("vLLM 2/3 the rendered arguments started vLLM's real OpenAI server on this CPU")
        running = self.running
        for a in running.adapted:
            what = f"{a.rendered or '(added)'} -> {a.ran or 'dropped'}"
            print(f"  {what:70s} {a.why}")
        address = running.base_url.removeprefix("http://")
        self.kubectl(
            "annotate", "service", NAME, "-n", self.namespace, f"{sim.ADDRESS_ANNOTATION}={address}", "--overwrite"
        )
        print(f"  {NAME}.{self.namespace}.svc:8000 -> {address} (simulated DNS); log {self.work / 'vllm.log'}")

        step("vLLM 3/3 a streaming completion through the OpenAI API")
        usage = completion(running.base_url, self.srv["spec"]["model"])
        with urllib.request.urlopen(f"{running.base_url}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        for line in metrics.splitlines():
            if line.startswith(("vllm:generation_tokens_total{", "vllm:kv_cache_usage_perc{", "vllm:num_requests_r")):
                print("  " + line)
        ok = usage.get("completion_tokens") == 12
        print(f"\n{'OK' if ok else 'NOT OK'}: vLLM InferenceServer Ready, its rendered args served a real completion.")
        return ok


def completion(base_url: str, model: str) -> dict[str, Any]:
    body = json.dumps(
        {
            "model": model,
            "prompt": "A tensor processing unit",
            "max_tokens": 12,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()
    request = urllib.request.Request(f"{base_url}/v1/completions", body, {"Content-Type": "application/json"})
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
    return usage
