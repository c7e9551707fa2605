"""Fixtures of the operator's cluster tests: CRDs installed, one real operator process per test module,
a fake (file-name-correct) Meta checkpoint in the GCS emulator, and the local-node placement."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster import sim
from tpuserve_dev.operator_harness import Objects, OperatorProcess, controller_reference, install_crds
from tpuserve_dev.tiny_checkpoint import TINY, upload_dir, write_meta_source

LOCAL: dict[str, Any] = dict(sim.local_node_placement())  # {"nodeSelector": ..., "tolerations": ...}


@pytest.fixture(scope="session")
def crds(kube_cluster: Any) -> None:
    install_crds(kube_cluster.kubectl)


@pytest.fixture(scope="session")
def tiny_arch_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama architecture (under the real name llama2-7b) for the synthetic converter step."""
    path = tmp_path_factory.mktemp("arch") / "tiny.json"
    path.write_text(json.dumps(dataclasses.asdict(TINY)))
    return path


def operator_env(gcs_endpoint: str, tiny_arch_file: Path, **extra: str) -> dict[str, str]:
    return {
        "STORAGE_EMULATOR_HOST": gcs_endpoint,
        "TPUSERVE_GCS_PROJECT": "tpuserve-test",
        "TPUSERVE_GCS_RETRY_SECONDS": "1",
        # The converter on the local node cannot run MaxText here: the synthetic step writes a real tiny Orbax
        # checkpoint instead (tpuserve.convert.synthetic).
        "TPUSERVE_CONVERTER_ENV": json.dumps(
            {"TPUSERVE_CONVERT_STEP": "synthetic", "TPUSERVE_CONVERT_ARCH": str(tiny_arch_file)}
        ),
        **extra,
    }


@pytest.fixture(scope="module")
def operator(
    kube_cluster: Any,
    crds: None,  # noqa: ARG001 -- requested for its effect (the CRDs installed); marks do not apply to fixtures
    gcs_emulator: str,
    tiny_arch_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """One operator process for the test module (restart-tests stop and start it themselves)."""
    if kube_cluster.has_local_node:
        kube_cluster.set_local_node_env(STORAGE_EMULATOR_HOST=gcs_emulator)
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(kube_cluster.kubeconfig, log, operator_env(gcs_emulator, tiny_arch_file))
    process.start()
    yield process
    process.stop()


@pytest.fixture
def objects(kube_cluster: Any) -> Objects:
    return Objects(kube_cluster.kubectl)


@pytest.fixture
def meta_source(gcs_client: Any, gcs_bucket: str, tmp_path: Path) -> Callable[..., str]:
    """Upload a Meta-format source (right file names, random bytes) and return its gs:// URI."""

    def make(prefix: str = "meta/llama-2-7b", skip: tuple[str, ...] = ()) -> str:
        local = tmp_path / prefix.replace("/", "_")
        write_meta_source(local, TINY, skip=skip)
        upload_dir(gcs_client, gcs_bucket, local, prefix)
        return f"gs://{gcs_bucket}/{prefix}"

    return make


def checkpoint(name: str, source: str, output: str, **converter: Any) -> dict[str, Any]:
    return {
        "apiVersion": "tpuserve.dev/v1alpha1",
        "kind": "LlamaCheckpoint",
        "metadata": {"name": name},
        "spec": {"model": "llama2-7b", "source": source, "output": output, "converter": converter},
    }


def server(name: str, *, ref: str | None = None, path: str | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"tpu": {"accelerator": "v5e", "topology": "2x4"}, **spec}
    if ref:
        body["checkpointRef"] = {"name": ref}
    if path:
        body["checkpointPath"] = path
    return {"apiVersion": "tpuserve.dev/v1alpha1", "kind": "InferenceServer", "metadata": {"name": name}, "spec": body}


def benchmark(name: str, *, server_ref: str | None = None, target: str | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dataset": {"name": "synthetic", "synthetic": {"inputLength": 16, "outputLength": 8}},
        "numPrompts": 8,
        "maxOutputLength": 8,
        "warmup": "none",
        **spec,
    }
    if server_ref:
        body["serverRef"] = {"name": server_ref}
    if target:
        host, port = target.rsplit(":", 1)
        body["target"] = {"host": host, "port": int(port)}
    return {"apiVersion": "tpuserve.dev/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": name}, "spec": body}


def sim_service(name: str, address: str, owner: dict[str, Any]) -> dict[str, Any]:
    """The server's Service made ahead of the operator, controlled by the InferenceServer `owner` (the operator
    touches only children it controls), carrying the simulated-DNS address of a local JetStream server."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "annotations": {sim.ADDRESS_ANNOTATION: address},
            "ownerReferences": [controller_reference(owner)],
        },
        "spec": {"ports": [{"name": "grpc", "port": 9000}], "selector": {"tpuserve.dev/inferenceserver": name}},
    }


def summary_json(**overrides: Any) -> str:
    """A BenchmarkSummary as the benchmark writes it (for kwok-simulated Job pods)."""
    from tpuserve.results import BenchmarkSummary, LatencyStats

    stats = LatencyStats(mean=50, median=40, p90=80, p95=90, p99=120, max=150)
    values: dict[str, Any] = {
        "successful_requests": 100,
        "failed_requests": 0,
        "duration_seconds": 10.0,
        "total_input_tokens": 20000,
        "total_output_tokens": 30000,
        "request_throughput": 10.0,
        "input_throughput": 2000.0,
        "output_throughput": 3000.0,
        "total_throughput": 5000.0,
        "ttft_ms": stats,
        "tpot_ms": stats,
        "decode_tpot_ms": stats,
        "latency_ms": stats,
        **overrides,
    }
    return BenchmarkSummary(**values).to_termination_message()
