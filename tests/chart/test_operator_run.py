"""The chart's RBAC is sufficient, and its dashboards answer, on a real run.

`helm install` the chart into the local test cluster, then run the operator with the container args and env of
the Deployment the chart installed, authenticated as the chart's ServiceAccount (a bound token, so every request
goes through the chart's RBAC), through a full checkpoint -> server -> benchmark cycle plus one object that
fails. A real Prometheus (Debian's /usr/bin/prometheus) scrapes the operator during the run; afterwards every
PromQL expression of the operator and benchmark dashboards (panels and template variables) must return data.

Real: kube-apiserver, controller-manager, scheduler, RBAC, the operator, the GCS API (emulator), the benchmark
(`tpuserve bench run` as a process on the local node) against JetStream 0.2.2's real server (mock engine),
Prometheus. Simulated (kwok): the TPU node the server pod lands on and the CPU node that runs the conversion Job.
"""

from __future__ import annotations

import json
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster import sim
from localcluster.wait import wait_for
from tests.chart.cluster_helpers import (
    Cluster,
    audited_requests,
    cluster_helm,
    granted_rules,
    helm_install,
    operator_as_installed,
    rbac_denials,
)
from tests.chart.prometheus import running_prometheus, unanswered
from tpuserve.api import KINDS
from tpuserve.controllers import naming
from tpuserve_dev import REPO
from tpuserve_dev.chart import dashboards, dashboards_bench
from tpuserve_dev.chart.tools import render_objects
from tpuserve_dev.operator_harness import convert_summary_json

pytestmark = [pytest.mark.cluster, pytest.mark.jetstream, pytest.mark.slow]

# Dashboards whose data the operator produces (the JetStream one is answered by test_dashboards.py).
OPERATOR_DASHBOARDS = ("tpuserve-benchmarks.json", "tpuserve-compare.json", "tpuserve-operator.json")


def _apply(cluster: Cluster, namespace: str, obj: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(obj))


