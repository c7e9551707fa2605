"""Start, stop and inspect the local Kubernetes test cluster (issue 2).

Real parts: etcd, kube-apiserver (client-certificate authentication, Node+RBAC authorization, service-account
token issuer), kube-controller-manager (garbage collector, Job, Deployment, ReplicaSet, namespace, service-account
and node-lifecycle controllers, among others), kube-scheduler. Simulated: the GKE node pools (Node objects
that kwok keeps Ready, generated in nodepools.py) and the pod lifecycles on them (kwok/stages.yaml), and the
local node `tpuserve-local` whose pods run as real processes (local_node.py). Everything listens on loopback.

What it simulates is configured (`ClusterConfig`): the node pools, and which images the local node may run as
which program. The project's configuration and command line are in tpuserve_dev.cluster:
For people:  python -m tpuserve_dev.cluster up|down|status   (state in ./.cluster or $TPUSERVE_CLUSTER_DIR)
For tests:   the `kube_cluster` fixture (localcluster.fixtures) starts one in a temporary directory.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from localcluster import nodepools, sim
from localcluster.pki import CertificateAuthority, KeyPair, service_account_keys
from localcluster.ports import free_port
from localcluster.wait import WaitTimeout, wait_for

DEFAULT_STATE_DIR = Path(".cluster")  # in the working directory (make cluster-up: the repository root)
BUILD_TOOLS = Path(__file__).with_name("build-tools.sh")
KWOK_STAGES = Path(__file__).with_name("kwok") / "stages.yaml"
STATE_MARKER = ".tpuserve-test-cluster"  # a state directory is only ever wiped when it carries this file
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
KWOK_USER = "tpuserve:kwok"
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


class ClusterError(RuntimeError):
    pass


def run_kubectl(
    bin_dir: Path,
    kubeconfig: Path,
    *args: str,
    check: bool = True,
    input: str | None = None,
    error: type[Exception] = ClusterError,
) -> subprocess.CompletedProcess[str]:
    """kubectl from `bin_dir` against `kubeconfig`; with check=True a non-zero exit raises `error` with its stderr."""
    result = subprocess.run(
        [str(bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        input=input,
        check=False,
    )
    if check and result.returncode != 0:
        raise error(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def tools_bin_dir() -> Path:
    """The cached binaries (built by `make tools`); a clear error when they are missing."""
    override = os.environ.get("TPUSERVE_TOOLS_BIN")
    if override:
        return Path(override)
    result = subprocess.run(["bash", str(BUILD_TOOLS), "--check"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ClusterError(f"test-cluster binaries are missing ({result.stderr.strip()}); build them with `make tools`")
    return Path(result.stdout.strip().splitlines()[-1])


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


@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]


@dataclass(frozen=True)
class ClusterConfig:
    """What the cluster simulates. The default: no node pools, and a local node that runs no image."""

    node_pools: tuple[nodepools.NodePool, ...] = ()  # kwok keeps their nodes Ready
    # "module:function" (str -> bool): the images the local node runs as processes; other pods fail UnsupportedImage.
    runnable_image: str = ""
    # The program a runnable pod runs as (its command[0] must name it); default: `tpuserve` beside this Python.
    entrypoint: Path = field(default_factory=lambda: Path(sys.executable).with_name("tpuserve"))
    # Admission plugins on top of the default set and NodeRestriction (e.g. OwnerReferencesPermissionEnforcement,
    # which some hardened clusters run).
    admission_plugins: tuple[str, ...] = ()

    def node_manifests(self) -> list[dict[str, Any]]:
        return nodepools.node_manifests(self.node_pools)


class LocalCluster:
    """One cluster whose files (certificates, kubeconfigs, etcd data, logs, pid files) live in `state_dir`."""

    def __init__(
        self,
        state_dir: Path,
        bin_dir: Path | None = None,
        *,
        config: ClusterConfig | None = None,
        tied_to_this_process: bool = False,
    ) -> None:
        """tied_to_this_process: the components get SIGTERM when the process that started them dies, even by
        SIGKILL (the test fixture's choice, so a killed pytest leaves nothing behind); `harness up` leaves the
        cluster running on purpose."""
        self.state_dir = state_dir.resolve()
        self._bin_dir = bin_dir
        self.config = config or ClusterConfig()
        self._tied = tied_to_this_process
        self._processes: dict[str, subprocess.Popen[bytes]] = {}  # what this Python process started

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = tools_bin_dir()
        return self._bin_dir

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    @property
    def audit_log(self) -> Path:
        """The apiserver's audit log: JSON lines, one per request made by a ServiceAccount (Metadata level)."""
        return self.state_dir / "audit.log"

    @property
    def _audit_policy(self) -> Path:
        return self.state_dir / "audit-policy.yaml"

    @property
    def local_node_env_file(self) -> Path:
        """Extra environment for processes on the local node (JSON object), read at every pod start."""
        return self.state_dir / "local-node-env.json"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def _pids_dir(self) -> Path:
        return self.state_dir / "pids"

    # ---- lifecycle -------------------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> float:
        """Start every component on fresh data; returns the seconds it took until the cluster was usable."""
        began = time.monotonic()
        if self.running_components():
            raise ClusterError(f"a cluster is already running from {self.state_dir}; stop it first (harness down)")
        self._fresh_state_dir()
        bin_dir = self.bin_dir
        pki = self.state_dir / "pki"
        ca = CertificateAuthority(pki)
        serving = ca.issue(
            "kube-apiserver",
            "kube-apiserver",
            server_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
            server_ips=("127.0.0.1", "10.96.0.1"),
        )
        sa = service_account_keys(pki)
        identities = {
            "admin": ("tpuserve-admin", ("system:masters",)),
            "controller-manager": ("system:kube-controller-manager", ()),
            "scheduler": ("system:kube-scheduler", ()),
            "kwok": (KWOK_USER, ()),
            "local-node": (f"system:node:{sim.LOCAL_NODE_NAME}", ("system:nodes",)),
        }
        etcd_port, etcd_peer_port, apiserver_port = free_port(), free_port(), free_port()
        server = f"https://127.0.0.1:{apiserver_port}"
        kubeconfigs: dict[str, Path] = {}
        for name, (user, groups) in identities.items():
            pair = ca.issue(name, user, groups)
            kubeconfigs[name] = self.state_dir / f"{name}.kubeconfig"
            write_kubeconfig(kubeconfigs[name], server, ca.cert, pair, user)

        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{etcd_peer_port}"
        self._launch(
            Component(
                "etcd",
                [
                    str(bin_dir / "etcd"),
                    f"--data-dir={self.state_dir / 'etcd'}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=default={peer_url}",
                    "--listen-metrics-urls=",
                    # A throw-away test store: skipping fsync makes start-up and every write much faster.
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                ],
            )
        )
        # Requests by ServiceAccounts only (the operator under the chart's RBAC), so tests can check that a role is
        # exactly as wide as what its user does; components and test kubectl traffic are not logged.
        self._audit_policy.write_text(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n"
            '- level: Metadata\n  userGroups: ["system:serviceaccounts"]\n- level: None\n'
        )
        self._launch(
            Component(
                "kube-apiserver",
                [
                    str(bin_dir / "kube-apiserver"),
                    f"--etcd-servers={etcd_url}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={apiserver_port}",
                    f"--tls-cert-file={serving.cert}",
                    f"--tls-private-key-file={serving.key}",
                    f"--client-ca-file={ca.cert}",
                    "--authorization-mode=Node,RBAC",
                    f"--enable-admission-plugins={','.join(('NodeRestriction', *self.config.admission_plugins))}",
                    f"--audit-policy-file={self._audit_policy}",
                    f"--audit-log-path={self.audit_log}",
                    "--audit-log-maxsize=100",
                    f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                    f"--service-account-key-file={sa.cert}",
                    f"--service-account-signing-key-file={sa.key}",
                    f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                    # GKE before 1.28 needs a privileged server: the operator renders one with server_privileged.
                    "--allow-privileged=true",
                    # The `kubernetes` Service cannot get a loopback endpoint (validation rejects 127.0.0.0/8), and
                    # nothing here runs in-cluster clients that would need it.
                    "--endpoint-reconciler-type=none",
                    "--profiling=false",
                ],
            )
        )
        self._wait_apiserver_ready(server, ca.cert, deadline=began + timeout)
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": KWOK_RBAC}))
        nodes = self.config.node_manifests()
        if nodes:  # kubectl refuses an empty List
            self.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes}))

        self._launch(
            Component(
                "kube-controller-manager",
                [
                    str(bin_dir / "kube-controller-manager"),
                    f"--kubeconfig={kubeconfigs['controller-manager']}",
                    "--secure-port=0",
                    "--leader-elect=false",
                    f"--controllers={','.join(CONTROLLERS)}",
                    "--use-service-account-credentials=true",
                    f"--service-account-private-key-file={sa.key}",
                    f"--root-ca-file={ca.cert}",
                    "--cluster-name=tpuserve",
                    f"--cluster-cidr={POD_CIDR}",
                    f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                ],
            )
        )
        self._launch(
            Component(
                "kube-scheduler",
                [
                    str(bin_dir / "kube-scheduler"),
                    f"--kubeconfig={kubeconfigs['scheduler']}",
                    "--secure-port=0",
                    "--leader-elect=false",
                ],
            )
        )
        self._launch(
            Component(
                "kwok",
                [
                    str(bin_dir / "kwok"),
                    f"--kubeconfig={kubeconfigs['kwok']}",
                    f"--config={KWOK_STAGES}",
                    "--manage-all-nodes=false",
                    f"--manage-nodes-with-annotation-selector={sim.KWOK_NODE_ANNOTATION}={sim.KWOK_NODE_ANNOTATION_VALUE}",
                    "--node-lease-duration-seconds=40",
                    "--node-ip=10.128.0.2",
                    f"--cidr={POD_CIDR}",
                ],
            )
        )
        self._launch(
            Component(
                "local-node",
                [
                    sys.executable,
                    "-m",
                    "localcluster.local_node",
                    f"--kubeconfig={kubeconfigs['local-node']}",
                    f"--work-dir={self.state_dir / 'local-node'}",
                    f"--env-file={self.local_node_env_file}",
                    f"--runnable-image={self.config.runnable_image}",
                    f"--entrypoint={self.config.entrypoint}",
                ],
            )
        )
        self._wait_usable(deadline=began + timeout)
        elapsed = time.monotonic() - began
        (self.state_dir / "cluster.json").write_text(
            json.dumps({"server": server, "kubeconfig": str(self.kubeconfig), "startSeconds": round(elapsed, 1)})
        )
        return elapsed

    def stop(self, timeout: float = 15.0) -> list[str]:
        """Stop the components this state directory started (in reverse order); returns their names."""
        stopped = []
        order = ["local-node", "kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"]
        running = self.running_components()
        for name in order:
            pid = running.get(name)
            if pid is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._wait_exit(pid, 5.0)
            (self._pids_dir / f"{name}.pid").unlink(missing_ok=True)
            stopped.append(name)
        return stopped

    def running_components(self) -> dict[str, int]:
        """name -> pid of the components started from this state directory that are still alive."""
        alive: dict[str, int] = {}
        if not self._pids_dir.is_dir():
            return alive
        for pid_file in self._pids_dir.glob("*.pid"):
            pid = int(pid_file.read_text().strip() or 0)
            if pid and self._is_ours(pid):
                alive[pid_file.stem] = pid
        return alive

    # ---- helpers ---------------------------------------------------------------------------------------

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_kubectl(self.bin_dir, self.kubeconfig, *args, check=check, input=input)

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.logs_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _fresh_state_dir(self) -> None:
        if self.state_dir.exists() and any(self.state_dir.iterdir()):
            if not (self.state_dir / STATE_MARKER).exists():
                raise ClusterError(f"{self.state_dir} is not empty and was not made by this harness; not wiping it")
            shutil.rmtree(self.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / STATE_MARKER).write_text("made by operator/localcluster/harness.py; wiped on every start\n")
        self.logs_dir.mkdir()
        self._pids_dir.mkdir()
        self.local_node_env_file.write_text("{}\n")

    def _launch(self, component: Component) -> None:
        log = (self.logs_dir / f"{component.name}.log").open("ab")
        # A session of its own: Ctrl-C in the terminal that ran `harness up` does not reach the cluster.
        process = subprocess.Popen(
            component.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.state_dir,
            start_new_session=True,
            preexec_fn=_terminate_with_parent if self._tied else None,
        )
        log.close()
        self._processes[component.name] = process
        (self._pids_dir / f"{component.name}.pid").write_text(f"{process.pid}\n")

    def _is_ours(self, pid: int) -> bool:
        """A pid from our pid files is ours only while its command line still names this state directory."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z" and str(self.state_dir) in cmdline

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        def exited() -> bool:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap our own children so they do not linger as zombies
            return not self._is_ours(pid)

        try:
            wait_for(exited, timeout=timeout, interval=0.05, description=f"pid {pid} to exit")
        except WaitTimeout:
            return False
        return True

    def _check_alive(self) -> None:
        dead = sorted(name for name, process in self._processes.items() if process.poll() is not None)
        if dead:
            tails = "\n".join(
                f"--- {name} (log {self.logs_dir / (name + '.log')}):\n{self.log_tail(name)}" for name in dead
            )
            raise ClusterError(f"cluster component(s) exited: {', '.join(dead)}\n{tails}")

    def _wait_apiserver_ready(self, server: str, ca: Path, deadline: float) -> None:
        admin = self.state_dir / "pki"
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(str(admin / "admin.crt"), str(admin / "admin.key"))

        def ready() -> bool:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"{server}/readyz", context=context, timeout=2) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return False

        self._wait(ready, deadline, "kube-apiserver /readyz", "kube-apiserver")

    def _wait_usable(self, deadline: float) -> None:
        """Usable = every node Ready without the not-ready taint, and namespaces get their default ServiceAccount
        (the service-account controller runs, so pods can be created)."""
        expected_nodes = {m["metadata"]["name"] for m in self.config.node_manifests()} | {sim.LOCAL_NODE_NAME}

        def nodes_ready() -> str | bool:
            self._check_alive()
            result = self.kubectl("get", "nodes", "-o", "json", check=False)
            if result.returncode != 0:
                return False
            ready = set()
            for node in json.loads(result.stdout)["items"]:
                conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
                taints = {t["key"] for t in node.get("spec", {}).get("taints", [])}
                if conditions.get("Ready") == "True" and "node.kubernetes.io/not-ready" not in taints:
                    ready.add(node["metadata"]["name"])
            return ready >= expected_nodes

        def default_service_account() -> bool:
            self._check_alive()
            return self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0

        self._wait(default_service_account, deadline, "the default ServiceAccount", "kube-controller-manager")
        self._wait(nodes_ready, deadline, "all nodes Ready and untainted", "kwok")

    def _wait(self, predicate: Any, deadline: float, description: str, suspect: str) -> None:
        try:
            wait_for(predicate, timeout=max(deadline - time.monotonic(), 0.1), interval=0.2, description=description)
        except WaitTimeout as error:
            raise ClusterError(f"{error}\n--- {suspect} log tail:\n{self.log_tail(suspect)}") from None


def _terminate_with_parent() -> None:
    """In the child before exec: ask Linux for SIGTERM when the parent dies (prctl PR_SET_PDEATHSIG)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def state_dir_from_env() -> Path:
    return Path(os.environ.get("TPUSERVE_CLUSTER_DIR", str(DEFAULT_STATE_DIR)))


