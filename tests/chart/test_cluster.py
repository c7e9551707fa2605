"""The chart against the local test cluster's real API server: every rendered object accepted server-side, a
real `helm install` / upgrade / uninstall, and the installed RBAC allowing what the operator does and no more."""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster.wait import wait_crds_established
from tests.chart.cluster_helpers import (
    Cluster,
    can_i,
    cluster_helm,
    helm_install,
    monitoring_crds_installed,
    namespaces,
    render_with,
)
from tpuserve.api import KINDS
from tpuserve_dev import REPO

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CRS = tuple(kind.PLURAL for kind in KINDS)
# What the operator does through the API (kopf + the controllers), as (verb, resource) pairs.
OPERATOR_DOES: list[tuple[str, str]] = [
    *((verb, f"{cr}.tpuserve.dev") for cr in CRS for verb in ("get", "list", "watch", "patch")),
    *(("patch", f"{cr}.tpuserve.dev/status") for cr in CRS),
    *(("update", f"{cr}.tpuserve.dev/finalizers") for cr in CRS),
    *((verb, "jobs.batch") for verb in ("get", "list", "watch", "create", "patch", "delete")),
    *((verb, "deployments.apps") for verb in ("get", "list", "watch", "create", "patch")),
    *((verb, "services") for verb in ("get", "create", "patch")),
    *((verb, "pods") for verb in ("list", "watch")),
    ("create", "events"),
]
# What it must not be able to do.
FORBIDDEN: list[tuple[str, str]] = [
    *((verb, "secrets") for verb in ("get", "list", "watch", "create")),
    *((verb, "configmaps") for verb in ("get", "list", "create")),
    ("create", "pods"),
    ("delete", "pods"),
    ("create", "pods/exec"),
    ("patch", "events"),
    ("delete", "services"),
    ("list", "services"),
    ("get", "pods"),
    ("delete", "deployments.apps"),
    ("update", "deployments.apps"),
    ("delete", "llamacheckpoints.tpuserve.dev"),
    ("update", "benchmarkruns.tpuserve.dev/status"),
    ("patch", "pods/status"),
    ("create", "inferenceservers.tpuserve.dev"),
    ("create", "serviceaccounts/token"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "podmonitorings.monitoring.googleapis.com"),
    ("create", "servicemonitors.monitoring.coreos.com"),
]


