"""Why the chart grants `update` on <kind>/finalizers: API servers that run the OwnerReferencesPermissionEnforcement
admission plugin (off in the shared test cluster, on in some hardened clusters) refuse a child whose
ownerReference has blockOwnerDeletion -- which the operator's children have -- unless its creator may update the
owner's finalizers. This test starts a second local cluster (localcluster, no node pools) with that plugin on and
creates such a Job as the chart's ServiceAccount: accepted with the chart's ClusterRole, refused without the
finalizers rule. So the rule is needed, and enough."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster.harness import ClusterConfig, LocalCluster
from localcluster.wait import wait_crds_established
from tests.chart.cluster_helpers import helm_install, service_account_kubeconfig
from tpuserve_dev import REPO

# Needs the test cluster's binaries (a cluster of its own, not the shared one).
pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@contextlib.contextmanager
def cluster_enforcing_owner_references(state_dir: Path) -> Iterator[LocalCluster]:
    """A second local cluster (no node pools) whose apiserver runs OwnerReferencesPermissionEnforcement."""
    cluster = LocalCluster(
        state_dir,
        config=ClusterConfig(admission_plugins=("OwnerReferencesPermissionEnforcement",)),
        tied_to_this_process=True,
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _child_job(name: str, owner: dict[str, Any]) -> dict[str, Any]:
    """A Job owned the way the operator owns its children (controller, blockOwnerDeletion)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "ownerReferences": [
                {
                    "apiVersion": owner["apiVersion"],
                    "kind": owner["kind"],
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}},
    }


def test_finalizers_rule_is_needed_and_enough_where_owner_references_are_enforced(tmp_path: Path) -> None:
    with cluster_enforcing_owner_references(tmp_path / "cluster") as server:
        namespace, release = "tpuserve-system", "owners"
        server.kubectl("create", "namespace", namespace)
        server.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        wait_crds_established(server.kubectl, "crd/llamacheckpoints.tpuserve.dev")
        helm_install(server, release, namespace)
        owner = json.loads(
            server.kubectl(
                "create",
                "-n",
                namespace,
                "-o",
                "json",
                "-f",
                "-",
                input=json.dumps(
                    {
                        "apiVersion": "tpuserve.dev/v1alpha1",
                        "kind": "LlamaCheckpoint",
                        "metadata": {"name": "llama2-7b"},
                        "spec": {
                            "model": "llama2-7b",
                            "source": "gs://models-bucket/meta",
                            "output": "gs://models-bucket/maxtext",
                        },
                    }
                ),
            ).stdout
        )
        config = service_account_kubeconfig(server, namespace, f"{release}-tpuserve", tmp_path / "sa.kubeconfig")

        def create_as_operator(job: dict[str, Any]) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(server.bin_dir / "kubectl"), f"--kubeconfig={config}", "create", "-n", namespace, "-f", "-"],
                input=json.dumps(job),
                capture_output=True,
                text=True,
            )

        accepted = create_as_operator(_child_job("with-chart-rbac", owner))
        assert accepted.returncode == 0, accepted.stderr

        role = json.loads(server.kubectl("get", "clusterrole", f"{release}-tpuserve", "-o", "json").stdout)
        role["rules"] = [r for r in role["rules"] if not any(x.endswith("/finalizers") for x in r["resources"])]
        server.kubectl("replace", "-f", "-", input=json.dumps(role))
        refused = create_as_operator(_child_job("without-finalizers-rule", owner))
        assert refused.returncode != 0
        assert "cannot set blockOwnerDeletion" in refused.stderr, refused.stderr