def main(config: ClusterConfig, argv: Sequence[str] | None = None, prog: str = "python -m localcluster.harness") -> int:
    """The command line (up|down|status) for a cluster with `config`; tpuserve_dev.cluster calls it."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--state-dir", type=Path, default=state_dir_from_env(), help="default: $TPUSERVE_CLUSTER_DIR or ./.cluster"
    )
    args = parser.parse_args(argv)
    cluster = LocalCluster(args.state_dir, config=config)
    try:
        if args.command == "up":
            seconds = cluster.start()
            print(f"cluster up in {seconds:.1f}s (logs: {cluster.logs_dir})", file=sys.stderr)
            print(f"export KUBECONFIG={cluster.kubeconfig}")
        elif args.command == "down":
            stopped = cluster.stop()
            print(f"stopped: {', '.join(stopped) or 'nothing was running'}", file=sys.stderr)
        else:
            running = cluster.running_components()
            for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "local-node"):
                print(f"{name:24} {'running (pid ' + str(running[name]) + ')' if name in running else 'stopped'}")
            if "kube-apiserver" in running:
                print(cluster.kubectl("get", "nodes", "-L", "cloud.google.com/gke-nodepool", check=False).stdout)
                print(f"export KUBECONFIG={cluster.kubeconfig}")
            return 0 if running else 3
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
