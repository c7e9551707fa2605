"""Start, stop and inspect the local Kubernetes test cluster (issue 2).

Real parts: etcd, kube-apiserver (client-certificate authentication, Node+RBAC authorization, service-account
token issuer), kube-controller-manager (garbage collector, Job, Deployment, ReplicaSet, namespace, service-account
and node-lifecycle controllers, among others), kube-scheduler. Simulated: the GKE node pools (Node objects
that kwok keeps Ready, generated in nodepools.py) and the pod lifecycles on them (kwok/stages.yaml), and the
local node `tpuserve-local` whose pods run as real processes (local_node.py). Everything listens on loopback.
Here: the cluster's life cycle; the components' command lines are in components.py, their certificates and
kubeconfigs in credentials.py, their processes in processes.py.

What it simulates is configured (`ClusterConfig`): the node pools, and which images the local node may run as
which program. The project's configuration and command line are in tpuserve_dev.cluster:
For people:  python -m tpuserve_dev.cluster up|down|status   (state in ./.cluster or $TPUSERVE_CLUSTER_DIR)
For tests:   the `kube_cluster` fixture (localcluster.fixtures) starts one in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcluster import components, nodepools, sim
from localcluster.components import AUDIT_POLICY, Ports
from localcluster.credentials import KWOK_RBAC, Credentials, make_credentials
from localcluster.ports import free_port
from localcluster.processes import Processes
from localcluster.wait import WaitTimeout, wait_for

DEFAULT_STATE_DIR = Path(".cluster")  # in the working directory (make cluster-up: the repository root)
BUILD_TOOLS = Path(__file__).with_name("build-tools.sh")
STATE_MARKER = ".tpuserve-test-cluster"  # a state directory is only ever wiped when it carries this file


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


@dataclass(frozen=True)
class ClusterConfig:
    """What the cluster simulates. The default: no node pools, and a local node that runs no image."""

    node_pools: tuple[nodepools.NodePool, ...] = ()  # kwok keeps their nodes Ready
    # "module:function" (str -> bool): the images the local node runs as processes; other pods fail UnsupportedImage.
    runnable_image: str = ""
    # The program a runnable pod runs as (its command[0] must name it); default: `tpuserve` beside this Python.
    entrypoint: Path = field(default_factory=lambda: Path(sys.executable).with_name("tpuserve"))
    # A Docker daemon (DOCKER_HOST, e.g. unix:///run/x.sock): a local-node pod whose image it has runs as a real
    # container of that image (localcluster.container_runner); "" (the default) runs no container.
    docker_host: str = ""
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
        self.kubeconfig = self.state_dir / "admin.kubeconfig"
        # The apiserver's audit log: JSON lines, one per request made by a ServiceAccount (Metadata level).
        self.audit_log = self.state_dir / "audit.log"
        # Extra environment for processes on the local node (JSON object), read at every pod start.
        self.local_node_env_file = self.state_dir / "local-node-env.json"
        self.logs_dir = self.state_dir / "logs"
        self._processes = Processes(
            self.state_dir, self.logs_dir, self.state_dir / "pids", tied_to_this_process=tied_to_this_process
        )

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = tools_bin_dir()
        return self._bin_dir

    # ---- lifecycle -------------------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> float:
        """Start every component on fresh data; returns the seconds it took until the cluster was usable."""
        began = time.monotonic()
        if self.running_components():
            raise ClusterError(f"a cluster is already running from {self.state_dir}; stop it first (harness down)")
        self._fresh_state_dir()
        bin_dir = self.bin_dir
        ports = Ports(etcd=free_port(), etcd_peer=free_port(), apiserver=free_port())
        credentials = make_credentials(self.state_dir, ports.server)
        launch = self._processes.launch
        launch(components.etcd(bin_dir, self.state_dir / "etcd", ports))
        audit_policy = self.state_dir / "audit-policy.yaml"
        audit_policy.write_text(AUDIT_POLICY)
        launch(
            components.kube_apiserver(
                bin_dir,
                ports,
                credentials,
                admission_plugins=self.config.admission_plugins,
                audit_policy=audit_policy,
                audit_log=self.audit_log,
            )
        )
        self._wait_apiserver_ready(ports.server, credentials, deadline=began + timeout)
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": KWOK_RBAC}))
        nodes = self.config.node_manifests()
        if nodes:  # kubectl refuses an empty List
            self.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes}))
        launch(components.kube_controller_manager(bin_dir, credentials))
        launch(components.kube_scheduler(bin_dir, credentials))
        launch(components.kwok(bin_dir, credentials))
        launch(
            components.local_node(
                credentials,
                work_dir=self.state_dir / "local-node",
                env_file=self.local_node_env_file,
                runnable_image=self.config.runnable_image,
                entrypoint=self.config.entrypoint,
                docker_host=self.config.docker_host,
            )
        )
        self._wait_usable(deadline=began + timeout)
        elapsed = time.monotonic() - began
        (self.state_dir / "cluster.json").write_text(
            json.dumps({"server": ports.server, "kubeconfig": str(self.kubeconfig), "startSeconds": round(elapsed, 1)})
        )
        return elapsed

    def stop(self, timeout: float = 15.0) -> list[str]:
        """Stop the components this state directory started (in reverse order); returns their names."""
        return self._processes.stop(tuple(reversed(components.ORDER)), timeout)

    def running_components(self) -> dict[str, int]:
        """name -> pid of the components started from this state directory that are still alive."""
        return self._processes.running()

    # ---- helpers ---------------------------------------------------------------------------------------

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_kubectl(self.bin_dir, self.kubeconfig, *args, check=check, input=input)

    def log_tail(self, name: str, lines: int = 15) -> str:
        return self._processes.log_tail(name, lines)

    def _fresh_state_dir(self) -> None:
        if self.state_dir.exists() and any(self.state_dir.iterdir()):
            if not (self.state_dir / STATE_MARKER).exists():
                raise ClusterError(f"{self.state_dir} is not empty and was not made by this harness; not wiping it")
            shutil.rmtree(self.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / STATE_MARKER).write_text("made by operator/localcluster/harness.py; wiped on every start\n")
        self.logs_dir.mkdir()
        self._processes.pids_dir.mkdir()
        self.local_node_env_file.write_text("{}\n")

    def _check_alive(self) -> None:
        dead = self._processes.exited()
        if dead:
            tails = "\n".join(
                f"--- {name} (log {self.logs_dir / (name + '.log')}):\n{self.log_tail(name)}" for name in dead
            )
            raise ClusterError(f"cluster component(s) exited: {', '.join(dead)}\n{tails}")

    def _wait_apiserver_ready(self, server: str, credentials: Credentials, deadline: float) -> None:
        context = ssl.create_default_context(cafile=str(credentials.ca))
        context.load_cert_chain(str(credentials.admin.cert), str(credentials.admin.key))

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

    def _wait(self, predicate: Callable[[], object], deadline: float, description: str, suspect: str) -> None:
        try:
            wait_for(predicate, timeout=max(deadline - time.monotonic(), 0.1), interval=0.2, description=description)
        except WaitTimeout as error:
            raise ClusterError(f"{error}\n--- {suspect} log tail:\n{self.log_tail(suspect)}") from None


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
            for name in components.ORDER:
                print(f"{name:24} {'running (pid ' + str(running[name]) + ')' if name in running else 'stopped'}")
            if "kube-apiserver" in running:
                print(cluster.kubectl("get", "nodes", "-L", "cloud.google.com/gke-nodepool", check=False).stdout)
                print(f"export KUBECONFIG={cluster.kubeconfig}")
            return 0 if running else 3
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
