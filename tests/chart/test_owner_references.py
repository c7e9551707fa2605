"""Why the chart grants `update` on <kind>/finalizers: API servers that run the OwnerReferencesPermissionEnforcement
admission plugin (off in the shared test cluster, on in some hardened clusters) refuse a child whose
ownerReference has blockOwnerDeletion -- which the operator's children have -- unless its creator may update the
owner's finalizers. This test runs its own kube-apiserver (the test cluster's binary) with that plugin on and
creates such a Job as the chart's ServiceAccount: accepted with the chart's ClusterRole, refused without the
finalizers rule. So the rule is needed, and enough."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.chart.cluster_helpers import helm_install, service_account_kubeconfig
from tests.chart.prometheus import free_port
from tests.chart.tools import REPO, tools_bin_dir
from tests.cluster.harness import run_kubectl
from tests.cluster.wait import wait_crds_established

# Needs the test cluster's binaries (its own apiserver, not the shared cluster).
pytestmark = [pytest.mark.cluster, pytest.mark.slow]

TOKEN = "chart-test-admin-token"


@dataclass
class ApiServer:
    kubeconfig: Path
    bin_dir: Path

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_kubectl(self.bin_dir, self.kubeconfig, *args, check=check, input=input, error=AssertionError)


@contextlib.contextmanager
def apiserver_enforcing_owner_references(workdir: Path) -> Iterator[ApiServer]:
    """etcd + kube-apiserver on loopback, RBAC, OwnerReferencesPermissionEnforcement; an admin token user."""
    bin_dir = tools_bin_dir()
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "genrsa", "-out", str(workdir / "sa.key"), "2048"], check=True, capture_output=True)
    subprocess.run(
        ["openssl", "rsa", "-in", str(workdir / "sa.key"), "-pubout", "-out", str(workdir / "sa.pub")],
        check=True,
        capture_output=True,
    )
    (workdir / "tokens.csv").write_text(f"{TOKEN},admin,admin,system:masters\n")
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with (workdir / "etcd.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [
                        str(bin_dir / "etcd"),
                        f"--data-dir={workdir / 'etcd'}",
                        f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                        f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                        f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                        f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                        "--listen-metrics-urls=",
                        "--unsafe-no-fsync",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        with (workdir / "apiserver.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [
                        str(bin_dir / "kube-apiserver"),
                        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                        "--bind-address=127.0.0.1",
                        "--advertise-address=127.0.0.1",
                        f"--secure-port={api_port}",
                        f"--cert-dir={workdir / 'certs'}",
                        f"--token-auth-file={workdir / 'tokens.csv'}",
                        "--authorization-mode=RBAC",
                        "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
                        f"--service-account-key-file={workdir / 'sa.pub'}",
                        f"--service-account-signing-key-file={workdir / 'sa.key'}",
                        "--service-account-issuer=https://kubernetes.default.svc",
                        "--service-cluster-ip-range=10.96.0.0/16",
                        "--endpoint-reconciler-type=none",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        kubeconfig = workdir / "admin.kubeconfig"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "owner-test",
                            "cluster": {"server": f"https://127.0.0.1:{api_port}", "insecure-skip-tls-verify": True},
                        }
                    ],
                    "users": [{"name": "admin", "user": {"token": TOKEN}}],
                    "contexts": [{"name": "owner-test", "context": {"cluster": "owner-test", "user": "admin"}}],
                    "current-context": "owner-test",
                }
            )
        )
        server = ApiServer(kubeconfig, bin_dir)
        deadline = time.monotonic() + 90
        while server.kubectl("get", "--raw=/readyz", check=False).returncode != 0:
            for process in processes:
                if process.poll() is not None:
                    raise RuntimeError((workdir / "apiserver.log").read_text()[-3000:])
            if time.monotonic() > deadline:
                raise TimeoutError("kube-apiserver not ready after 90 s")
            time.sleep(0.5)
        # No controller-manager here: ServiceAccount tokens come from the TokenRequest API (kubectl create token).
        yield server
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


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
    with apiserver_enforcing_owner_references(tmp_path / "apiserver") as server:
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
