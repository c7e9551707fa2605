"""The chart's admission policy (docs/security.md) on the local test cluster's real API server: listed images and
ServiceAccounts are admitted, others refused with a message naming the field, metadata updates of an object
admitted earlier still work, and with the chart's defaults there is no policy at all.

The binding is limited to the test's namespace (admissionPolicy.namespaceSelector), so other tests sharing the
session cluster are not affected; the cluster-scoped policy objects are deleted afterwards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from localcluster.wait import wait_crds_established, wait_for
from tests.api.cases import base_benchmark, base_checkpoint, base_server
from tests.chart.cluster_helpers import Cluster
from tpuserve import images
from tpuserve.api import KINDS
from tpuserve.api.generate import crd_name
from tpuserve_dev import REPO
from tpuserve_dev.chart.tools import render_objects

pytestmark = pytest.mark.cluster

POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
ALLOWED_PREFIX = "registry.example/allowed/"
ALLOWED_EXACT = images.BENCH_IMAGE
ALLOWED_ACCOUNT = "llama-gcs"
REFUSED = "docker.io/someone/miner:1"


def _apply_crds(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    wait_crds_established(cluster.kubectl, *(f"crd/{crd_name(kind)}" for kind in KINDS))


def _create(cluster: Cluster, namespace: str, obj: dict[str, Any], *, dry_run: bool = True) -> Any:
    args = ["create", "-n", namespace, "-f", "-"]
    if dry_run:
        args.insert(1, "--dry-run=server")
    return cluster.kubectl(*args, check=False, input=json.dumps(obj))


def _with(obj: dict[str, Any], **spec: Any) -> dict[str, Any]:
    for dotted, value in spec.items():
        node = obj["spec"]
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return obj


def test_api_server_serves_validating_admission_policy_v1(kube_cluster: Cluster) -> None:
    """admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy is GA from Kubernetes 1.30 (the chart's floor)."""
    version = json.loads(kube_cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert (int(version["major"]), int(version["minor"].rstrip("+"))) >= (1, 30), version
    resources = kube_cluster.kubectl("api-resources", "--api-group=admissionregistration.k8s.io", "-o", "wide").stdout
    rows = {line.split()[0]: line.split() for line in resources.splitlines()[1:]}
    assert "admissionregistration.k8s.io/v1" in rows["validatingadmissionpolicies"]
    assert "admissionregistration.k8s.io/v1" in rows["validatingadmissionpolicybindings"]


def test_policy_is_off_by_default(kube_cluster: Cluster, namespace: str) -> None:
    assert not [o for o in render_objects() if o["kind"] in POLICY_KINDS]
    _apply_crds(kube_cluster)
    for obj in (
        _with(base_server(), image=REFUSED, httpImage=REFUSED, serviceAccountName="anything"),
        _with(base_benchmark(), image=REFUSED),
        _with(base_checkpoint(), converter__image=REFUSED, converter__serviceAccountName="anything"),
    ):
        result = _create(kube_cluster, namespace, obj)
        assert result.returncode == 0, result.stderr


EARLIER = "earlier"  # an InferenceServer with a refused image, created before the policy


@pytest.fixture
def policy(kube_cluster: Cluster, namespace: str) -> Iterator[list[dict[str, Any]]]:
    """The chart's policy objects (enabled, bound to the test namespace only), applied; deleted afterwards. The
    InferenceServer EARLIER is created in the namespace just before."""
    _apply_crds(kube_cluster)
    earlier = _create(kube_cluster, namespace, _with(base_server(EARLIER), image=REFUSED), dry_run=False)
    assert earlier.returncode == 0, earlier.stderr
    release = f"t{uuid.uuid4().hex[:6]}"
    values = {
        "admissionPolicy.enabled": True,
        "admissionPolicy.allowedImages": [ALLOWED_PREFIX, ALLOWED_EXACT],
        "admissionPolicy.allowedServiceAccounts": [ALLOWED_ACCOUNT],
        "admissionPolicy.namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
    }
    objects = [o for o in render_objects(values, release=release) if o["kind"] in POLICY_KINDS]
    assert sorted(o["kind"] for o in objects) == sorted(POLICY_KINDS * 3)
    manifest = yaml.safe_dump_all(objects)
    kube_cluster.kubectl("apply", "-f", "-", input=manifest)
    try:
        yield objects
    finally:
        kube_cluster.kubectl("delete", "--ignore-not-found", "-f", "-", input=manifest, check=False)


@pytest.mark.usefixtures("policy")
def test_policy_admits_listed_images_and_accounts_and_refuses_others(kube_cluster: Cluster, namespace: str) -> None:
    # The API server loads new policies asynchronously: wait until it refuses what it must.
    def refusing() -> bool:
        return bool(_create(kube_cluster, namespace, _with(base_benchmark(), image=REFUSED)).returncode != 0)

    wait_for(refusing, timeout=60, interval=1, description="the admission policy to take effect")

    admitted = [
        base_server(),  # no image, no ServiceAccount: the operator's defaults
        _with(base_server(), image=ALLOWED_PREFIX + "maxengine-server:v1", httpImage=ALLOWED_PREFIX + "http:v1"),
        _with(base_server(), serviceAccountName=ALLOWED_ACCOUNT),
        _with(base_benchmark(), image=ALLOWED_EXACT, serviceAccountName=ALLOWED_ACCOUNT),
        _with(base_checkpoint(), converter__image=ALLOWED_PREFIX + "converter:1"),
        _with(base_checkpoint(), converter__serviceAccountName=ALLOWED_ACCOUNT),
    ]
    for obj in admitted:
        result = _create(kube_cluster, namespace, obj)
        assert result.returncode == 0, (obj["spec"], result.stderr)

    allowed = f"which allows only {ALLOWED_PREFIX}, {ALLOWED_EXACT} (an entry ending in / allows every image under it)"
    refused = [
        (_with(base_server(), image=REFUSED), f"spec.image: image {REFUSED} is not allowed"),
        # A prefix ends at its slash; an exact entry allows nothing else.
        (_with(base_server(), httpImage="registry.example/allowed-other/x:1"), "spec.httpImage: image registry"),
        (_with(base_benchmark(), image="ghcr.io/tpuserve/bench:0.2.0"), "spec.image: image ghcr.io/tpuserve/bench"),
        (_with(base_checkpoint(), converter__image=REFUSED), f"spec.converter.image: image {REFUSED} is not"),
        (
            _with(base_server(), serviceAccountName="default"),
            "spec.serviceAccountName: ServiceAccount default is not allowed by the cluster's tpuserve admission "
            f"policy, which allows only {ALLOWED_ACCOUNT}",
        ),
        (
            _with(base_checkpoint(), converter__serviceAccountName="cluster-admin-sa"),
            "spec.converter.serviceAccountName: ServiceAccount cluster-admin-sa is not allowed",
        ),
    ]
    for obj, message in refused:
        result = _create(kube_cluster, namespace, obj)
        assert result.returncode != 0, f"admitted: {obj['spec']}"
        assert message in result.stderr, result.stderr
        assert "ValidatingAdmissionPolicy" in result.stderr, result.stderr
    image_refusal = _create(kube_cluster, namespace, _with(base_server(), image=REFUSED)).stderr
    assert allowed in image_refusal, image_refusal

    # The object admitted before the policy: metadata changes pass (the operator's finalizer and annotations,
    # deletion), a spec change is judged.
    kube_cluster.kubectl("annotate", "-n", namespace, "inferenceserver", EARLIER, "team=serving")
    changed = kube_cluster.kubectl(
        "patch",
        "-n",
        namespace,
        "inferenceserver",
        EARLIER,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"replicas": 2}}),
        check=False,
    )
    assert changed.returncode != 0, changed.stderr
    assert f"spec.image: image {REFUSED}" in changed.stderr, changed.stderr


@pytest.mark.usefixtures("namespace")
def test_policy_expressions_type_check_against_the_crds(kube_cluster: Cluster, policy: list[dict[str, Any]]) -> None:
    """The API server type-checks each policy's CEL against the matched kind's schema and reports problems in
    status.typeChecking: none (one policy per kind, so no expression reads a field another kind lacks)."""
    names = [o["metadata"]["name"] for o in policy if o["kind"] == "ValidatingAdmissionPolicy"]

    def checked() -> list[dict[str, Any]] | None:
        statuses = []
        for name in names:
            obj = json.loads(kube_cluster.kubectl("get", "validatingadmissionpolicy", name, "-o", "json").stdout)
            if obj.get("status", {}).get("observedGeneration") != obj["metadata"]["generation"]:
                return None
            statuses.append(obj["status"])
        return statuses

    statuses = wait_for(checked, timeout=60, interval=1, description="the policies' type checking")
    for status in statuses:
        assert not status.get("typeChecking", {}).get("expressionWarnings"), status
