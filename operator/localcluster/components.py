"""The command lines of the local cluster's components, in start order: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok (the simulated GKE nodes) and the local node (local_node.py)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from localcluster import sim
from localcluster.credentials import Credentials

KWOK_STAGES = Path(__file__).with_name("kwok") / "stages.yaml"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
# Controllers the issue asks for, plus what they lean on: node-lifecycle lifts the not-ready taint that
# admission puts on new nodes, root-ca publisher and clusterrole aggregation match a real cluster's defaults.
CONTROLLERS = (
    "garbage-collector-controller",
    "job-controller",
    "deployment-controller",
    "replicaset-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "node-lifecycle-controller",
    "endpointslice-controller",
    "ttl-after-finished-controller",
    "pod-garbage-collector-controller",
    "clusterrole-aggregation-controller",
    # Writes status.typeChecking of ValidatingAdmissionPolicies (the chart's admission policy is checked there).
    "validatingadmissionpolicy-status-controller",
)
# Requests by ServiceAccounts only (the operator under the chart's RBAC), so tests can check that a role is
# exactly as wide as what its user does; components and test kubectl traffic are not logged.
AUDIT_POLICY = (
    "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n"
    '- level: Metadata\n  userGroups: ["system:serviceaccounts"]\n- level: None\n'
)
# Start order; they stop in reverse.
ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "local-node")


@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]


@dataclass(frozen=True)
class Ports:
    etcd: int
    etcd_peer: int
    apiserver: int

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd}"

    @property
    def etcd_peer_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_peer}"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver}"


def etcd(bin_dir: Path, data_dir: Path, ports: Ports) -> Component:
    return Component(
        "etcd",
        [
            str(bin_dir / "etcd"),
            f"--data-dir={data_dir}",
            f"--listen-client-urls={ports.etcd_url}",
            f"--advertise-client-urls={ports.etcd_url}",
            f"--listen-peer-urls={ports.etcd_peer_url}",
            f"--initial-advertise-peer-urls={ports.etcd_peer_url}",
            f"--initial-cluster=default={ports.etcd_peer_url}",
            "--listen-metrics-urls=",
            # A throw-away test store: skipping fsync makes start-up and every write much faster.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
    )


def kube_apiserver(
    bin_dir: Path,
    ports: Ports,
    credentials: Credentials,
    *,
    admission_plugins: tuple[str, ...],
    audit_policy: Path,
    audit_log: Path,
) -> Component:
    return Component(
        "kube-apiserver",
        [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers={ports.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports.apiserver}",
            f"--tls-cert-file={credentials.serving.cert}",
            f"--tls-private-key-file={credentials.serving.key}",
            f"--client-ca-file={credentials.ca}",
            "--authorization-mode=Node,RBAC",
            f"--enable-admission-plugins={','.join(('NodeRestriction', *admission_plugins))}",
            f"--audit-policy-file={audit_policy}",
            f"--audit-log-path={audit_log}",
            "--audit-log-maxsize=100",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={credentials.service_accounts.cert}",
            f"--service-account-signing-key-file={credentials.service_accounts.key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            # GKE before 1.28 needs a privileged server: the operator renders one with server_privileged.
            "--allow-privileged=true",
            # The `kubernetes` Service cannot get a loopback endpoint (validation rejects 127.0.0.0/8), and
            # nothing here runs in-cluster clients that would need it.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
        ],
    )


def _api_client(bin_dir: Path, credentials: Credentials, name: str, identity: str, *flags: str) -> Component:
    """The binary `name` talking to the API server as `identity` (its kubeconfig in credentials)."""
    return Component(name, [str(bin_dir / name), f"--kubeconfig={credentials.kubeconfigs[identity]}", *flags])


def kube_controller_manager(bin_dir: Path, credentials: Credentials) -> Component:
    flags = (
        "--secure-port=0",
        "--leader-elect=false",
        f"--controllers={','.join(CONTROLLERS)}",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={credentials.service_accounts.key}",
        f"--root-ca-file={credentials.ca}",
        "--cluster-name=tpuserve",
        f"--cluster-cidr={POD_CIDR}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
    )
    return _api_client(bin_dir, credentials, "kube-controller-manager", "controller-manager", *flags)


def kube_scheduler(bin_dir: Path, credentials: Credentials) -> Component:
    return _api_client(bin_dir, credentials, "kube-scheduler", "scheduler", "--secure-port=0", "--leader-elect=false")


def kwok(bin_dir: Path, credentials: Credentials) -> Component:
    flags = (
        f"--config={KWOK_STAGES}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={sim.KWOK_NODE_ANNOTATION}={sim.KWOK_NODE_ANNOTATION_VALUE}",
        "--node-lease-duration-seconds=40",
        "--node-ip=10.128.0.2",
        f"--cidr={POD_CIDR}",
    )
    return _api_client(bin_dir, credentials, "kwok", "kwok", *flags)


def local_node(
    credentials: Credentials,
    *,
    work_dir: Path,
    env_file: Path,
    runnable_image: str,
    entrypoint: Path,
    docker_host: str = "",
) -> Component:
    return Component(
        "local-node",
        [
            sys.executable,
            "-m",
            "localcluster.local_node",
            f"--kubeconfig={credentials.kubeconfigs['local-node']}",
            f"--work-dir={work_dir}",
            f"--env-file={env_file}",
            f"--runnable-image={runnable_image}",
            f"--entrypoint={entrypoint}",
            f"--docker-host={docker_host}",
        ],
    )
