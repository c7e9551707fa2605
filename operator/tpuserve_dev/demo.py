"""The main job (`make demo`): the manual's three steps as three objects, on a local Kubernetes cluster.

Brings up the local cluster (real kube-apiserver, etcd, controller-manager, scheduler; kwok-simulated GKE TPU
node pools), installs the CRDs, starts the operator, a GCS emulator and JetStream 0.2.2's real server (mock
engine), applies the seed's example (manifests/examples/llama2-7b-v5e) adapted to what can run here, shows the
objects reaching Ready/Succeeded with the benchmark's real numbers, and tears everything down.

Run: `make demo` (or `python -m tpuserve_dev.demo [--keep]`).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from localcluster import sim
from localcluster.harness import LocalCluster
from localcluster.wait import wait_for
from tpuserve_dev import REPO, demo_vllm
from tpuserve_dev import cluster as cluster_config
from tpuserve_dev.gcs_emulator import make_client, running_gcs_emulator
from tpuserve_dev.jetstream_server import start_mock_server
from tpuserve_dev.operator_harness import Objects, OperatorProcess, controller_reference, install_crds, metric_value
from tpuserve_dev.tiny_checkpoint import TINY, upload_dir, write_meta_source

EXAMPLE = REPO / "manifests" / "examples" / "llama2-7b-v5e"
BUCKET = "tpuserve-demo"
NAMESPACE = "demo"

WHAT_IS_WHAT = """\
What is real and what is simulated in this demo
  REAL       kube-apiserver + etcd, kube-controller-manager (Job, Deployment, garbage collector), kube-scheduler
             (it places the server on the v5e 2x4 node pool by nodeSelector, taint and google.com/tpu capacity);
             the tpuserve operator; the GCS API (gcp-storage-emulator) holding the source and the results;
             the converter `tpuserve convert run` and the benchmark `tpuserve bench run`, each a real process
             started for its pod on node tpuserve-local; JetStream 0.2.2's orchestrator + gRPC server.
  SIMULATED  the GKE TPU nodes and the server pod on them (kwok: Running/Ready, no containers run);
             the model: JetStream's mock engine stands in for MaxText on a TPU, so the numbers measure the
             mock engine on this CPU, not Llama2-7B on a v5e; the Meta checkpoint is a file-name-correct fake and
             the converter's MaxText step is replaced by a synthetic step writing a real tiny Orbax checkpoint;
             cluster DNS (the Service annotation sim.tpuserve.dev/address points at the local JetStream server).
  ADAPTED    the seed's 1000-prompt openorca run needs the openorca pickle and Meta's tokenizer (not available
             offline): the BenchmarkRun uses the synthetic dataset (8 prompts, 16 input / 8 output tokens)."""


def step(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def load(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((EXAMPLE / name).read_text())
    return obj


def demo_objects(jetstream: str) -> list[dict[str, Any]]:
    local = sim.local_node_placement()
    ckpt = load("checkpoint.yaml")
    ckpt["spec"]["source"] = f"gs://{BUCKET}/llama2-7b/meta"
    ckpt["spec"]["output"] = f"gs://{BUCKET}/llama2-7b/maxtext"
    ckpt["spec"]["converter"].pop("serviceAccountName", None)
    ckpt["spec"]["converter"].update(copy.deepcopy(local))  # the CPU "pool" is the local node here
    srv = load("server.yaml")  # unchanged: v5e 2x4, the manual's engine settings
    srv["spec"].pop("serviceAccountName", None)
    run = load("benchmark.yaml")
    # Renamed: the seed's run is openorca; this one is synthetic (see "ADAPTED" above).
    run["metadata"]["name"] = "llama2-7b-v5e-synthetic"
    run["spec"] = {
        "serverRef": run["spec"]["serverRef"],
        "dataset": {"name": "synthetic", "synthetic": {"inputLength": 16, "outputLength": 8}},
        "numPrompts": 8,
        "maxOutputLength": 8,
        "requestRate": "inf",
        "warmup": "none",
        "slo": {"ttftMs": 30000},
        "output": f"gs://{BUCKET}/benchmarks/{run['metadata']['name']}",
        "timeout": "10m",
        **copy.deepcopy(local),
    }
    # Owned by the InferenceServer (its uid is filled in once it exists: the operator touches only the children it
    # controls); the annotation is the simulated DNS entry for the local server.
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": srv["metadata"]["name"], "annotations": {sim.ADDRESS_ANNOTATION: jetstream}},
        "spec": {
            "ports": [{"name": "grpc", "port": 9000}],
            "selector": {"tpuserve.dev/inferenceserver": srv["metadata"]["name"]},
        },
    }
    return [service, ckpt, srv, run]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave the cluster running at the end (prints KUBECONFIG)")
    args = parser.parse_args(argv)
    print(WHAT_IS_WHAT)
    print(demo_vllm.WHAT_IS_WHAT)
    work = Path(tempfile.mkdtemp(prefix="tpuserve-demo-"))
    started = time.monotonic()
    cluster = LocalCluster(work / "cluster", config=cluster_config.CONFIG)
    operator: OperatorProcess | None = None
    try:
        step("1/6 local cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok TPU pools, tpuserve-local)")
        cluster.start()
        kubectl = cluster.kubectl
        print(
            kubectl(
                "get", "nodes", "-L", "cloud.google.com/gke-tpu-accelerator,cloud.google.com/gke-tpu-topology"
            ).stdout
        )
        install_crds(kubectl)
        kubectl("create", "namespace", NAMESPACE)
        with running_gcs_emulator() as gcs, start_mock_server(log_path=work / "jetstream.log") as jetstream:
            step(f"2/6 GCS emulator at {gcs}: a Meta-format Llama2-7B source (file names right, tiny contents)")
            client = make_client(gcs)
            client.create_bucket(BUCKET)
            write_meta_source(work / "meta", TINY)
            upload_dir(client, BUCKET, work / "meta", "llama2-7b/meta")
            for blob in client.list_blobs(BUCKET):
                print(f"  gs://{BUCKET}/{blob.name}  {blob.size} bytes")
            cluster.local_node_env_file.write_text(json.dumps({"STORAGE_EMULATOR_HOST": gcs}))
            step(f"3/6 operator (tpuserve operator) and JetStream 0.2.2 server at {jetstream}")
            arch = work / "tiny-arch.json"
            # One override per model: the tiny Llama 2 for the conversion, the stand-in for the vLLM mirror.
            arch.write_text(json.dumps({"llama2-7b": dataclasses.asdict(TINY), **demo_vllm.arch_overrides()}))
            env = {
                "STORAGE_EMULATOR_HOST": gcs,
                "TPUSERVE_GCS_PROJECT": "tpuserve-demo",
                "TPUSERVE_CONVERTER_ENV": json.dumps(
                    {"TPUSERVE_CONVERT_STEP": "synthetic", "TPUSERVE_CONVERT_ARCH": str(arch)}
                ),
            }
            operator = OperatorProcess(cluster.kubeconfig, work / "operator.log", env)
            operator.start()
            print(f"  operator log: {operator.log_path}; metrics: http://127.0.0.1:{operator.metrics_port}/metrics")
            step("4/6 kubectl apply: LlamaCheckpoint, InferenceServer (v5e 2x4, the manual's settings), BenchmarkRun")
            objects = Objects(kubectl)
            items = demo_objects(jetstream)
            service, *items = items
            print(yaml.safe_dump_all(items, sort_keys=False))
            objects.apply(NAMESPACE, *items)
            server_body = objects.get("InferenceServer", NAMESPACE, service["metadata"]["name"]) or {}
            service["metadata"]["ownerReferences"] = [controller_reference(server_body)]
            objects.apply(NAMESPACE, service)
            vllm = demo_vllm.Scenario(kubectl, objects, NAMESPACE, BUCKET, work, client)
            print("  and, for the vLLM scenario (shown after the JetStream results):")
            print(yaml.safe_dump_all(vllm.start()[1:], sort_keys=False))
            step("5/6 watching them reach Ready / Succeeded")
            names = {i["kind"]: i["metadata"]["name"] for i in items}
            _watch(objects, names)
            step("6/6 results")
            print(kubectl("get", "lckpt,infsrv,bench", "-n", NAMESPACE, "-o", "wide").stdout)
            print(kubectl("get", "jobs,deployments,pods", "-n", NAMESPACE, "-o", "wide").stdout)
            run = objects.status("BenchmarkRun", NAMESPACE, names["BenchmarkRun"])
            print("status.results (from the benchmark's termination message):")
            print(
                yaml.safe_dump(
                    {
                        k: run.get(k)
                        for k in ("results", "resultsURI", "costPerMillionOutputTokens", "rooflineEfficiency")
                    },
                    sort_keys=False,
                )
            )
            print("status.server (what was measured):")
            print(yaml.safe_dump(run.get("server"), sort_keys=False))
            text = operator.metrics()
            print("operator metrics (Prometheus):")
            for line in text.splitlines():
                if (
                    line.startswith(
                        (
                            "tpuserve_benchmark_output_throughput_tokens",
                            "tpuserve_benchmark_request_throughput",
                            "tpuserve_benchmark_ttft_seconds{",
                            "tpuserve_objects{",
                        )
                    )
                    and 'stat="p90"' not in line
                ):
                    print("  " + line)
            value = metric_value(text, "tpuserve_benchmark_output_throughput_tokens", {"name": names["BenchmarkRun"]})
            ok = run.get("phase") == "Succeeded" and value == run["results"]["outputThroughput"]
            print(
                f"\n{'OK' if ok else 'NOT OK'}: benchmark {run.get('phase')}, "
                f"{run.get('results', {}).get('outputThroughput')} output tok/s in status and in /metrics; "
                f"demo took {time.monotonic() - started:.0f}s."
            )
            print(
                "Reminder: the TPU nodes and the model are simulated (see the top); the cluster, operator, converter, "
                "benchmark, GCS API and JetStream server are real."
            )
            if args.keep:
                print(f"\nkept: export KUBECONFIG={cluster.kubeconfig}  (stop: python -m tpuserve_dev.cluster down)")
            vllm_ok = vllm.finish(step)
            print(f"demo took {time.monotonic() - started:.0f}s.")
            operator.stop()
            operator = None
            return 0 if ok and vllm_ok else 1
    finally:
        if operator is not None:
            operator.stop()
        if not args.keep:
            step("tear-down")
            cluster.stop()


def _watch(objects: Objects, names: dict[str, str], timeout: float = 600) -> None:
    """Print each phase change of the three objects until the run ends or something fails."""
    seen: dict[str, str] = {}

    def finished() -> bool:
        phases = {}
        for kind in ("LlamaCheckpoint", "InferenceServer", "BenchmarkRun"):
            status = objects.status(kind, NAMESPACE, names[kind])
            phases[kind] = status.get("phase") or "-"
            if seen.get(kind) != phases[kind]:
                seen[kind] = phases[kind]
                when = time.strftime("%H:%M:%S")
                print(f"  [{when}] {kind}/{names[kind]}: {phases[kind]}  {status.get('message') or ''}", flush=True)
        return phases["BenchmarkRun"] in ("Succeeded", "Failed") or "Failed" in phases.values()

    wait_for(finished, timeout=timeout, interval=1, description="the demo objects to finish")


if __name__ == "__main__":
    sys.exit(main())
