"""Cluster-side helpers for the chart tests: monitoring CRDs, helm against the test cluster, ServiceAccount
kubeconfigs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from localcluster.ports import free_port
from localcluster.wait import wait_crds_established, wait_for
from tpuserve_dev.chart.tools import CHART, KUBE_VERSION, helm, set_args

# The Prometheus Operator's real ServiceMonitor CRD, from its Go module (the newest the module proxy serves).
PROMETHEUS_OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
SERVICEMONITOR_CRD = "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"

# GKE Managed Prometheus' PodMonitoring CRD is not on the Go module proxy: this is a hand-written subset with the
# fields the chart and the operator use, typed as upstream types them (selector = LabelSelector; endpoints[].port
# int-or-string, path, interval string), and no preserve-unknown-fields, so a misspelt field is still an error.
PODMONITORING_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "podmonitorings.monitoring.googleapis.com"},
    "spec": {
        "group": "monitoring.googleapis.com",
        "names": {
            "kind": "PodMonitoring",
            "listKind": "PodMonitoringList",
            "plural": "podmonitorings",
            "singular": "podmonitoring",
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": {
                                "type": "object",
                                "required": ["endpoints", "selector"],
                                "properties": {
                                    "selector": {
                                        "type": "object",
                                        "properties": {
                                            "matchLabels": {
                                                "type": "object",
                                                "additionalProperties": {"type": "string"},
                                            },
                                            "matchExpressions": {
                                                "type": "array",
                                                "items": {
                                                    "type": "object",
                                                    "required": ["key", "operator"],
                                                    "properties": {
                                                        "key": {"type": "string"},
                                                        "operator": {"type": "string"},
                                                        "values": {"type": "array", "items": {"type": "string"}},
                                                    },
                                                },
                                            },
                                        },
                                    },
                                    "endpoints": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["port"],
                                            "properties": {
                                                "port": {"x-kubernetes-int-or-string": True},
                                                "path": {"type": "string"},
                                                "interval": {"type": "string", "pattern": "^([0-9]+(ms|s|m|h))+$"},
                                                "timeout": {"type": "string"},
                                                "scheme": {"type": "string"},
                                            },
                                        },
                                    },
                                },
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


class Cluster(Protocol):
    """The `kube_cluster` fixture (CONTRACTS item 7)."""

    @property
    def kubeconfig(self) -> Path: ...

    @property
    def bin_dir(self) -> Path: ...

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]: ...


def servicemonitor_crd_path() -> Path:
    """Download (once, into the Go module cache) the Prometheus Operator module and return its ServiceMonitor CRD."""
    with tempfile.TemporaryDirectory() as work:
        out = subprocess.run(
            ["go", "mod", "download", "-json", PROMETHEUS_OPERATOR_MODULE],
            check=True,
            capture_output=True,
            text=True,
            cwd=work,
            env={**os.environ, "GOFLAGS": "-mod=mod"},
        ).stdout
    return Path(json.loads(out)["Dir"]) / SERVICEMONITOR_CRD


MONITORING_CRDS = ("crd/servicemonitors.monitoring.coreos.com", "crd/podmonitorings.monitoring.googleapis.com")


@contextmanager
def monitoring_crds_installed(cluster: Cluster) -> Iterator[None]:
    """The ServiceMonitor and PodMonitoring CRDs for the duration of a test. CRDs are cluster-wide and the session
    cluster is shared, so they are removed afterwards: other tests check how the operator behaves without them."""
    install_monitoring_crds(cluster)
    try:
        yield
    finally:
        cluster.kubectl("delete", "--ignore-not-found", "--wait=true", "--timeout=60s", *MONITORING_CRDS, check=False)


def install_monitoring_crds(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(servicemonitor_crd_path()))
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(PODMONITORING_CRD))
    wait_crds_established(cluster.kubectl, *MONITORING_CRDS)


def cluster_helm(
    cluster: Cluster, *args: str, values: Mapping[str, Any] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return helm(*args, "--kubeconfig", str(cluster.kubeconfig), *set_args(values), check=check)


def helm_install(
    cluster: Cluster, release: str, namespace: str, values: Mapping[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    return cluster_helm(cluster, "install", release, str(CHART), "--namespace", namespace, values=values)


@contextmanager
def namespaces(cluster: Cluster, *names: str) -> Iterator[None]:
    """Extra namespaces for a test (the `namespace` fixture gives one), deleted afterwards."""
    for name in names:
        cluster.kubectl("create", "namespace", name)
    try:
        yield
    finally:
        for name in names:
            cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


def service_account_kubeconfig(cluster: Cluster, namespace: str, name: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount with a bound token (`kubectl create token`)."""
    token = cluster.kubectl("create", "token", name, "-n", namespace, "--duration=2h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    server = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [server],
        "users": [{"name": f"{namespace}-{name}", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": server["name"], "user": f"{namespace}-{name}"}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def can_i(cluster: Cluster, subject: str, verb: str, resource: str, namespace: str | None) -> bool:
    """`kubectl auth can-i` as another user (impersonation by the admin)."""
    # "resource/sub" means a subresource here (kubectl itself reads "resource/name" as an object name).
    resource, _, subresource = resource.partition("/")
    args = ["auth", "can-i", verb, resource, f"--as={subject}"]
    args += [f"--subresource={subresource}"] if subresource else []
    args += ["-n", namespace] if namespace else []
    result = cluster.kubectl(*args, check=False)
    answer = result.stdout.strip()
    if answer not in ("yes", "no"):
        raise AssertionError(f"kubectl auth can-i {verb} {resource}: {result.stdout} {result.stderr}")
    return answer == "yes"


def render_with(values: Mapping[str, Any], release: str, namespace: str) -> str:
    return helm(
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        "--include-crds",
        *set_args(values),
    ).stdout


@dataclass
class OperatorProcess:
    process: subprocess.Popen[bytes]
    log: Path
    metrics: str  # host:port of /metrics
    liveness: str  # URL of the liveness endpoint

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def operator_as_installed(
    cluster: Cluster,
    release: str,
    namespace: str,
    workdir: Path,
    *,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[OperatorProcess]:
    """Run `tpuserve` with the container args and env of the operator Deployment the chart installed, authenticated
    as the chart's ServiceAccount (a bound token from `kubectl create token`), i.e. with exactly the chart's RBAC.
    Only the listen addresses move to loopback on free ports (the chart's are 0.0.0.0 inside a pod)."""
    deployment = json.loads(
        cluster.kubectl("get", "deployment", f"{release}-tpuserve", "-n", namespace, "-o", "json").stdout
    )
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item["value"] for item in container.get("env", [])}
    metrics_port, liveness_port = free_port(), free_port()
    env.update(
        TPUSERVE_METRICS_HOST="127.0.0.1",
        TPUSERVE_METRICS_PORT=str(metrics_port),
        TPUSERVE_LIVENESS=f"http://127.0.0.1:{liveness_port}/healthz",
    )
    env.update(extra_env or {})
    workdir.mkdir(parents=True, exist_ok=True)
    kubeconfig = service_account_kubeconfig(cluster, namespace, pod["serviceAccountName"], workdir / "sa.kubeconfig")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("TPUSERVE_") and k != "KUBECONFIG"}
    tpuserve = Path(sys.executable).with_name("tpuserve")
    log = workdir / "operator.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [str(tpuserve), *container["args"], "--kubeconfig", str(kubeconfig)],
            # KUBECONFIG too: kopf's own login reads the kubernetes library's default location, which that library
            # computes from $KUBECONFIG when it is imported (before `--kubeconfig` is parsed).
            env={**base_env, **env, "KUBECONFIG": str(kubeconfig)},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    running = OperatorProcess(process, log, f"127.0.0.1:{metrics_port}", env["TPUSERVE_LIVENESS"])
    try:

        def live() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the operator exited ({process.returncode}): {running.log_text()[-3000:]}")
            try:
                with urllib.request.urlopen(running.liveness, timeout=2) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, ConnectionError):
                return False

        wait_for(live, timeout=60, interval=0.5, description="the operator's liveness endpoint")
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# The API server's RBAC refusal, as kopf and the kubernetes client log it (quotes possibly backslash-escaped).
_Q = r'\\?"'
_DENIAL = re.compile(
    rf"User {_Q}system:serviceaccount:[^\"\\]+{_Q} cannot (\w+) resource {_Q}([\w/.]+){_Q}"
    rf"(?: in API group {_Q}([\w.]*){_Q})?"
)


def rbac_denials(log: str) -> list[str]:
    """Every distinct RBAC refusal of a ServiceAccount in an operator log ("cannot VERB resource ..."), as
    "verb resource.group" strings."""
    found = {f"{verb} {resource}{'.' + group if group else ''}" for verb, resource, group in _DENIAL.findall(log)}
    return sorted(found)


def audited_requests(audit_log: Path, username: str) -> set[tuple[str, str, str]]:
    """(verb, group, resource[/subresource]) of every request `username` made, from a kube-apiserver JSON audit log
    (level Metadata or higher). Non-resource requests (discovery: /api, /apis, /version) are left out. Every stage
    counts: a watch still open when the log is read has RequestReceived/ResponseStarted but no ResponseComplete."""
    used: set[tuple[str, str, str]] = set()
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef")
        if event.get("user", {}).get("username") != username or not ref:
            continue
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        used.add((event["verb"], ref.get("apiGroup", ""), resource))
    return used


def granted_rules(objects: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(verb, group, resource) of every Role/ClusterRole rule in rendered chart objects."""
    return {
        (verb, group, resource)
        for obj in objects
        if obj["kind"] in ("Role", "ClusterRole")
        for rule in obj["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
