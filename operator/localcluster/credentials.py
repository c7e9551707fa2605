"""Who is who in the local cluster: one client certificate and kubeconfig per component (admin, controller-manager,
scheduler, kwok, the local node), the API server's serving certificate, the service-account signing keys, and the
RBAC that lets kwok do its job."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from localcluster import sim
from localcluster.pki import CertificateAuthority, KeyPair, service_account_keys

KWOK_USER = "tpuserve:kwok"
# kubeconfig name -> (user, groups)
IDENTITIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("tpuserve-admin", ("system:masters",)),
    "controller-manager": ("system:kube-controller-manager", ()),
    "scheduler": ("system:kube-scheduler", ()),
    "kwok": (KWOK_USER, ()),
    "local-node": (f"system:node:{sim.LOCAL_NODE_NAME}", ("system:nodes",)),
}
# What kwok touches: the nodes it manages, their Leases, the pods bound to them, events.
KWOK_RBAC: list[dict[str, Any]] = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": KWOK_USER},
        "rules": [
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch", "update", "patch"]},
            {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["update", "patch"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "update", "patch", "delete"]},
            {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["update", "patch"]},
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "verbs": ["get", "list", "watch", "create", "update", "patch"],
            },
            {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "update", "patch"]},
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": KWOK_USER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": KWOK_USER},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": KWOK_USER}],
    },
]


@dataclass(frozen=True)
class Credentials:
    ca: Path  # the CA certificate every component trusts
    admin: KeyPair  # the admin's client certificate (for the readiness probe)
    serving: KeyPair  # kube-apiserver's serving certificate
    service_accounts: KeyPair  # the service-account token signing key pair
    kubeconfigs: dict[str, Path]  # IDENTITIES name -> kubeconfig


def make_credentials(state_dir: Path, server: str) -> Credentials:
    """A fresh CA under state_dir/pki, its certificates, and one kubeconfig per identity in state_dir."""
    ca = CertificateAuthority(state_dir / "pki")
    serving = ca.issue(
        "kube-apiserver",
        "kube-apiserver",
        server_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
        server_ips=("127.0.0.1", "10.96.0.1"),
    )
    service_accounts = service_account_keys(ca.directory)
    kubeconfigs: dict[str, Path] = {}
    pairs: dict[str, KeyPair] = {}
    for name, (user, groups) in IDENTITIES.items():
        pairs[name] = ca.issue(name, user, groups)
        kubeconfigs[name] = state_dir / f"{name}.kubeconfig"
        write_kubeconfig(kubeconfigs[name], server, ca.cert, pairs[name], user)
    return Credentials(ca.cert, pairs["admin"], serving, service_accounts, kubeconfigs)


def write_kubeconfig(path: Path, server: str, ca: Path, client: KeyPair, user: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "tpuserve-test", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(client.cert), "client-key": str(client.key)}}],
        "contexts": [{"name": "tpuserve-test", "context": {"cluster": "tpuserve-test", "user": user}}],
        "current-context": "tpuserve-test",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