def _apply_crds(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    names = [f"crd/{cr}.tpuserve.dev" for cr in CRS]
    wait_crds_established(cluster.kubectl, *names)


def _split(manifests: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    docs = [d for d in yaml.safe_load_all(manifests) if d]
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    return crds, [d for d in docs if d["kind"] != "CustomResourceDefinition"]


def _short() -> str:
    return uuid.uuid4().hex[:6]


def _variants() -> dict[str, tuple[dict[str, Any], list[str]]]:
    """The non-default value sets of tests/chart/variants.py with namespaces made unique for this test run:
    name -> (values, extra namespaces that must exist)."""
    s = _short()
    return {
        "default": ({}, []),
        "namespaced": (
            {
                "scope": "namespaced",
                "watchNamespaces": [f"bench-{s}", f"prod-{s}"],
                "workloads.serviceAccount.gcpServiceAccount": "llama-gcs@my-project.iam.gserviceaccount.com",
            },
            [f"bench-{s}", f"prod-{s}"],
        ),
        "monitors-and-workload-identity": (
            {
                "serviceAccount.gcpServiceAccount": "tpuserve-operator@my-project.iam.gserviceaccount.com",
                "workloads.serviceAccount.gcpServiceAccount": "llama-gcs@my-project.iam.gserviceaccount.com",
                "workloads.serviceAccount.namespaces": [f"team-{s}"],
                "workloads.monitoring.podMonitoring": True,
                "workloads.monitoring.serviceMonitor": True,
                "metrics.serviceMonitor.enabled": True,
                "metrics.podMonitoring.enabled": True,
                "dashboards.namespace": f"monitoring-{s}",
            },
            [f"team-{s}", f"monitoring-{s}"],
        ),
    }


@pytest.mark.parametrize("variant", ["default", "namespaced", "monitors-and-workload-identity"])
def test_api_server_accepts_every_rendered_object(kube_cluster: Cluster, namespace: str, variant: str) -> None:
    values, extra = _variants()[variant]
    release = f"t{_short()}"
    crds, objects = _split(render_with(values, release, namespace))
    assert {c["metadata"]["name"] for c in crds} == {f"{cr}.tpuserve.dev" for cr in CRS}
    _apply_crds(kube_cluster)
    monitoring = (
        monitoring_crds_installed(kube_cluster) if variant == "monitors-and-workload-identity" else nullcontext()
    )
    with monitoring, namespaces(kube_cluster, *extra):
        # CRDs first (above), then everything in one server-side dry run: admission, schema, RBAC escalation checks.
        result = kube_cluster.kubectl(
            "apply",
            "--dry-run=server",
            "-f",
            "-",
            input=yaml.safe_dump_all(objects),
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("(server dry run)") == len(objects)


def test_helm_install_upgrade_uninstall(kube_cluster: Cluster, namespace: str) -> None:
    release = f"t{_short()}"
    _apply_crds(kube_cluster)
    installed = helm_install(kube_cluster, release, namespace)
    assert "STATUS: deployed" in installed.stdout
    # NOTES.txt tells the user what to do next.
    assert "manifests/examples/llama2-7b-v5e/" in installed.stdout
    assert "helm show crds" in installed.stdout
    # The default images are nobody's: NOTES.txt says which values to set.
    assert "nobody publishes ghcr.io/tpuserve/* images" in installed.stdout
    assert "workloads.images.converter, workloads.images.benchmark" in installed.stdout
    fullname = f"{release}-tpuserve"
    deployment = kube_cluster.kubectl("get", "deployment", fullname, "-n", namespace, "-o", "yaml").stdout
    assert yaml.safe_load(deployment)["spec"]["strategy"]["type"] == "Recreate"
    kube_cluster.kubectl("get", "clusterrole", fullname)
    kube_cluster.kubectl("get", "serviceaccount", "tpuserve-workloads", "-n", namespace)
    kube_cluster.kubectl("get", "configmap", f"{fullname}-dashboards", "-n", namespace)

    upgraded = cluster_helm(
        kube_cluster,
        "upgrade",
        release,
        str(REPO / "charts" / "tpuserve"),
        "--namespace",
        namespace,
        values={"tpuPrices.v5e": 0.84},
    )
    assert "STATUS: deployed" in upgraded.stdout
    env = yaml.safe_load(kube_cluster.kubectl("get", "deployment", fullname, "-n", namespace, "-o", "yaml").stdout)[
        "spec"
    ]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "TPUSERVE_TPU_PRICES", "value": '{"v4":3.22,"v5e":0.84,"v5p":4.2,"v6e":2.7}'} in env

    cluster_helm(kube_cluster, "uninstall", release, "--namespace", namespace, "--wait")
    assert kube_cluster.kubectl("get", "clusterrole", fullname, check=False).returncode != 0
    # Helm leaves CRDs (and so every LlamaCheckpoint/InferenceServer/BenchmarkRun) in place.
    kube_cluster.kubectl("get", "crd", "benchmarkruns.tpuserve.dev")


def test_rbac_allows_what_the_operator_does_and_no_more(kube_cluster: Cluster, namespace: str) -> None:
    release = f"t{_short()}"
    _apply_crds(kube_cluster)
    helm_install(kube_cluster, release, namespace)
    try:
        # The monitoring kinds must exist for `kubectl auth can-i` to ask about them (else "no" means nothing).
        with monitoring_crds_installed(kube_cluster):
            _check_cluster_rbac(kube_cluster, f"system:serviceaccount:{namespace}:{release}-tpuserve")
    finally:
        cluster_helm(kube_cluster, "uninstall", release, "--namespace", namespace, check=False)


def _check_cluster_rbac(kube_cluster: Cluster, subject: str) -> None:
    elsewhere = "default"  # cluster scope: any namespace
    for verb, resource in OPERATOR_DOES:
        assert can_i(kube_cluster, subject, verb, resource, elsewhere), f"cannot {verb} {resource}"
    for verb, resource in FORBIDDEN:
        assert not can_i(kube_cluster, subject, verb, resource, elsewhere), f"can {verb} {resource}"
    # kopf's cluster-wide CRD watch, and nothing else cluster-scoped.
    assert can_i(kube_cluster, subject, "watch", "customresourcedefinitions.apiextensions.k8s.io", None)
    assert not can_i(kube_cluster, subject, "create", "customresourcedefinitions.apiextensions.k8s.io", None)
    assert not can_i(kube_cluster, subject, "list", "namespaces", None)
    assert not can_i(kube_cluster, subject, "list", "nodes", None)


def test_namespaced_rbac_stays_in_its_namespaces(kube_cluster: Cluster, namespace: str) -> None:
    release = f"t{_short()}"
    served, other = f"served-{_short()}", f"other-{_short()}"
    _apply_crds(kube_cluster)
    # kubectl auth can-i resolves the resource through discovery: the PodMonitoring kind must exist to be asked about.
    with monitoring_crds_installed(kube_cluster), namespaces(kube_cluster, served, other):
        helm_install(
            kube_cluster,
            release,
            namespace,
            values={"scope": "namespaced", "watchNamespaces": [served], "workloads.monitoring.podMonitoring": True},
        )
        try:
            subject = f"system:serviceaccount:{namespace}:{release}-tpuserve"
            for verb, resource in OPERATOR_DOES:
                assert can_i(kube_cluster, subject, verb, resource, served), f"cannot {verb} {resource} in {served}"
                assert not can_i(kube_cluster, subject, verb, resource, other), f"can {verb} {resource} in {other}"
            assert can_i(kube_cluster, subject, "create", "podmonitorings.monitoring.googleapis.com", served)
            assert not can_i(kube_cluster, subject, "get", "secrets", served)
            assert not can_i(kube_cluster, subject, "list", "customresourcedefinitions.apiextensions.k8s.io", None)
            kube_cluster.kubectl("get", "serviceaccount", "tpuserve-workloads", "-n", served)
        finally:
            cluster_helm(kube_cluster, "uninstall", release, "--namespace", namespace, check=False)


def test_service_account_token_reaches_the_api_as_the_operator(
    kube_cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """A real request with the chart ServiceAccount's own token (not impersonation): allowed reads work, Secrets
    are refused by the API server."""
    from tests.chart.cluster_helpers import service_account_kubeconfig

    release = f"t{_short()}"
    _apply_crds(kube_cluster)
    helm_install(kube_cluster, release, namespace)
    try:
        config = service_account_kubeconfig(kube_cluster, namespace, f"{release}-tpuserve", tmp_path / "sa.kubeconfig")
        kubectl = str(kube_cluster.bin_dir / "kubectl")
        import subprocess

        def as_sa(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([kubectl, "--kubeconfig", str(config), *args], capture_output=True, text=True)

        # What the operator lists cluster-wide (Services are only read one at a time, so not here).
        ok = as_sa("get", "benchmarkruns,inferenceservers,llamacheckpoints,jobs,deployments,pods", "-A")
        assert ok.returncode == 0, ok.stderr
        denied = as_sa("get", "secrets", "-n", namespace)
        assert denied.returncode != 0
        assert "forbidden" in denied.stderr.lower()
    finally:
        cluster_helm(kube_cluster, "uninstall", release, "--namespace", namespace, check=False)


def test_operator_pod_meets_the_restricted_pod_security_standard(kube_cluster: Cluster) -> None:
    """The API server's PodSecurity admission, set to `restricted` on the namespace, has nothing to say about the
    operator's Deployment (it warns on workload objects whose pods it would reject)."""
    namespace = f"restricted-{_short()}"
    _apply_crds(kube_cluster)
    with namespaces(kube_cluster, namespace):
        for mode in ("enforce", "warn", "audit"):
            kube_cluster.kubectl("label", "namespace", namespace, f"pod-security.kubernetes.io/{mode}=restricted")
        _, objects = _split(render_with({}, f"t{_short()}", namespace))
        deployment = next(o for o in objects if o["kind"] == "Deployment")
        result = kube_cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(deployment))
        assert "PodSecurity" not in result.stderr, result.stderr
        # The same check does catch a violation (so the absence above means something).
        deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
        bad = kube_cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(deployment))
        assert 'would violate PodSecurity "restricted:latest"' in bad.stderr, bad.stderr


def test_install_yaml_applies_in_one_pass(kube_cluster: Cluster) -> None:
    """`kubectl apply --server-side -f manifests/install.yaml` works on a cluster (Namespace and CRDs first)."""
    manifest = (REPO / "manifests" / "install.yaml").read_text()
    docs = [d for d in yaml.safe_load_all(manifest) if d]
    # Another test of this session may already have the CRDs: that is fine, server-side apply shares them.
    applied = kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=manifest)
    try:
        assert applied.stdout.count("serverside-applied") == len(docs)
        kube_cluster.kubectl("get", "deployment", "tpuserve", "-n", "tpuserve-system")
    finally:
        # Remove everything but the CRDs, which other tests of the session use.
        rest = [d for d in docs if d["kind"] not in ("CustomResourceDefinition", "Namespace")]
        kube_cluster.kubectl("delete", "--ignore-not-found", "-f", "-", input=yaml.safe_dump_all(rest), check=False)
        kube_cluster.kubectl("delete", "namespace", "tpuserve-system", "--wait=false", check=False)
