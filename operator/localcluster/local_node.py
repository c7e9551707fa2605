"""The local node `tpuserve-local`: a tiny kubelet whose pods run as real local processes.

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

What it does not do: probes (containers are Ready once started), restarts (restartPolicy is treated as Never),
other volume kinds, resource limits, init or sidecar containers, `kubectl logs` (logs are files under --work-dir).
It authenticates as system:node:tpuserve-local, so the Node authorizer limits it exactly as a kubelet.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib
import json
import logging
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from localcluster import sim

LOG = logging.getLogger("tpuserve-local-node")
POD_IP = "127.0.0.1"
HEARTBEAT_SECONDS = 10
LEASE_SECONDS = 40
TERMINATION_MESSAGE_LIMIT = 4096  # kubelet's limit per container
FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES = 80, 2048  # what kubelet keeps for FallbackToLogsOnError
# Nominal capacity: the scheduler accounts requests against it, but the processes share this machine. Large
# enough that what the operator renders (e.g. a 64 GiB conversion Job) fits.
CAPACITY = {"cpu": "64", "memory": "512Gi", "pods": "110", "ephemeral-storage": "1Ti"}
SERVICE_ADDRESS = re.compile(
    r"(?P<svc>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.(?P<ns>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.svc(?:\.cluster\.local)?:(?P<port>\d+)"
)
ENV_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class Api:
    """Just enough of a Kubernetes REST client for a kubelet: JSON requests and watches, client-cert auth."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        context_name = config["current-context"]
        context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        self.server = cluster["server"].rstrip("/")
        self.ssl = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.ssl.load_cert_chain(user["client-certificate"], user["client-key"])

    def _open(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json", timeout: float = 30
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.server + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            return urllib.request.urlopen(request, context=self.ssl, timeout=timeout)
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, error.read().decode(errors="replace")) from None

    def call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> dict[str, Any]:
        with self._open(method, path, body, content_type) as response:
            result: dict[str, Any] = json.loads(response.read() or b"{}")
            return result

    def watch(self, path: str, timeout_seconds: int = 240) -> Iterator[dict[str, Any]]:
        with self._open("GET", path, timeout=timeout_seconds + 30) as response:
            for line in response:
                if line.strip():
                    yield json.loads(line)


