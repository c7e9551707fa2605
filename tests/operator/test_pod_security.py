"""Each workload's rendered pod against the API server's own Pod Security admission (docs/security.md).

The pod template of every child the operator renders is created (server-side dry run) as a Pod in a namespace
labelled `pod-security.kubernetes.io/enforce=<level>`: enforcement applies to Pods, not to the Jobs and
Deployments that hold them. The benchmark and `tpuserve` conversion pods must meet "restricted"; the pods of
Google's root images meet every restricted rule but runAsNonRoot (the documented exception) and "baseline".
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster.wait import wait_for
from tests.operator.conftest import server
from tests.operator.test_render import CHECKPOINT, OWNER, example
from tpuserve.api import BenchmarkRunSpec, InferenceServerSpec, LlamaCheckpointSpec
from tpuserve.controllers import render
from tpuserve.settings import OperatorSettings
from tpuserve_dev.operator_harness import Objects, OperatorProcess, condition

pytestmark = pytest.mark.cluster

SERVICE_ACCOUNT = "tpuserve-workloads"
SETTINGS = OperatorSettings(workload_service_account=SERVICE_ACCOUNT)


def _server(settings: OperatorSettings) -> dict[str, Any]:
    spec = InferenceServerSpec.model_validate(example("llama2-7b-v5e", "server.yaml"))
    return render.render_deployment(spec, OWNER, settings, CHECKPOINT)


def _convert(preset: str) -> dict[str, Any]:
    spec = LlamaCheckpointSpec.model_validate(
        {"source": "gs://bkt/meta", "output": "gs://bkt/out", "converter": {"preset": preset}}
    )
    return render.render_convert_job(spec, OWNER, SETTINGS)


def _mirror() -> dict[str, Any]:
    spec = LlamaCheckpointSpec.model_validate(
        {
            "model": "llama3.1-8b",
            "format": "huggingface",
            "huggingFace": {"repoId": "meta-llama/Llama-3.1-8B-Instruct", "tokenSecretRef": {"name": "hf-secret"}},
            "output": "gs://bkt/llama3.1-8b",
        }
    )
    return render.render_mirror_job(spec, OWNER, SETTINGS)


def _bench() -> dict[str, Any]:
    spec = BenchmarkRunSpec.model_validate(example("llama2-7b-v5e", "benchmark.yaml"))
    return render.render_bench_job(spec, OWNER, SETTINGS, target="h:9000", model=None, tokenizer=None)


WORKLOADS: dict[str, Callable[[], dict[str, Any]]] = {
    "bench": _bench,
    "convert-tpuserve": lambda: _convert("tpuserve"),
    "convert-inference-checkpoint": lambda: _convert("inference-checkpoint"),
    "mirror": _mirror,
    "server": lambda: _server(SETTINGS),
}
RESTRICTED = ("bench", "convert-tpuserve", "mirror")
# The documented exception (docs/security.md): Google's images run as root.
ROOT_IMAGES = ("convert-inference-checkpoint", "server")


def _pod(child: dict[str, Any]) -> dict[str, Any]:
    template = child["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{child['metadata']['name']}-pod", "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }


@contextmanager
def _namespace_at(kube_cluster: Any, level: str) -> Iterator[str]:
    name = f"psa-{level}-{uuid.uuid4().hex[:6]}"
    kube_cluster.kubectl("create", "namespace", name)
    try:
        for mode in ("enforce", "warn"):
            kube_cluster.kubectl("label", "namespace", name, f"pod-security.kubernetes.io/{mode}={level}")
        # The pods name the workload ServiceAccount; the ServiceAccount admission plugin wants it to exist.
        kube_cluster.kubectl("create", "serviceaccount", SERVICE_ACCOUNT, "-n", name)
        yield name
    finally:
        kube_cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


def _create(kube_cluster: Any, namespace: str, pod: dict[str, Any]) -> Any:
    return kube_cluster.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-f", "-", check=False, input=yaml.safe_dump(pod)
    )


@pytest.fixture(scope="module")
def restricted_namespace(kube_cluster: Any) -> Iterator[str]:
    with _namespace_at(kube_cluster, "restricted") as name:
        yield name


@pytest.fixture(scope="module")
def baseline_namespace(kube_cluster: Any) -> Iterator[str]:
    with _namespace_at(kube_cluster, "baseline") as name:
        yield name


@pytest.mark.parametrize("workload", RESTRICTED)
def test_workload_pod_admitted_under_restricted(kube_cluster: Any, restricted_namespace: str, workload: str) -> None:
    result = _create(kube_cluster, restricted_namespace, _pod(WORKLOADS[workload]()))
    assert result.returncode == 0, result.stderr
    assert "PodSecurity" not in result.stderr, result.stderr  # not even a warning


@pytest.mark.parametrize("workload", ROOT_IMAGES)
def test_root_image_pod_misses_restricted_only_for_run_as_non_root(
    kube_cluster: Any, restricted_namespace: str, baseline_namespace: str, workload: str
) -> None:
    pod = _pod(WORKLOADS[workload]())
    refused = _create(kube_cluster, restricted_namespace, pod)
    assert refused.returncode != 0
    # The API server lists every violated rule after the level, separated by "; ": here exactly one.
    assert 'violates PodSecurity "restricted:latest": runAsNonRoot != true (' in refused.stderr, refused.stderr
    assert "; " not in refused.stderr.split('violates PodSecurity "restricted:latest": ', 1)[1], refused.stderr
    admitted = _create(kube_cluster, baseline_namespace, pod)
    assert admitted.returncode == 0, admitted.stderr
    assert "PodSecurity" not in admitted.stderr, admitted.stderr


def test_privileged_server_only_when_the_setting_asks(kube_cluster: Any, baseline_namespace: str) -> None:
    """With `server_privileged` (GKE before 1.28) even "baseline" refuses the server pod: the check above is what
    keeps the default unprivileged."""
    settings = SETTINGS.model_copy(update={"server_privileged": True})
    refused = _create(kube_cluster, baseline_namespace, _pod(_server(settings)))
    assert refused.returncode != 0
    assert 'violates PodSecurity "baseline:latest": privileged (container "jetstream"' in refused.stderr, refused.stderr


def test_secret_valued_server_arg_is_accepted_by_the_api_server(kube_cluster: Any, namespace: str) -> None:
    """engine.extraArgsFrom renders as env valueFrom.secretKeyRef + `$(VAR)` in args: the API server takes the
    Deployment, and the stored pod template keeps the reference, not a value."""
    spec = InferenceServerSpec.model_validate(
        {
            "checkpointPath": CHECKPOINT,
            "tpu": {"accelerator": "v5e", "topology": "2x4"},
            "engine": {"extraArgsFrom": {"hf_access_token": {"secretKeyRef": {"name": "hf", "key": "token"}}}},
        }
    )
    deployment = render.render_deployment(spec, {**OWNER, "namespace": namespace}, SETTINGS, CHECKPOINT)
    deployment["metadata"].pop("ownerReferences")  # no owner object in this namespace
    result = kube_cluster.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-o", "json", "-f", "-", input=json.dumps(deployment)
    )
    stored = json.loads(result.stdout)["spec"]["template"]["spec"]["containers"][0]
    assert "hf_access_token=$(TPUSERVE_ARG_HF_ACCESS_TOKEN)" in stored["args"]
    assert stored["env"] == [
        {"name": "TPUSERVE_ARG_HF_ACCESS_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}
    ]


@pytest.mark.usefixtures("crds")
def test_server_refused_by_pod_security_says_why_in_its_status(
    kube_cluster: Any, namespace: str, tmp_path: Path
) -> None:
    """The documented exception, as a user meets it: an InferenceServer in a namespace that enforces "restricted"
    gets its Deployment, the API server refuses the pods, and the status carries the API server's reason."""
    kube_cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    operator = OperatorProcess(kube_cluster.kubeconfig, tmp_path / "operator.log", {"TPUSERVE_CHECK_GCS": "false"})
    operator.start()
    try:
        objects = Objects(kube_cluster.kubectl)
        objects.apply(namespace, server("srv", path="gs://bkt/ckpt/0/items"))

        def refused() -> dict[str, Any] | None:
            status = objects.status("InferenceServer", namespace, "srv")
            return status if "violates PodSecurity" in (status.get("message") or "") else None

        status = wait_for(refused, timeout=60, interval=0.5, description="the refusal in the server's status")
    finally:
        operator.stop()
    assert status["phase"] == "Deploying"
    assert 'violates PodSecurity "restricted:latest": runAsNonRoot != true' in status["message"]
    assert "docs/security.md" in status["message"]
    available = condition(status, "Available")
    assert available["status"] == "False"
    assert available["reason"] == "PodsRefused"
