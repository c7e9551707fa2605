"""The local node `tpuserve-local`: a tiny kubelet whose pods run as real local processes or real containers.

Given a Docker daemon (`--docker-host`), a pod whose image that daemon has runs as a container of that image
(container_runner.py); every other pod goes to the process runner below.
It registers Node `tpuserve-local` (label and taint from CONTRACTS.md item 4), keeps it Ready (node status and
Lease heartbeats, so the node-lifecycle controller trusts it), and watches the pods bound to it. A pod whose
image the cluster's runnable-image predicate accepts (`--runnable-image module:function`; the project's is
tpuserve.images.is_tpuserve_workload_image) runs as `<entrypoint> <args>` with the pod's environment; its status
goes back to the API server as a kubelet
would write it: Running and Ready, then terminated with the exit code, a reason and the termination message
read from the file named by TPUSERVE_TERMINATION_MESSAGE_PATH (or the log tail, for FallbackToLogsOnError).
Any other image fails the pod with reason UnsupportedImage. Deleting a pod stops its process (SIGTERM, then
SIGKILL after the grace period) and removes the pod with grace 0.

Simulated cluster DNS: `<svc>.<ns>.svc[.cluster.local]:<port>` in args and env values becomes the Service's
`sim.tpuserve.dev/address` annotation ("host:port") when the Service has one.

emptyDir volumes: each becomes a directory of the pod, and paths under its mountPath in args and env values
point there (so two pods never share /var/tmp/...).

What the process runner does not do: probes (containers are Ready once started), restarts (restartPolicy is
treated as Never), other volume kinds, resource limits, init or sidecar containers, `kubectl logs` (logs are
files under --work-dir). It authenticates as system:node:tpuserve-local, so the Node authorizer limits it
exactly as a kubelet.

This module runs the pods' processes (and hands containers to container_runner.py); what it reports (Node, pod
statuses) is in pod_status.py, what a container sees (environment, DNS, emptyDirs) in pod_env.py, and its REST
client in node_api.py.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from localcluster import sim
from localcluster.container_runner import (
    ContainerRunner,
    VolumeMaker,
    container_name,
    create_argv,
    service_account_token,
)
from localcluster.node_api import Api, ApiError
from localcluster.pod_env import ContainerEnvironment, UnsupportedPod, empty_dir_mounts, expand, remap_mounts
from localcluster.pod_status import (
    RunningPod,
    docker_id,
    failed_status,
    node_manifest,
    node_status,
    now_micro,
    running_pod,
    running_status,
    terminated_status,
    termination_message,
)

LOG = logging.getLogger("tpuserve-local-node")
HEARTBEAT_SECONDS = 10
LEASE_SECONDS = 40


class LocalNode:
    def __init__(
        self,
        api: Api,
        work_dir: Path,
        env_file: Path | None,
        entrypoint: Path,
        runnable_image: Callable[[str], bool],
        containers: ContainerRunner | None = None,
    ) -> None:
        self.api = api
        self.containers = containers  # images this Docker daemon has run as containers
        self.work_dir = work_dir
        self.entrypoint = entrypoint
        self.runnable_image = runnable_image
        self.container_environment = ContainerEnvironment(api, entrypoint, env_file)
        self.pods: dict[str, RunningPod] = {}
        self.finished: set[str] = set()  # uids whose process ran to the end (or that failed to start)
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    # ---- node registration and heartbeats --------------------------------------------------------------

    def register(self) -> None:
        try:
            self.api.call("POST", "/api/v1/nodes", node_manifest())
        except ApiError as error:
            if error.status != 409:
                raise
        self.heartbeat()

    def heartbeat(self) -> None:
        self.api.call(
            "PATCH",
            f"/api/v1/nodes/{sim.LOCAL_NODE_NAME}/status",
            {"status": node_status()},
            "application/strategic-merge-patch+json",
        )
        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{sim.LOCAL_NODE_NAME}"
        spec = {"holderIdentity": sim.LOCAL_NODE_NAME, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now_micro()}
        try:
            self.api.call("PATCH", lease_path, {"spec": spec}, "application/merge-patch+json")
        except ApiError as error:
            if error.status != 404:
                raise
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": sim.LOCAL_NODE_NAME}}
            self.api.call("POST", lease_path.rsplit("/", 1)[0], {**lease, "spec": spec})

    def heartbeat_loop(self) -> None:
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                self.heartbeat()
            except (ApiError, OSError) as error:
                LOG.warning("heartbeat failed: %s", error)

    # ---- pods --------------------------------------------------------------------------------------------

    def run(self) -> None:
        selector = urllib.parse.quote(f"spec.nodeName={sim.LOCAL_NODE_NAME}")
        while not self.stopping.is_set():
            try:
                listing = self.api.call("GET", f"/api/v1/pods?fieldSelector={selector}")
                for pod in listing["items"]:
                    self.handle(pod)
                version = listing["metadata"]["resourceVersion"]
                for event in self.api.watch(
                    f"/api/v1/pods?fieldSelector={selector}&watch=1&resourceVersion={version}&timeoutSeconds=240"
                ):
                    if event["type"] == "ERROR":
                        break  # e.g. 410 Gone: list again
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self.handle(event["object"])
            except (ApiError, OSError, ValueError) as error:
                if not self.stopping.is_set():
                    LOG.warning("pod watch interrupted (%s); listing again", error)
                    time.sleep(1)

    def handle(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        with self.lock:
            running = self.pods.get(uid)
            if meta.get("deletionTimestamp"):
                if running is not None and not running.done.is_set():
                    if not running.deleting:
                        running.deleting = True
                        grace = int(meta.get("deletionGracePeriodSeconds") or 30)
                        threading.Thread(target=self.stop_process, args=(running, grace), daemon=True).start()
                    return  # the exit watcher deletes the pod once the process is gone
                self.delete_pod(meta["namespace"], meta["name"], uid)
                return
            if running is not None or uid in self.finished:
                return
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                self.finished.add(uid)
                return
            try:
                self.start(pod)
            except UnsupportedPod as error:
                self.finished.add(uid)
                self.fail_pod(pod, error.reason, error.message)
            except (ApiError, OSError) as error:
                self.finished.add(uid)
                self.fail_pod(pod, "StartError", f"the local node could not start the pod: {error}")

    def start(self, pod: dict[str, Any]) -> None:
        spec = pod["spec"]
        containers = spec.get("containers", [])
        if len(containers) != 1 or spec.get("initContainers"):
            raise UnsupportedPod(
                "UnsupportedPod",
                f"the local node {sim.LOCAL_NODE_NAME} runs pods with exactly one container and no init containers "
                f"(this pod has {len(containers)} container(s) and {len(spec.get('initContainers') or [])} init)",
            )
        container = containers[0]
        image = container.get("image", "")
        if self.containers is not None and self.containers.has_image(image):
            running, what = self.start_container(pod, container, self.containers)
        else:
            running, what = self.start_process(pod, container)
        self.pods[running.uid] = running
        LOG.info("started %s/%s: %s (log %s)", running.namespace, running.name, what, running.log_path)
        self.patch_status(running.namespace, running.name, running_status(running))
        threading.Thread(target=self.watch_exit, args=(running,), daemon=True).start()

    def start_process(self, pod: dict[str, Any], container: dict[str, Any]) -> tuple[RunningPod, str]:
        image = container.get("image", "")
        if not self.runnable_image(image):
            daemon = " and is not in the local node's Docker daemon" if self.containers is not None else ""
            raise UnsupportedPod(
                "UnsupportedImage",
                f"the local node {sim.LOCAL_NODE_NAME} runs the cluster's runnable images as local processes and "
                f"the images of its Docker daemon (if given one) as containers; {image!r} is not runnable{daemon}: "
                "schedule the pod on a simulated (kwok) node instead",
            )
        program = self.entrypoint.name
        command = container.get("command") or [program]
        if Path(command[0]).name != program:
            raise UnsupportedPod(
                "UnsupportedCommand",
                f"the local node runs only the {program} entrypoint; command {command[0]!r} is not {program}",
            )
        if not self.entrypoint.exists():
            raise UnsupportedPod("StartError", f"{self.entrypoint} does not exist: install the project (make setup)")
        pod_dir, termination_path = self.prepare_pod_dir(pod["metadata"])
        mounts = empty_dir_mounts(pod, container, pod_dir / "volumes")
        env = self.container_environment.environment(pod, container, mounts)
        env["TPUSERVE_TERMINATION_MESSAGE_PATH"] = str(termination_path)
        argv = [str(self.entrypoint)] + [
            remap_mounts(self.container_environment.resolve_services(expand(arg, env)), mounts)
            for arg in [*command[1:], *container.get("args", [])]
        ]
        log_path = pod_dir / f"{container['name']}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv,
                env=env,
                cwd=pod_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        running = running_pod(pod, container, process, termination_path, log_path)
        return running, f"{' '.join(argv)} (pid {process.pid})"

    def start_container(
        self, pod: dict[str, Any], container: dict[str, Any], runner: ContainerRunner
    ) -> tuple[RunningPod, str]:
        """The pod as a container of its own image (container_runner.py); env as for a process, minus the host's."""
        pod_dir, termination_path = self.prepare_pod_dir(pod["metadata"])
        termination_path.chmod(0o666)  # the image's user writes it
        env = self.container_environment.environment(pod, container, {}, host_base=False)
        resolve = self.container_environment.resolve_services
        command, args = ([resolve(expand(a, env)) for a in container.get(k) or []] for k in ("command", "args"))
        volumes = VolumeMaker(self.container_environment.read_all, partial(service_account_token, self.api))
        mounts = volumes.mounts(pod, container, pod_dir / "volumes")
        argv = create_argv(
            pod, container, env=env, command=command, args=args, mounts=mounts, termination_file=termination_path
        )
        container_id = runner.create(argv)
        log_path = pod_dir / f"{container['name']}.log"
        process = runner.start_attached(container_id, log_path)
        running = running_pod(pod, container, process, termination_path, log_path, f"docker://{container_id}")
        return running, f"container {container_id[:12]} of {container['image']} ({container_name(pod)})"

    def prepare_pod_dir(self, meta: dict[str, Any]) -> tuple[Path, Path]:
        """The pod's directory and its (empty) termination-message file."""
        pod_dir = self.pod_dir(meta["namespace"], meta["name"], meta["uid"])
        pod_dir.mkdir(parents=True, exist_ok=True)
        termination_path = pod_dir / "termination-log"
        termination_path.write_text("")
        return pod_dir, termination_path

    # ---- process end and deletion ------------------------------------------------------------------------

    def stop_process(self, running: RunningPod, grace_seconds: int) -> None:
        if running.container_id and self.containers is not None:
            self.containers.stop(docker_id(running), grace_seconds)  # SIGTERM, SIGKILL after the grace period
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(running.process.pid, signal.SIGTERM)
        if not running.done.wait(max(grace_seconds, 1)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(running.process.pid, signal.SIGKILL)

    def watch_exit(self, running: RunningPod) -> None:
        code = running.process.wait()
        exit_code = code if code >= 0 else 128 - code  # killed by signal N -> 128 + N, as kubelet reports
        reason = ""
        state = self.containers.exit_state(docker_id(running)) if running.container_id and self.containers else None
        if state is not None:  # the daemon's word over its client's exit code
            exit_code, reason = state[0], "OOMKilled" if state[1] else ""
        message = termination_message(running, exit_code)
        LOG.info("%s/%s exited with %d", running.namespace, running.name, exit_code)
        try:
            status = terminated_status(running, exit_code, message, reason)
            self.patch_status(running.namespace, running.name, status)
        except (ApiError, OSError) as error:
            LOG.warning("could not write the final status of %s/%s: %s", running.namespace, running.name, error)
        with self.lock:
            running.done.set()
            self.finished.add(running.uid)
            if running.deleting:
                self.delete_pod(running.namespace, running.name, running.uid)

    def pod_dir(self, namespace: str, name: str, uid: str) -> Path:
        return self.work_dir / "pods" / f"{namespace}_{name}_{uid[:8]}"

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        # emptyDir contents go with the pod, as with kubelet; the log and termination file stay for debugging.
        running = self.pods.get(uid)
        if running is not None and running.container_id and self.containers is not None:
            self.containers.remove(docker_id(running))
        shutil.rmtree(self.pod_dir(namespace, name, uid) / "volumes", ignore_errors=True)
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        try:
            self.api.call("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", body)
        except ApiError as error:
            if error.status not in (404, 409):
                LOG.warning("could not delete %s/%s: %s", namespace, name, error)

    # ---- status ------------------------------------------------------------------------------------------

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.api.call(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            {"status": status},
            "application/strategic-merge-patch+json",
        )

    def fail_pod(self, pod: dict[str, Any], reason: str, message: str) -> None:
        meta = pod["metadata"]
        LOG.warning("cannot run %s/%s: %s", meta["namespace"], meta["name"], message)
        try:
            self.patch_status(meta["namespace"], meta["name"], failed_status(pod, reason, message))
        except ApiError as error:
            LOG.warning("could not mark %s/%s failed: %s", meta["namespace"], meta["name"], error)

    def shutdown(self) -> None:
        self.stopping.set()
        with self.lock:
            for running in self.pods.values():
                if not running.done.is_set() and not running.container_id:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(running.process.pid, signal.SIGKILL)
            if self.containers is not None:  # finished ones too: nothing of this node stays in the daemon
                self.containers.remove(*[docker_id(r) for r in self.pods.values() if r.container_id])


def load_predicate(reference: str) -> Callable[[str], bool]:
    """`module:function` -> that function; "" -> a predicate that accepts no image."""
    if not reference:
        return lambda _image: False
    module, _, name = reference.partition(":")
    predicate: Callable[[str], bool] = getattr(importlib.import_module(module), name)
    return predicate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster.local_node", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", type=Path, required=True, help="credentials of system:node:tpuserve-local")
    parser.add_argument("--work-dir", type=Path, required=True, help="per-pod directories: logs, termination files")
    parser.add_argument("--env-file", type=Path, help="JSON object of extra environment for every process")
    parser.add_argument("--entrypoint", type=Path, required=True, help="the program runnable pods run as")
    parser.add_argument("--runnable-image", default="", help="module:function accepting the images that run here")
    parser.add_argument("--docker-host", default="", help="DOCKER_HOST of a daemon whose images run as containers")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    runner = ContainerRunner(args.docker_host) if args.docker_host else None
    predicate = load_predicate(args.runnable_image)
    node = LocalNode(Api(args.kubeconfig), args.work_dir, args.env_file, args.entrypoint, predicate, runner)

    def stop(_signum: int, _frame: object) -> None:
        node.shutdown()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    node.register()
    threading.Thread(target=node.heartbeat_loop, daemon=True).start()
    node.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