@dataclass
class RunningPod:
    uid: str
    namespace: str
    name: str
    container: str
    image: str
    process: subprocess.Popen[bytes]
    started_at: str
    termination_path: Path
    log_path: Path
    fallback_to_logs: bool
    deleting: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class UnsupportedPod(Exception):
    """A pod this node cannot run; the reason becomes the pod's status.reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class LocalNode:
    def __init__(
        self, api: Api, work_dir: Path, env_file: Path | None, entrypoint: Path, runnable_image: Callable[[str], bool]
    ) -> None:
        self.api = api
        self.work_dir = work_dir
        self.env_file = env_file
        self.entrypoint = entrypoint
        self.runnable_image = runnable_image
        self.pods: dict[str, RunningPod] = {}
        self.finished: set[str] = set()  # uids whose process ran to the end (or that failed to start)
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    # ---- node registration and heartbeats --------------------------------------------------------------

    def node_status(self) -> dict[str, Any]:
        stamp = now()

        def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": stamp,
            }

        return {
            "capacity": CAPACITY,
            "allocatable": CAPACITY,
            "conditions": [
                condition("Ready", "True", "KubeletReady", "tpuserve local node runner is posting ready status"),
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "nominal capacity"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "nominal capacity"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "nominal capacity"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": POD_IP},
                {"type": "Hostname", "address": sim.LOCAL_NODE_NAME},
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "osImage": "tpuserve local node (processes on this machine)",
                "kubeletVersion": "tpuserve-local",
                "kubeProxyVersion": "tpuserve-local",
                "containerRuntimeVersion": "tpuserve-local://process",
                "kernelVersion": os.uname().release,
                "bootID": "",
                "machineID": "",
                "systemUUID": "",
            },
        }

    def register(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": sim.LOCAL_NODE_NAME,
                "labels": {
                    sim.LOCAL_NODE_LABEL: "true",
                    "kubernetes.io/hostname": sim.LOCAL_NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
            "spec": {
                "taints": [
                    {
                        "key": sim.LOCAL_NODE_TAINT_KEY,
                        "value": sim.LOCAL_NODE_TAINT_VALUE,
                        "effect": sim.LOCAL_NODE_TAINT_EFFECT,
                    }
                ]
            },
            "status": self.node_status(),
        }
        try:
            self.api.call("POST", "/api/v1/nodes", node)
        except ApiError as error:
            if error.status != 409:
                raise
        self.heartbeat()

    def heartbeat(self) -> None:
        self.api.call(
            "PATCH",
            f"/api/v1/nodes/{sim.LOCAL_NODE_NAME}/status",
            {"status": self.node_status()},
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
                self.fail_pod(pod, "StartError", f"the local node could not start the process: {error}")

    def start(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        containers = spec.get("containers", [])
        if len(containers) != 1 or spec.get("initContainers"):
            raise UnsupportedPod(
                "UnsupportedPod",
                f"the local node {sim.LOCAL_NODE_NAME} runs pods with exactly one container and no init containers "
                f"(this pod has {len(containers)} container(s) and {len(spec.get('initContainers') or [])} init)",
            )
        container = containers[0]
        image = container.get("image", "")
        if not self.runnable_image(image):
            raise UnsupportedPod(
                "UnsupportedImage",
                f"the local node {sim.LOCAL_NODE_NAME} runs only the cluster's runnable images as "
                f"local processes; {image!r} cannot run here: schedule the pod on a simulated (kwok) node instead",
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
        pod_dir = self.pod_dir(meta["namespace"], meta["name"], meta["uid"])
        pod_dir.mkdir(parents=True, exist_ok=True)
        termination_path = pod_dir / "termination-log"
        termination_path.write_text("")
        mounts = empty_dir_mounts(pod, container, pod_dir / "volumes")
        env = self.environment(pod, container, mounts)
        env["TPUSERVE_TERMINATION_MESSAGE_PATH"] = str(termination_path)
        argv = [str(self.entrypoint)] + [
            remap_mounts(self.resolve_services(expand(arg, env)), mounts)
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
        running = RunningPod(
            uid=meta["uid"],
            namespace=meta["namespace"],
            name=meta["name"],
            container=container["name"],
            image=image,
            process=process,
            started_at=now(),
            termination_path=termination_path,
            log_path=log_path,
            fallback_to_logs=container.get("terminationMessagePolicy") == "FallbackToLogsOnError",
        )
        self.pods[running.uid] = running
        LOG.info(
            "started %s/%s: %s (pid %d, log %s)", running.namespace, running.name, " ".join(argv), process.pid, log_path
        )
        self.patch_status(running, self.running_status(running))
        threading.Thread(target=self.watch_exit, args=(running,), daemon=True).start()

    def environment(self, pod: dict[str, Any], container: dict[str, Any], mounts: dict[str, Path]) -> dict[str, str]:
        """The process environment: a minimal base (like an image's ENV), the env file, then the pod's env."""
        env = {key: os.environ[key] for key in ("HOME", "LANG", "LC_ALL", "TMPDIR") if key in os.environ}
        env["PATH"] = f"{self.entrypoint.parent}:{os.environ.get('PATH', '/usr/local/bin:/usr/bin:/bin')}"
        if self.env_file is not None and self.env_file.exists():
            extra = json.loads(self.env_file.read_text() or "{}")
            env.update({str(k): str(v) for k, v in extra.items()})
        namespace = pod["metadata"]["namespace"]
        for source in container.get("envFrom", []):
            prefix = source.get("prefix", "")
            for key, data in self.read_all(namespace, source).items():
                env[prefix + key] = data
        for item in container.get("env", []):
            name = item["name"]
            value = (
                self.value_from(pod, item["valueFrom"], name)
                if "valueFrom" in item
                else expand(item.get("value", ""), env)
            )
            if value is not None:  # None: an optional key that is absent
                env[name] = remap_mounts(self.resolve_services(value), mounts)
        return env

    def value_from(self, pod: dict[str, Any], source: dict[str, Any], name: str) -> str | None:
        meta = pod["metadata"]
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            fields = {
                "metadata.name": meta["name"],
                "metadata.namespace": meta["namespace"],
                "metadata.uid": meta["uid"],
                "spec.nodeName": sim.LOCAL_NODE_NAME,
                "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
                "status.podIP": POD_IP,
                "status.hostIP": POD_IP,
            }
            match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
            if match:
                return str(meta.get(match.group(1), {}).get(match.group(2), ""))
            if path not in fields:
                raise UnsupportedPod(
                    "CreateContainerConfigError", f"env {name}: fieldRef {path!r} is not supported here"
                )
            return str(fields[path])
        for kind in ("configMapKeyRef", "secretKeyRef"):
            if kind in source:
                ref = source[kind]
                values = self.read_all(meta["namespace"], {kind.replace("KeyRef", "Ref"): ref})
                if ref["key"] not in values:
                    if ref.get("optional"):
                        return None
                    raise UnsupportedPod(
                        "CreateContainerConfigError",
                        f"env {name}: key {ref['key']!r} not found in {kind[:-6]} {ref['name']!r}",
                    )
                return values[ref["key"]]
        raise UnsupportedPod(
            "CreateContainerConfigError", f"env {name}: {sorted(source)} is not supported on the local node"
        )

    def read_all(self, namespace: str, source: dict[str, Any]) -> dict[str, str]:
        """The data of the ConfigMap or Secret an envFrom / keyRef names (secrets decoded)."""
        is_secret = "secretRef" in source
        ref = source["secretRef"] if is_secret else source["configMapRef"]
        kind = "secrets" if is_secret else "configmaps"
        try:
            obj = self.api.call("GET", f"/api/v1/namespaces/{namespace}/{kind}/{ref['name']}")
        except ApiError as error:
            if error.status == 404 and ref.get("optional"):
                return {}
            raise UnsupportedPod("CreateContainerConfigError", f"{kind[:-1]} {ref['name']!r}: {error}") from None
        data = obj.get("data") or {}
        if is_secret:
            return {key: base64.b64decode(value).decode() for key, value in data.items()}
        return {key: str(value) for key, value in data.items()}

    def resolve_services(self, value: str) -> str:
        """Simulated cluster DNS: replace `<svc>.<ns>.svc[.cluster.local]:<port>` by the Service's sim address."""

        def replace(match: re.Match[str]) -> str:
            try:
                service = self.api.call("GET", f"/api/v1/namespaces/{match['ns']}/services/{match['svc']}")
            except ApiError:
                return match.group(0)
            address = (service["metadata"].get("annotations") or {}).get(sim.ADDRESS_ANNOTATION)
            return str(address) if address else match.group(0)

        return SERVICE_ADDRESS.sub(replace, value)

    # ---- process end and deletion ------------------------------------------------------------------------

    def stop_process(self, running: RunningPod, grace_seconds: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(running.process.pid, signal.SIGTERM)
        if not running.done.wait(max(grace_seconds, 1)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(running.process.pid, signal.SIGKILL)

    def watch_exit(self, running: RunningPod) -> None:
        code = running.process.wait()
        exit_code = code if code >= 0 else 128 - code  # killed by signal N -> 128 + N, as kubelet reports
        message = running.termination_path.read_bytes()[:TERMINATION_MESSAGE_LIMIT].decode(errors="replace").strip()
        if not message and exit_code != 0 and running.fallback_to_logs:
            lines = running.log_path.read_bytes().splitlines()[-FALLBACK_LOG_LINES:]
            message = b"\n".join(lines)[-FALLBACK_LOG_BYTES:].decode(errors="replace").strip()
        LOG.info("%s/%s exited with %d", running.namespace, running.name, exit_code)
        try:
            self.patch_status(running, self.terminated_status(running, exit_code, message))
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
        shutil.rmtree(self.pod_dir(namespace, name, uid) / "volumes", ignore_errors=True)
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        try:
            self.api.call("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", body)
        except ApiError as error:
            if error.status not in (404, 409):
                LOG.warning("could not delete %s/%s: %s", namespace, name, error)

    # ---- status ------------------------------------------------------------------------------------------

    def patch_status(self, running: RunningPod, status: dict[str, Any]) -> None:
        self.api.call(
            "PATCH",
            f"/api/v1/namespaces/{running.namespace}/pods/{running.name}/status",
            {"status": status},
            "application/strategic-merge-patch+json",
        )

    @staticmethod
    def conditions(ready: bool, reason: str | None = None) -> list[dict[str, str]]:
        stamp = now()
        result = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp}]
        result.append({"type": "Initialized", "status": "True", "lastTransitionTime": stamp})
        for kind in ("ContainersReady", "Ready"):
            condition = {"type": kind, "status": "True" if ready else "False", "lastTransitionTime": stamp}
            if reason:
                condition["reason"] = reason
            result.append(condition)
        return result

    def running_status(self, running: RunningPod) -> dict[str, Any]:
        return {
            "phase": "Running",
            "conditions": self.conditions(True),
            "hostIP": POD_IP,
            "hostIPs": [{"ip": POD_IP}],
            "podIP": POD_IP,
            "podIPs": [{"ip": POD_IP}],
            "startTime": running.started_at,
            "containerStatuses": [
                {
                    "name": running.container,
                    "image": running.image,
                    "imageID": "",
                    "containerID": f"process://{running.process.pid}",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": running.started_at}},
                }
            ],
        }

    def terminated_status(self, running: RunningPod, exit_code: int, message: str) -> dict[str, Any]:
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": running.started_at,
            "finishedAt": now(),
            "containerID": f"process://{running.process.pid}",
        }
        if message:
            terminated["message"] = message
        status = self.running_status(running)
        status["phase"] = "Succeeded" if exit_code == 0 else "Failed"
        status["conditions"] = self.conditions(False, "PodCompleted")
        container_status = status["containerStatuses"][0]
        container_status.update({"ready": False, "started": False, "state": {"terminated": terminated}})
        return status

    def fail_pod(self, pod: dict[str, Any], reason: str, message: str) -> None:
        meta = pod["metadata"]
        LOG.warning("cannot run %s/%s: %s", meta["namespace"], meta["name"], message)
        stamp = now()
        containers = pod["spec"].get("containers", [])
        status = {
            "phase": "Failed",
            "reason": reason,
            "message": message,
            "conditions": self.conditions(False, reason),
            "hostIP": POD_IP,
            "startTime": stamp,
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "state": {
                        "terminated": {
                            "exitCode": 128,
                            "reason": reason,
                            "message": message[:TERMINATION_MESSAGE_LIMIT],
                            "startedAt": stamp,
                            "finishedAt": stamp,
                        }
                    },
                }
                for c in containers
            ],
        }
        try:
            self.api.call(
                "PATCH",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                {"status": status},
                "application/strategic-merge-patch+json",
            )
        except ApiError as error:
            LOG.warning("could not mark %s/%s failed: %s", meta["namespace"], meta["name"], error)

    def shutdown(self) -> None:
        self.stopping.set()
        with self.lock:
            for running in self.pods.values():
                if not running.done.is_set():
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(running.process.pid, signal.SIGKILL)


