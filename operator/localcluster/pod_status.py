"""What the local node reports to the API server, as a kubelet writes it: the Node object and its status, and a
pod's status while its process runs, after it exits (exit code, reason, termination message) or when it cannot
start."""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localcluster import sim

POD_IP = "127.0.0.1"
TERMINATION_MESSAGE_LIMIT = 4096  # kubelet's limit per container
FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES = 80, 2048  # what kubelet keeps for FallbackToLogsOnError
# Nominal capacity: the scheduler accounts requests against it, but the processes share this machine. Large
# enough that what the operator renders (e.g. a 64 GiB conversion Job) fits.
CAPACITY = {"cpu": "64", "memory": "512Gi", "pods": "110", "ephemeral-storage": "1Ti"}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
    container_id: str = ""  # docker://<id> for a container; empty for a process (process://<pid>)
    deleting: bool = False
    done: threading.Event = field(default_factory=threading.Event)


def running_pod(
    pod: dict[str, Any],
    container: dict[str, Any],
    process: subprocess.Popen[bytes],
    termination_path: Path,
    log_path: Path,
    container_id: str = "",
) -> RunningPod:
    meta = pod["metadata"]
    return RunningPod(
        uid=meta["uid"],
        namespace=meta["namespace"],
        name=meta["name"],
        container=container["name"],
        image=container.get("image", ""),
        process=process,
        started_at=now(),
        termination_path=termination_path,
        log_path=log_path,
        fallback_to_logs=container.get("terminationMessagePolicy") == "FallbackToLogsOnError",
        container_id=container_id,
    )


def docker_id(running: RunningPod) -> str:
    """The Docker container id of a pod run as a container ("" for a process)."""
    return running.container_id.removeprefix("docker://")


def node_manifest() -> dict[str, Any]:
    """The Node `tpuserve-local` registers as (label and taint from CONTRACTS.md item 4)."""
    return {
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
        "status": node_status(),
    }


def node_status() -> dict[str, Any]:
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


def pod_conditions(ready: bool, reason: str | None = None) -> list[dict[str, str]]:
    stamp = now()
    result = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp}]
    result.append({"type": "Initialized", "status": "True", "lastTransitionTime": stamp})
    for kind in ("ContainersReady", "Ready"):
        condition = {"type": kind, "status": "True" if ready else "False", "lastTransitionTime": stamp}
        if reason:
            condition["reason"] = reason
        result.append(condition)
    return result


def container_id(running: RunningPod) -> str:
    return running.container_id or f"process://{running.process.pid}"


def running_status(running: RunningPod) -> dict[str, Any]:
    return {
        "phase": "Running",
        "conditions": pod_conditions(True),
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
                "containerID": container_id(running),
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": running.started_at}},
            }
        ],
    }


def terminated_status(running: RunningPod, exit_code: int, message: str, reason: str = "") -> dict[str, Any]:
    terminated: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "startedAt": running.started_at,
        "finishedAt": now(),
        "containerID": container_id(running),
    }
    if message:
        terminated["message"] = message
    status = running_status(running)
    status["phase"] = "Succeeded" if exit_code == 0 else "Failed"
    status["conditions"] = pod_conditions(False, "PodCompleted")
    container_status = status["containerStatuses"][0]
    container_status.update({"ready": False, "started": False, "state": {"terminated": terminated}})
    return status


def termination_message(running: RunningPod, exit_code: int) -> str:
    """The container's termination message file, or the log tail for FallbackToLogsOnError (as kubelet reads them)."""
    message = running.termination_path.read_bytes()[:TERMINATION_MESSAGE_LIMIT].decode(errors="replace").strip()
    if not message and exit_code != 0 and running.fallback_to_logs:
        lines = running.log_path.read_bytes().splitlines()[-FALLBACK_LOG_LINES:]
        message = b"\n".join(lines)[-FALLBACK_LOG_BYTES:].decode(errors="replace").strip()
    return message


def failed_status(pod: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
    """The status of a pod the local node cannot run: Failed, every container terminated with the reason."""
    stamp = now()
    containers = pod["spec"].get("containers", [])
    return {
        "phase": "Failed",
        "reason": reason,
        "message": message,
        "conditions": pod_conditions(False, reason),
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
