"""The demo's second runtime (`make demo`, beside the JetStream scenario): Llama 3.1 8B on a v6e 2x4 host with
vLLM's TPU backend. A LlamaCheckpoint in format huggingface mirrors a Hugging Face model directory into GCS and
verifies it; an InferenceServer of runtime vllm-tpu serves the mirror (the operator renders GKE's vLLM Deployment,
the pod lands on a simulated v6e host); the rendered arguments, read back from the cluster, start vLLM's real
OpenAI server on the mirrored files; a BenchmarkRun measures it over the OpenAI protocol.

Everything is applied next to the JetStream objects and runs in the background (vLLM takes about a minute to start
on 2 cores); `finish` prints it after the JetStream results."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
from pathlib import Path
from typing import Any

import yaml

from localcluster import sim
from localcluster.ports import free_port
from tpuserve_dev import REPO
from tpuserve_dev.hf_model import arch_from_config
from tpuserve_dev.operator_harness import Objects, controller_reference
from tpuserve_dev.tiny_checkpoint import upload_dir
from tpuserve_dev.vllm_rendered import RunningServer, start_rendered_server
from tpuserve_dev.vllm_server import model_dir

EXAMPLE = REPO / "manifests" / "examples" / "llama3.1-8b-v6e" / "server.yaml"
NAME = "llama31-8b-v6e"
CHECKPOINT = "llama31-8b-hf"
BENCHMARK = "llama31-8b-v6e-openai"
MODEL = "llama3.1-8b"

WHAT_IS_WHAT = """\
  vLLM scenario (Llama 3.1 8B, runtime vllm-tpu, v6e 2x4): Hugging Face mirror -> server -> OpenAI benchmark
  REAL       the mirror Job (`tpuserve convert mirror` on tpuserve-local: copy with checksums, every safetensors
             header checked against the catalog, manifest last); the operator's vLLM Deployment and Service; vLLM
             0.32's OpenAI API server (CPU build: the same server, scheduler and vllm: metrics as the TPU image)
             started with the arguments read from that Deployment, serving the mirrored files; the benchmark
             `tpuserve bench run --protocol openai` on tpuserve-local.
  SIMULATED  the v6e host and the pod on it (kwok); the model: a small random-weight Llama-3-architecture model
             (2 layers, GQA 4/2 heads; the catalog's llama3.1-8b shapes are replaced through the converter's
             architecture override) standing in for Llama 3.1 8B; the hub: the model directory in the GCS emulator
             is the mirror's source; cluster DNS (sim.tpuserve.dev/address on the Service)."""


def arch_overrides() -> dict[str, Any]:
    """The converter's architecture for the stand-in model, under the catalog name it is mirrored as."""
    config = json.loads((Path(model_dir()) / "config.json").read_text())
    return {MODEL: dataclasses.asdict(arch_from_config(config, MODEL))}


def _local(obj: dict[str, Any]) -> dict[str, Any]:
    return {**obj, **sim.local_node_placement()}