def empty_dir_mounts(pod: dict[str, Any], container: dict[str, Any], volumes_dir: Path) -> dict[str, Path]:
    """mountPath -> a fresh directory of this pod, for each emptyDir the container mounts (as kubelet gives every
    pod its own emptyDir); other volume kinds are not provided on the local node."""
    empty_dirs = {v["name"] for v in pod["spec"].get("volumes") or [] if "emptyDir" in v}
    mounts: dict[str, Path] = {}
    for mount in container.get("volumeMounts") or []:
        if mount["name"] in empty_dirs:
            directory = volumes_dir / mount["name"]
            directory.mkdir(parents=True, exist_ok=True)
            mounts[mount["mountPath"].rstrip("/") or "/"] = directory
    return mounts


def remap_mounts(value: str, mounts: dict[str, Path]) -> str:
    """Point paths under an emptyDir's mountPath (a whole value, or after `=`, `:` or `,`) at the pod's directory."""
    for mount_path in sorted(mounts, key=len, reverse=True):
        pattern = re.compile(r"(?:^|(?<=[=:,]))" + re.escape(mount_path) + r"(?=/|$|[:,])")
        # Split and join rather than re.sub: the replacement is a path, not a template.
        value = str(mounts[mount_path]).join(pattern.split(value))
    return value


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: a defined variable is replaced, an undefined reference is kept as is."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":  # `$$` escapes: `$$(VAR)` stays a literal `$(VAR)`
            return "$"
        return env.get(match.group(1), match.group(0))

    return ENV_REFERENCE.sub(replace, value)


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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    node = LocalNode(
        Api(args.kubeconfig), args.work_dir, args.env_file, args.entrypoint, load_predicate(args.runnable_image)
    )

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