def _get(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    result = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def _phase(cluster: Cluster, namespace: str, kind: str, name: str) -> str | None:
    obj = _get(cluster, namespace, kind, name)
    return None if obj is None else obj.get("status", {}).get("phase")


BENCH_METRIC = dashboards_bench.BENCH_OUTPUT_TPS
OPERATOR_POD_NAMESPACE = "tpuserve-system"  # what service discovery would put on the scrape target
MIRRORED_SERVER_IMAGE = "europe-docker.pkg.dev/my-project/mirror/maxengine-server:v0.2.2"
V5E_PRICE = 0.84  # $/chip-hour (the catalog's on-demand price is 1.20)

# Grants a successful first run does not exercise, each with the reason it is granted anyway.
GRANTED_BUT_NOT_USED_BY_ONE_RUN = {
    # Checked by the OwnerReferencesPermissionEnforcement admission plugin when a child with blockOwnerDeletion is
    # created (not a request of its own).
    *(("update", kind.GROUP, f"{kind.PLURAL}/finalizers") for kind in KINDS),
    # A conversion Job of an older LlamaCheckpoint generation is deleted and replaced (spec change).
    ("delete", "batch", "jobs"),
    # Reads answer from the operator's watch cache; the resync pass (every 300 s, longer than one run here) and a
    # reconcile after a watch gap read these fresh from the API server.
    *(("get", kind.GROUP, kind.PLURAL) for kind in KINDS),
    ("get", "batch", "jobs"),
    ("get", "apps", "deployments"),
    # kopf removes the finalizer an earlier operator version put on an object, when that object is deleted.
    *(("patch", kind.GROUP, kind.PLURAL) for kind in KINDS),
    # Children are patched when their rendering changes (spec change, operator upgrade).
    ("patch", "batch", "jobs"),
    ("patch", "apps", "deployments"),
    ("patch", "", "services"),
}


def _check_rbac_against_audit_log(cluster: Any, release: str, namespace: str) -> None:
    """With the API server's audit log (when the harness keeps one): every request of the operator was granted,
    and every grant was used or is in GRANTED_BUT_NOT_USED_BY_ONE_RUN -- the RBAC is not wider than needed."""
    audit_log = getattr(cluster, "audit_log", None)
    if audit_log is None:
        warnings.warn("no API audit log from the test cluster: RBAC width checked by can-i only", stacklevel=2)
        return
    role = json.loads(cluster.kubectl("get", "clusterrole", f"{release}-tpuserve", "-o", "json").stdout)
    granted = granted_rules([role])
    used = audited_requests(Path(audit_log), f"system:serviceaccount:{namespace}:{release}-tpuserve")
    assert used, "no request of the operator in the audit log"
    assert used <= granted, f"used but not granted: {sorted(used - granted)}"
    unused = granted - used - GRANTED_BUT_NOT_USED_BY_ONE_RUN
    assert not unused, (
        f"granted but never used (remove, or justify in GRANTED_BUT_NOT_USED_BY_ONE_RUN): {sorted(unused)}"
    )


def test_operator_under_the_chart_service_account_runs_the_cycle_and_every_dashboard_query_answers(
    kube_cluster: Any,
    namespace: str,
    gcs_emulator: str,
    gcs_client: Any,
    gcs_bucket: str,
    jetstream_mock_server: str,
    tmp_path: Path,
) -> None:
    release = f"t{uuid.uuid4().hex[:6]}"
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    # The operator process inherits STORAGE_EMULATOR_HOST from the gcs_emulator fixture; local-node pods get it here.
    kube_cluster.set_local_node_env(STORAGE_EMULATOR_HOST=gcs_emulator)
    placement = sim.local_node_placement()
    helm_install(
        kube_cluster,
        release,
        namespace,
        values={
            # The default install: cluster-wide (ClusterRole). Benchmark Jobs on the local node, where
            # `tpuserve bench run` really runs.
            "workloads.benchmark.nodeSelector": placement["nodeSelector"],
            "workloads.benchmark.tolerations": placement["tolerations"],
            "gcs.project": "tpuserve-test",
            # Non-default image and price, to see the chart's values reach the operator's decisions.
            "workloads.images.server": MIRRORED_SERVER_IMAGE,
            "tpuPrices.v5e": V5E_PRICE,
        },
    )
    try:
        _run_cycle(kube_cluster, release, namespace, gcs_client, gcs_bucket, jetstream_mock_server, tmp_path)
    finally:
        cluster_helm(kube_cluster, "uninstall", release, "--namespace", namespace, check=False)


def _run_cycle(
    cluster: Any,
    release: str,
    namespace: str,
    gcs_client: Any,
    bucket: str,
    jetstream: str,
    tmp_path: Path,
) -> None:
    # A (tiny, non-empty) Meta checkpoint layout in GCS: what the operator's source check looks for.
    for name in ("consolidated.00.pth", "params.json", "tokenizer.model"):
        gcs_client.bucket(bucket).blob(f"meta/{name}").upload_from_string(b"x" * 16)

    # Scrape as the chart's ServiceMonitor makes the Prometheus Operator scrape: service discovery puts the
    # operator pod's namespace on the target, and honorLabels decides whose `namespace` wins.
    monitor = next(o for o in render_objects({"metrics.serviceMonitor.enabled": True}) if o["kind"] == "ServiceMonitor")
    with (
        operator_as_installed(cluster, release, namespace, tmp_path / "operator") as operator,
        running_prometheus(
            {"tpuserve-operator": [operator.metrics]},
            tmp_path / "prometheus",
            target_labels={"namespace": OPERATOR_POD_NAMESPACE, "service": f"{release}-tpuserve-metrics"},
            honor_labels=monitor["spec"]["endpoints"][0].get("honorLabels", False),
        ) as prometheus,
    ):
        prometheus.wait_for_targets_up()
        _apply(
            cluster,
            namespace,
            {
                "apiVersion": "tpuserve.dev/v1alpha1",
                "kind": "LlamaCheckpoint",
                "metadata": {"name": "llama2-7b"},
                "spec": {
                    "model": "llama2-7b",
                    "source": f"gs://{bucket}/meta",
                    "output": f"gs://{bucket}/maxtext",
                    # kwok runs the conversion: exit 0 with the converter's summary.
                    "converter": {
                        "podAnnotations": {
                            sim.TERMINATION_MESSAGE_ANNOTATION: convert_summary_json(f"gs://{bucket}/maxtext")
                        }
                    },
                },
            },
        )
        # One object that fails, so that the failure panels have something to show.
        _apply(
            cluster,
            namespace,
            {
                "apiVersion": "tpuserve.dev/v1alpha1",
                "kind": "LlamaCheckpoint",
                "metadata": {"name": "missing-source"},
                "spec": {"model": "llama2-7b", "source": f"gs://{bucket}/nothing", "output": f"gs://{bucket}/out2"},
            },
        )
        _apply(
            cluster,
            namespace,
            {
                "apiVersion": "tpuserve.dev/v1alpha1",
                "kind": "InferenceServer",
                "metadata": {"name": "llama2-7b-v5e"},
                "spec": {
                    "checkpointRef": {"name": "llama2-7b"},
                    "model": "llama2-7b",
                    "tpu": {"accelerator": "v5e", "topology": "2x4"},
                },
            },
        )
        wait_for(
            lambda: _phase(cluster, namespace, "llamacheckpoints", "missing-source") == "Failed",
            timeout=120,
            interval=1,
            description="the LlamaCheckpoint without a source to fail",
        )
        # The server's Service stands for the real JetStream server (simulated cluster DNS on the local node).
        service_name = naming.server_name("llama2-7b-v5e")
        service = wait_for(
            lambda: _get(cluster, namespace, "services", service_name),
            timeout=300,
            interval=1,
            description="the InferenceServer's Service",
        )
        cluster.kubectl(
            "annotate",
            "service",
            service["metadata"]["name"],
            "-n",
            namespace,
            f"{sim.ADDRESS_ANNOTATION}={jetstream}",
            "--overwrite",
        )
        _apply(
            cluster,
            namespace,
            {
                "apiVersion": "tpuserve.dev/v1alpha1",
                "kind": "BenchmarkRun",
                "metadata": {"name": "synthetic-8"},
                "spec": {
                    "serverRef": {"name": "llama2-7b-v5e"},
                    "dataset": {"name": "synthetic", "synthetic": {"inputLength": 16, "outputLength": 8}},
                    "numPrompts": 8,
                    "maxOutputLength": 8,
                    "requestRate": "inf",
                    "warmup": "none",
                    # Generous SLOs: the mock engine is slow, and goodput must be non-zero to be exported.
                    "slo": {"ttftMs": 600000, "tpotMs": 600000},
                    "timeout": "10m",
                },
            },
        )
        wait_for(
            lambda: _phase(cluster, namespace, "benchmarkruns", "synthetic-8") in ("Succeeded", "Failed"),
            timeout=600,
            interval=2,
            description="the BenchmarkRun to finish",
        )
        run = _get(cluster, namespace, "benchmarkruns", "synthetic-8")
        assert run is not None
        assert run["status"]["phase"] == "Succeeded", json.dumps(run["status"], indent=1)
        assert run["status"]["results"]["successfulRequests"] > 0
        # The chart's values reached the operator: the server runs the image the chart names, and the cost uses
        # the chart's v5e price for the 8 chips of a 2x4 slice at the measured output rate.
        deployment = _get(cluster, namespace, "deployments", naming.server_name("llama2-7b-v5e"))
        assert deployment is not None
        images = [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]
        assert MIRRORED_SERVER_IMAGE in images
        expected_cost = V5E_PRICE * 8 / 3600 / run["status"]["results"]["outputThroughput"] * 1e6
        assert run["status"]["costPerMillionOutputTokens"] == pytest.approx(expected_cost, rel=1e-3)

        # The chart's RBAC was enough: the API server refused nothing the operator asked for.
        assert not rbac_denials(operator.log_text())
        _check_rbac_against_audit_log(cluster, release, namespace)

        # Every operator and benchmark dashboard expression returns data from the scraped operator. Wait for a few
        # scrapes after the run finished (rate() windows need two samples).
        expressions = [e for e in dashboards.all_expressions() if e.dashboard in OPERATOR_DASHBOARDS]
        missing = unanswered(prometheus, expressions, timeout=90, interval=2)
        # The runs are filed under their own namespace (what the dashboards' Namespace filter lists).
        namespaces = {r["metric"].get("namespace") for r in prometheus.query(f"count by (namespace) ({BENCH_METRIC})")}
        assert namespaces == {namespace}, namespaces
        assert not missing, "no data for:\n" + "\n".join(f"{e.dashboard} / {e.panel}: {e.expr}" for e in missing)
        print(f"{len(expressions)} dashboard expressions answered by a real Prometheus scraping the operator")


@pytest.mark.usefixtures("gcs_emulator")
def test_namespaced_install_operator_needs_nothing_cluster_wide(
    kube_cluster: Any, namespace: str, gcs_bucket: str, tmp_path: Path
) -> None:
    """scope=namespaced grants only Roles: the operator, run as installed, handles an object in its namespace
    (status, Event) without a single RBAC denial, kopf's own discovery included."""
    release = f"t{uuid.uuid4().hex[:6]}"
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    helm_install(
        kube_cluster,
        release,
        namespace,
        values={"scope": "namespaced", "watchNamespaces": [namespace], "gcs.project": "tpuserve-test"},
    )
    try:
        with operator_as_installed(kube_cluster, release, namespace, tmp_path / "operator") as operator:
            _apply(
                kube_cluster,
                namespace,
                {
                    "apiVersion": "tpuserve.dev/v1alpha1",
                    "kind": "LlamaCheckpoint",
                    "metadata": {"name": "missing-source"},
                    "spec": {
                        "model": "llama2-7b",
                        "source": f"gs://{gcs_bucket}/nothing",
                        "output": f"gs://{gcs_bucket}/out",
                    },
                },
            )
            wait_for(
                lambda: _phase(kube_cluster, namespace, "llamacheckpoints", "missing-source") == "Failed",
                timeout=120,
                interval=1,
                description="the LlamaCheckpoint without a source to fail",
            )
            events = kube_cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
            assert "SourceNotFound" in events
            time.sleep(5)  # kopf's background discovery retries for a few seconds before it gives up
            assert not rbac_denials(operator.log_text())
    finally:
        cluster_helm(kube_cluster, "uninstall", release, "--namespace", namespace, check=False)
