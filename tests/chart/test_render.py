"""The chart without a cluster: helm lint, rendering of default and non-default values, Kubernetes schema
validity of every built-in object, the security and RBAC shape, and values.schema.json's rejections."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.chart.variants import VARIANTS
from tpuserve import images
from tpuserve_dev.chart.tools import CHART, KUBE_VERSION, helm, render, render_objects

BUILTIN_GROUPS = (
    "v1",
    "apps/v1",
    "rbac.authorization.k8s.io/v1",
    "batch/v1",
    "apiextensions.k8s.io/v1",
    "admissionregistration.k8s.io/v1",
)


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def the(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def operator_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    container = the(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_helm_lint_strict(variant: str, tmp_path: Any) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(_nest(VARIANTS[variant])))
    result = helm("lint", "--strict", str(CHART), "--values", str(values), "--kube-version", KUBE_VERSION, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_builtin_objects_valid_against_kubernetes_schemas(variant: str) -> None:
    objects = render_objects(VARIANTS[variant], include_crds=True)
    checked = 0
    for obj in objects:
        if obj["apiVersion"] not in BUILTIN_GROUPS:
            continue
        # strict: unknown fields are errors too (a misspelt key would otherwise be dropped by the API server).
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        checked += 1
    assert checked >= 5


def test_default_render_has_the_operator_shape() -> None:
    objects = render_objects()
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "ServiceAccount",
        "ServiceAccount",
    ]
    deployment = the(objects, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert container["args"] == ["operator", "--standalone"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["TPUSERVE_NAMESPACES"] == "[]"  # cluster-wide
    assert env["TPUSERVE_LIVENESS"] == "http://0.0.0.0:8080/healthz"
    assert container["image"] == images.OPERATOR_IMAGE
    assert pod["serviceAccountName"] == "tpuserve"
    # The metrics Service selects exactly the operator pod.
    service = the(objects, "Service")
    labels = spec["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert spec["selector"]["matchLabels"] == service["spec"]["selector"]


def test_namespaced_install_grants_nothing_cluster_wide() -> None:
    objects = render_objects(VARIANTS["namespaced"], namespace="tpuserve-system")
    assert not by_kind(objects, "ClusterRole")
    assert not by_kind(objects, "ClusterRoleBinding")
    roles = by_kind(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["llm-bench", "llm-prod"]
    for binding in by_kind(objects, "RoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tpuserve", "namespace": "tpuserve-system"}]
    env = {
        e["name"]: e["value"] for e in the(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert json.loads(env["TPUSERVE_NAMESPACES"]) == ["llm-bench", "llm-prod"]
    workload_sas = [o for o in by_kind(objects, "ServiceAccount") if o["metadata"]["name"] == "tpuserve-workloads"]
    assert sorted(o["metadata"]["namespace"] for o in workload_sas) == ["llm-bench", "llm-prod"]
    for sa in workload_sas:
        assert sa["metadata"]["annotations"] == {
            "iam.gke.io/gcp-service-account": "llama-gcs@my-project.iam.gserviceaccount.com"
        }


def test_namespaced_default_is_the_release_namespace() -> None:
    objects = render_objects({"scope": "namespaced"}, namespace="ops")
    assert [r["metadata"]["namespace"] for r in by_kind(objects, "Role")] == ["ops"]
    env = {
        e["name"]: e["value"] for e in the(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert json.loads(env["TPUSERVE_NAMESPACES"]) == ["ops"]


def test_workload_identity_annotations_and_monitors() -> None:
    objects = render_objects(VARIANTS["monitors-and-workload-identity"])
    sas = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in by_kind(objects, "ServiceAccount")}
    assert sas[("tpuserve-system", "tpuserve")]["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "tpuserve-operator@my-project.iam.gserviceaccount.com"
    }
    for ns in ("tpuserve-system", "team-a"):
        assert sas[(ns, "tpuserve-workloads")]["metadata"]["annotations"] == {
            "iam.gke.io/gcp-service-account": "llama-gcs@my-project.iam.gserviceaccount.com"
        }
    monitor = the(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "honorLabels": True}
    ]
    podmon = the(objects, "PodMonitoring")
    assert podmon["spec"]["endpoints"][0]["port"] == "metrics"
    rules = the(objects, "ClusterRole")["rules"]
    groups = {g for rule in rules for g in rule["apiGroups"]}
    assert {"monitoring.googleapis.com", "monitoring.coreos.com"} <= groups
    dashboards = the(objects, "ConfigMap")
    assert dashboards["metadata"]["namespace"] == "monitoring"


def test_rbac_has_no_wildcards_and_no_secrets() -> None:
    for variant in VARIANTS.values():
        for obj in render_objects(variant):
            if obj["kind"] not in ("Role", "ClusterRole"):
                continue
            for rule in obj["rules"]:
                for key in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[key], (obj["kind"], rule)
                assert not {"secrets", "configmaps", "serviceaccounts/token"} & set(rule["resources"]), rule
                assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"]), rule


def test_rbac_rules_are_exactly_the_operator_needs() -> None:
    """The rule set written out, so that any widening shows up in review as a change to this test."""
    rules = the(render_objects(), "ClusterRole")["rules"]
    granted = {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    crs = ("llamacheckpoints", "inferenceservers", "benchmarkruns")
    want = {("tpuserve.dev", r, v) for r in crs for v in ("get", "list", "watch", "patch")}
    want |= {("tpuserve.dev", f"{r}/status", "patch") for r in crs}
    want |= {("tpuserve.dev", f"{r}/finalizers", "update") for r in crs}
    for group, resource in (("batch", "jobs"), ("apps", "deployments")):
        want |= {(group, resource, v) for v in ("get", "list", "watch", "create", "patch")}
    want |= {("", "services", v) for v in ("get", "create", "patch")}  # never listed or watched
    want.add(("batch", "jobs", "delete"))
    want |= {("", "pods", v) for v in ("list", "watch")}  # by label; no single-pod get
    want.add(("", "events", "create"))
    want |= {("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("list", "watch")}
    assert granted == want


def test_operator_env_carries_images_and_prices() -> None:
    objects = render_objects(VARIANTS["customized"])
    container = the(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TPUSERVE_SERVER_IMAGE"] == "europe-docker.pkg.dev/p/mirror/maxengine-server:v0.2.2"
    assert json.loads(env["TPUSERVE_TPU_PRICES"])["v5e"] == 0.84
    assert env["TPUSERVE_EXAMPLE"] == "1"
    assert container["image"] == "ghcr.io/tpuserve/operator@sha256:" + "ab" * 32
    assert container["args"][-1] == "--verbose"
    assert the(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "existing-operator-sa"
    assert not by_kind(objects, "ServiceAccount")
    assert not by_kind(objects, "ConfigMap")
    assert not by_kind(objects, "Service")


def test_dashboards_configmap_has_the_sidecar_label_and_every_dashboard() -> None:
    configmap = the(render_objects(), "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    files = sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
    assert sorted(configmap["data"]) == files
    assert files
    for name, text in configmap["data"].items():
        dashboard = json.loads(text)
        assert dashboard["uid"], name
        assert dashboard["panels"], name


# Each bad value and the message helm prints (values.schema.json or a template `fail`).
BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"scope": "everywhere"}, "at '/scope': value must be one of 'cluster', 'namespaced'"),
    ({"watchNamespaces": ["Not_A_Namespace"]}, "at '/watchNamespaces/0'"),
    ({"unknownKey": 1}, "additional properties 'unknownKey' not allowed"),
    ({"workloads.images.typo": "x"}, "additional properties 'typo' not allowed"),
    ({"tpuPrices.v5e": 0}, "at '/tpuPrices/v5e'"),
    ({"tpuPrices.v7": 1.0}, "additional properties 'v7' not allowed"),
    ({"tpuPrices.v4": "cheap"}, "at '/tpuPrices/v4'"),
    ({"serviceAccount.gcpServiceAccount": "not-an-email"}, "at '/serviceAccount/gcpServiceAccount'"),
    ({"workloads.serviceAccount.gcpServiceAccount": "a@b.com"}, "at '/workloads/serviceAccount/gcpServiceAccount'"),
    ({"image.pullPolicy": "Sometimes"}, "value must be one of 'Always', 'IfNotPresent', 'Never'"),
    ({"image.digest": "sha256:short"}, "at '/image/digest'"),
    ({"metrics.port": 70000}, "at '/metrics/port'"),
    ({"metrics.serviceMonitor.interval": "soon"}, "at '/metrics/serviceMonitor/interval'"),
    ({"workloads.converter.backoffLimit": -1}, "at '/workloads/converter/backoffLimit'"),
    ({"tolerations": [{"operator": "Maybe"}]}, "at '/tolerations/0/operator'"),
    ({"gcs.project": "My Project"}, "at '/gcs/project'"),
    ({"resources.requests.memory": "lots"}, "at '/resources/requests/memory'"),
    ({"workloads.images.benchmark": ""}, "at '/workloads/images/benchmark'"),
    ({"watchNamespaces": ["a"]}, "watchNamespaces is only used with scope: namespaced"),
    (
        {"metrics.serviceMonitor.enabled": True, "metrics.service.enabled": False},
        "metrics.serviceMonitor.enabled needs metrics.service.enabled",
    ),
    ({"metrics.port": 8080}, "metrics.port and livenessProbe.port must differ"),
    ({"serviceAccount.create": False}, "serviceAccount.name is required when serviceAccount.create is false"),
    ({"workloads.server.privileged": "yes"}, "at '/workloads/server/privileged'"),
    ({"admissionPolicy.allowedImages": ["Not An Image"]}, "at '/admissionPolicy/allowedImages/0'"),
    ({"admissionPolicy.allowedServiceAccounts": ["Bad_Name"]}, "at '/admissionPolicy/allowedServiceAccounts/0'"),
    ({"admissionPolicy.validationActions": ["Deny", "Warn"]}, "at '/admissionPolicy/validationActions'"),
    ({"admissionPolicy.validationActions": ["Block"]}, "at '/admissionPolicy/validationActions/0'"),
    ({"admissionPolicy.namespaceSelector": {"matchNames": ["a"]}}, "additional properties 'matchNames' not allowed"),
]


@pytest.mark.parametrize(("values", "message"), BAD_VALUES, ids=[json.dumps(v) for v, _ in BAD_VALUES])
def test_bad_values_are_rejected_with_a_clear_message(values: dict[str, Any], message: str) -> None:
    result = render(values, check=False)
    assert result.returncode != 0, f"accepted {values}"
    assert message in result.stderr, result.stderr


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def test_helm_package_holds_the_chart_and_nothing_else(tmp_path: Path) -> None:
    helm("package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("tpuserve-*.tgz")
    with tarfile.open(archive) as tar:
        names = sorted(n.removeprefix("tpuserve/") for n in tar.getnames())
    assert "values.schema.json" in names
    assert "templates/NOTES.txt" in names
    assert {f"crds/{p.name}" for p in (CHART / "crds").glob("*.yaml")} <= set(names)
    assert {f"dashboards/{p.name}" for p in (CHART / "dashboards").glob("*.json")} <= set(names)
    assert not [n for n in names if n.endswith((".py", ".pyc", "~"))]


def test_admission_policy_renders_one_policy_and_binding_per_kind() -> None:
    objects = render_objects(VARIANTS["customized"])
    policies = {p["metadata"]["name"]: p for p in by_kind(objects, "ValidatingAdmissionPolicy")}
    bindings = by_kind(objects, "ValidatingAdmissionPolicyBinding")
    assert sorted(policies) == [f"tpu-op-{k}" for k in ("benchmarkruns", "inferenceservers", "llamacheckpoints")]
    assert sorted(b["spec"]["policyName"] for b in bindings) == sorted(policies)
    for binding in bindings:
        assert binding["spec"]["validationActions"] == ["Deny"]
        assert binding["spec"]["matchResources"]["namespaceSelector"] == {"matchLabels": {"team": "ml"}}
    server = policies["tpu-op-inferenceservers"]["spec"]
    assert server["matchConstraints"]["resourceRules"][0]["resources"] == ["inferenceservers"]
    checked = " ".join(v["expression"] for v in server["validations"])
    for field in ("object.spec.image", "object.spec.httpImage", "object.spec.serviceAccountName"):
        assert f"has({field})" in checked
    variables = {v["name"]: v["expression"] for v in server["variables"]}
    assert json.loads(variables["allowedImages"]) == ["europe-docker.pkg.dev/p/mirror/", images.BENCH_IMAGE]
    assert json.loads(variables["allowedServiceAccounts"]) == ["llama-gcs"]
    checkpoint = " ".join(v["expression"] for v in policies["tpu-op-llamacheckpoints"]["spec"]["validations"])
    assert "has(object.spec.converter) && has(object.spec.converter.image)" in checkpoint
    env = operator_env(objects)
    assert env["TPUSERVE_SERVER_PRIVILEGED"] == "true"
    assert operator_env(render_objects())["TPUSERVE_SERVER_PRIVILEGED"] == "false"