class Scenario:
    def __init__(self, kubectl: Any, objects: Objects, namespace: str, bucket: str, work: Path, client: Any) -> None:
        self.kubectl, self.objects, self.namespace, self.bucket, self.work = kubectl, objects, namespace, bucket, work
        self.client = client
        self.port = free_port()
        self.stack = contextlib.ExitStack()
        self.status: dict[str, Any] = {}
        self.container: dict[str, Any] = {}
        self.mirror_path = ""
        self.running: RunningServer | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def objects_to_apply(self) -> list[dict[str, Any]]:
        source = f"gs://{self.bucket}/hub/meta-llama/Llama-3.1-8B-Instruct"
        checkpoint = {
            "apiVersion": "tpuserve.dev/v1alpha1",
            "kind": "LlamaCheckpoint",
            "metadata": {"name": CHECKPOINT},
            "spec": {
                "format": "huggingface",
                "model": MODEL,
                "source": source,
                "output": f"gs://{self.bucket}/{MODEL}",
                "converter": _local({}),
            },
        }
        server: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
        server["metadata"]["name"] = NAME
        server["spec"].pop("checkpointPath")
        server["spec"]["checkpointRef"] = {"name": CHECKPOINT}
        server["spec"]["tpu"]["topology"] = "2x4"  # the issue's demo shape (the example is the 1-chip recipe)
        server["spec"].pop("serviceAccountName", None)
        # Controlled by the server (see start()); its annotation is the simulated DNS entry for the local vLLM server.
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": NAME, "annotations": {sim.ADDRESS_ANNOTATION: f"127.0.0.1:{self.port}"}},
            "spec": {"ports": [{"name": "http", "port": 8000}], "selector": {"tpuserve.dev/inferenceserver": NAME}},
        }
        return [service, checkpoint, server]

    def benchmark(self) -> dict[str, Any]:
        return {
            "apiVersion": "tpuserve.dev/v1alpha1",
            "kind": "BenchmarkRun",
            "metadata": {"name": BENCHMARK},
            "spec": _local(
                {
                    "serverRef": {"name": NAME},
                    "dataset": {"name": "synthetic", "synthetic": {"inputLength": 16, "outputLength": 8}},
                    "tokenizerPath": self.mirror_path,  # tokenizer.json of the mirrored directory
                    "numPrompts": 8,
                    "maxOutputLength": 8,
                    "requestRate": "inf",
                    "warmup": "none",
                    "openai": {"ignoreEos": True},
                    "output": f"gs://{self.bucket}/benchmarks/{BENCHMARK}",
                    "timeout": "10m",
                }
            ),
        }

    def start(self) -> list[dict[str, Any]]:
        local = Path(model_dir())
        self.client.bucket(self.bucket)  # the demo created it
        hub = self.work / "hub-copy"
        hub.mkdir()
        for path in local.iterdir():  # the model directory, less the cache's completion stamp
            if path.is_file() and not path.name.startswith("."):
                (hub / path.name).write_bytes(path.read_bytes())
        upload_dir(self.client, self.bucket, hub, "hub/meta-llama/Llama-3.1-8B-Instruct")
        items = self.objects_to_apply()
        service, *owned = items
        self.objects.apply(self.namespace, *owned)
        # The operator touches only children it controls: the Service made ahead of it names the server as its
        # controller (the operator then patches it like its own).
        server_body = self.objects.get("InferenceServer", self.namespace, NAME) or {}
        service["metadata"]["ownerReferences"] = [controller_reference(server_body)]
        self.objects.apply(self.namespace, service)
        self.thread.start()
        return items

    def _serve(self) -> None:
        try:
            wait = self.objects.wait_phase
            self.status = wait("InferenceServer", self.namespace, NAME, "Ready", "Failed", timeout=240)
            if self.status.get("phase") != "Ready":
                return
            hf_path = self.objects.status("LlamaCheckpoint", self.namespace, CHECKPOINT)["huggingFacePath"]
            bucket, _, prefix = hf_path.removeprefix("gs://").partition("/")
            mirror = self.work / "mirror"
            for blob in self.client.list_blobs(bucket, prefix=prefix.rstrip("/") + "/"):
                target = mirror / blob.name[len(prefix.rstrip("/")) + 1 :]
                target.parent.mkdir(parents=True, exist_ok=True)
                blob.download_to_filename(str(target))
            self.mirror_path = str(mirror)
            deployment = self.objects.get("Deployment", self.namespace, NAME)
            assert deployment is not None
            (self.container,) = deployment["spec"]["template"]["spec"]["containers"]
            server = start_rendered_server(
                self.container["args"], self.work / "vllm.log", model=self.mirror_path, port=self.port
            )
            self.running = self.stack.enter_context(server)
            self.objects.apply(self.namespace, self.benchmark())
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self, step: Any) -> bool:
        try:
            return self._finish(step)
        finally:
            self.stack.close()

    def _finish(self, step: Any) -> bool:
        step(f"vLLM 1/3 LlamaCheckpoint {CHECKPOINT} (format huggingface) -> InferenceServer {NAME} (vllm-tpu)")
        self.thread.join(timeout=400)
        print(self.kubectl("get", "lckpt,infsrv", "-n", self.namespace, "-o", "wide").stdout)
        if self.error is not None or self.running is None:
            print(f"NOT OK: {self.error!r} {self.status.get('message', '')}")
            return False
        checkpoint = self.objects.status("LlamaCheckpoint", self.namespace, CHECKPOINT)
        print(f"  mirror: {checkpoint.get('message')}")
        print(f"  status.endpoints.openai: {self.status['endpoints']['openai']}")
        c = self.container
        print(f"  rendered: {c['image']} {' '.join(c['command'])} \\\n    " + " ".join(c["args"]))

        step("vLLM 2/3 the rendered arguments started vLLM's real OpenAI server on the mirrored files")
        for a in self.running.adapted:
            what = f"{a.rendered or '(added)'} -> {a.ran or 'dropped'}"
            print(f"  {what:70s} {a.why}")
        print(
            f"  {NAME}.{self.namespace}.svc:8000 -> {self.running.base_url} (simulated DNS); log {self.work}/vllm.log"
        )

        step(f"vLLM 3/3 BenchmarkRun {BENCHMARK} over the OpenAI protocol")
        run = self.objects.wait_phase("BenchmarkRun", self.namespace, BENCHMARK, "Succeeded", "Failed", timeout=300)
        print(self.kubectl("get", "bench", BENCHMARK, "-n", self.namespace, "-o", "wide").stdout)
        results = run.get("results") or {}
        print(yaml.safe_dump({"results": results, "server": run.get("server")}, sort_keys=False))
        ok = run.get("phase") == "Succeeded" and results.get("successfulRequests") == 8
        print(f"{'OK' if ok else 'NOT OK'}: mirror Ready, vLLM server Ready, benchmark {run.get('phase')} over OpenAI.")
        return ok
