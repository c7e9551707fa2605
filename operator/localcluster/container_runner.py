"""The local node's container runner: a pod whose image exists in a Docker daemon the node was given
(`--docker-host`) runs as a real container of that image, the way a kubelet with a Docker runtime would run it.

What the container gets: the host network (the local cluster is all 127.0.0.1); the pod's command and args
(command replaces the image's ENTRYPOINT and CMD, args replace CMD, `$(VAR)` expanded, simulated cluster DNS
applied); the pod's env as the process runner resolves it (ContainerEnvironment: values, fieldRef, keyRefs,
envFrom, the node's env file) but not the node's own PATH/HOME, which the image's ENV provides; workingDir;
emptyDir, secret, configMap and projected (secret/configMap/downwardAPI/serviceAccountToken) volumes as host
directories the node makes under the pod's directory (a token is one the node requests for the pod, bound to it,
as kubelet does: the default `kube-api-access-*` volume works), hostPath as that path of this machine; the memory
limit; runAsUser/runAsGroup, fsGroup, privileged, allowPrivilegeEscalation false, capabilities and
readOnlyRootFilesystem; the termination-message file bind-mounted at the container's terminationMessagePath
(default /dev/termination-log), read back by the node as for a process.
Labels name the pod (POD_UID_LABEL, …), so `docker ps -a --filter label=…` finds a pod's container.

The container is created (`docker create`, so a bad option fails the pod before it counts as started) and then
followed by `docker start --attach`, whose output is the pod's log file, as for a process. Deletion: `docker stop
-t <grace>`, then `docker rm`. Not done: probes, restarts, CPU limits (the nominal node is larger than this
machine), token rotation, image pulls.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster import sim
from localcluster.node_api import Api
from localcluster.pod_env import UnsupportedPod

POD_UID_LABEL = "dev.tpuserve.local-node.pod-uid"
POD_NAMESPACE_LABEL = "dev.tpuserve.local-node.pod-namespace"
POD_NAME_LABEL = "dev.tpuserve.local-node.pod-name"
CONTAINER_LABEL = "dev.tpuserve.local-node.container"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
DOCKER_TIMEOUT_SECONDS = 120
QUANTITY = re.compile(r"^([0-9.]+(?:[eE][-+]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
FACTORS = {
    None: 1,
    "m": 1e-3,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


@dataclass(frozen=True)
class Mount:
    host: Path
    target: str
    read_only: bool = False


def quantity_bytes(quantity: str | int) -> int:
    """A Kubernetes quantity ("512Mi", "1G", "1e9", 1024) as a whole number of bytes (rounded up, as kubelet)."""
    match = QUANTITY.match(str(quantity).strip())
    if match is None:
        raise UnsupportedPod("CreateContainerConfigError", f"memory limit {quantity!r} is not a Kubernetes quantity")
    value = float(match.group(1)) * FACTORS[match.group(2)]
    return int(-(-value // 1))


def container_name(pod: dict[str, Any]) -> str:
    meta = pod["metadata"]
    return f"{sim.LOCAL_NODE_NAME}_{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"


def security_flags(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """The securityContext fields a container runtime enforces, as docker flags (the container's win)."""
    context = {**(pod["spec"].get("securityContext") or {}), **(container.get("securityContext") or {})}
    flags = []
    if "runAsUser" in context:
        user = str(context["runAsUser"])
        flags += ["--user", f"{user}:{context['runAsGroup']}" if "runAsGroup" in context else user]
    if "fsGroup" in (pod["spec"].get("securityContext") or {}):
        flags += ["--group-add", str(pod["spec"]["securityContext"]["fsGroup"])]
    if context.get("privileged"):
        flags.append("--privileged")
    if context.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    capabilities = context.get("capabilities") or {}
    flags += [f"--cap-drop={cap}" for cap in capabilities.get("drop") or []]
    flags += [f"--cap-add={cap}" for cap in capabilities.get("add") or []]
    if context.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    return flags


def create_argv(
    pod: dict[str, Any],
    container: dict[str, Any],
    *,
    env: dict[str, str],
    command: list[str],
    args: list[str],
    mounts: list[Mount],
    termination_file: Path,
) -> list[str]:
    """`docker create …` (without the `docker`) for the pod's one container; command/args already expanded."""
    meta = pod["metadata"]
    argv = ["create", "--name", container_name(pod), "--network", "host", "--hostname", meta["name"]]
    labels = {
        POD_UID_LABEL: meta["uid"],
        POD_NAMESPACE_LABEL: meta["namespace"],
        POD_NAME_LABEL: meta["name"],
        CONTAINER_LABEL: container["name"],
    }
    argv += [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]
    argv += [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]
    if container.get("workingDir"):
        argv += ["--workdir", container["workingDir"]]
    memory = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    if memory is not None:
        argv += ["--memory", str(quantity_bytes(memory))]
    argv += security_flags(pod, container)
    termination_target = container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
    for mount in [*mounts, Mount(termination_file, termination_target)]:
        read_only = ",readonly" if mount.read_only else ""
        argv += ["--mount", f"type=bind,source={mount.host},target={mount.target}{read_only}"]
    if command:
        argv += ["--entrypoint", command[0]]
    return [*argv, container["image"], *command[1:], *args]


class ContainerRunner:
    """The `docker` client against one daemon (DOCKER_HOST)."""

    def __init__(self, docker_host: str) -> None:
        self.env = {**os.environ, "DOCKER_HOST": docker_host}

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True, timeout=DOCKER_TIMEOUT_SECONDS
        )
        if check and result.returncode != 0:
            raise OSError(f"docker {args[0]} exited {result.returncode}: {result.stderr.strip()[-2000:]}")
        return result

    def has_image(self, image: str) -> bool:
        return self.docker("image", "inspect", "--format", "{{.Id}}", image, check=False).returncode == 0

    def create(self, argv: list[str]) -> str:
        """Create the container (removing a leftover of the same name first); returns its id."""
        self.docker("rm", "--force", argv[argv.index("--name") + 1], check=False)
        return self.docker(*argv).stdout.strip()

    def start_attached(self, container_id: str, log: Path) -> subprocess.Popen[bytes]:
        """`docker start --attach`: its output is the container's, its exit code the container's."""
        with log.open("wb") as out:
            return subprocess.Popen(
                ["docker", "start", "--attach", container_id],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def exit_state(self, container_id: str) -> tuple[int, bool] | None:
        """(exit code, OOM-killed) once the container has stopped (`docker wait`: the attached client may end
        first, e.g. killed); None when the daemon cannot say."""
        subprocess.run(["docker", "wait", container_id], env=self.env, capture_output=True, check=False)
        state = "{{.State.ExitCode}} {{.State.OOMKilled}}"
        result = self.docker("inspect", "--format", state, container_id, check=False)
        if result.returncode != 0:
            return None
        code, oom = result.stdout.split()
        return int(code), oom == "true"

    def stop(self, container_id: str, grace_seconds: int) -> None:
        self.docker("stop", "--time", str(max(grace_seconds, 0)), container_id, check=False)

    def remove(self, *container_ids: str) -> None:
        if container_ids:
            self.docker("rm", "--force", *container_ids, check=False)


class VolumeMaker:
    """Host directories for a container's volumes, filled as kubelet fills them (secret, configMap, projected and
    downwardAPI files; a fresh emptyDir), writable by any user where the pod may write (the image's user is not
    known to the node)."""

    def __init__(
        self,
        read_data: Callable[[str, dict[str, Any]], dict[str, str]],
        request_token: Callable[[dict[str, Any], dict[str, Any]], str],
    ) -> None:
        self.read_data = read_data  # (namespace, {"secretRef"|"configMapRef": ref}) -> {key: text}
        self.request_token = request_token  # (pod, serviceAccountToken source) -> a token bound to the pod

    def mounts(self, pod: dict[str, Any], container: dict[str, Any], volumes_dir: Path) -> list[Mount]:
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        made: dict[str, Path] = {}
        mounts = []
        for mount in container.get("volumeMounts") or []:
            name = mount["name"]
            if name not in made:
                if name not in volumes:
                    raise UnsupportedPod("CreateContainerConfigError", f"volumeMount {name!r} names no volume")
                made[name] = self.make(pod, volumes[name], volumes_dir / name)
            source = made[name] / mount["subPath"] if mount.get("subPath") else made[name]
            mounts.append(Mount(source, mount["mountPath"], bool(mount.get("readOnly"))))
        return mounts

    def make(self, pod: dict[str, Any], volume: dict[str, Any], directory: Path) -> Path:
        if "hostPath" in volume:  # this machine is the node
            return Path(volume["hostPath"]["path"])
        directory.mkdir(parents=True, exist_ok=True)
        if "emptyDir" in volume:
            directory.chmod(0o777)
            return directory
        namespace = pod["metadata"]["namespace"]
        sources = volume["projected"].get("sources", []) if "projected" in volume else [volume]
        for source in sources:
            if "secret" in source or "configMap" in source:
                self.write_keys(namespace, source, directory)
            elif "serviceAccountToken" in source:
                token_source = source["serviceAccountToken"]
                self.write(directory / token_source["path"], self.request_token(pod, token_source))
            elif "downwardAPI" in source:
                for item in source["downwardAPI"].get("items", []):
                    value = field_value(pod, item.get("fieldRef", {}).get("fieldPath", ""))
                    self.write(directory / item["path"], value)
            else:
                kinds = sorted(set(source) - {"name"})
                raise UnsupportedPod(
                    "CreateContainerConfigError",
                    f"volume {volume['name']!r}: {kinds} volumes are not supported on the local node's containers",
                )
        directory.chmod(0o755)
        return directory

    def write_keys(self, namespace: str, source: dict[str, Any], directory: Path) -> None:
        is_secret = "secret" in source
        ref = source["secret"] if is_secret else source["configMap"]
        name = ref.get("secretName") or ref.get("name")
        data = self.read_data(
            namespace, {"secretRef" if is_secret else "configMapRef": {"name": name, "optional": ref.get("optional")}}
        )
        items = ref.get("items") or [{"key": key, "path": key} for key in data]
        for item in items:
            if item["key"] not in data:
                if ref.get("optional"):
                    continue
                raise UnsupportedPod("CreateContainerConfigError", f"key {item['key']!r} not found in {name!r}")
            self.write(directory / item["path"], data[item["key"]])

    @staticmethod
    def write(path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o644)


def field_value(pod: dict[str, Any], path: str) -> str:
    """A downwardAPI file's content (the fields a volume may carry)."""
    meta = pod["metadata"]
    match = re.fullmatch(r"metadata\.(labels|annotations)(?:\['(.+)'\])?", path)
    if match and match.group(2):
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    if match:
        return "".join(f'{k}="{v}"\n' for k, v in sorted((meta.get(match.group(1)) or {}).items()))
    if path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return str(meta[path.split(".")[1]])
    raise UnsupportedPod("CreateContainerConfigError", f"downwardAPI field {path!r} is not supported here")


def service_account_token(api: Api, pod: dict[str, Any], source: dict[str, Any]) -> str:
    """A TokenRequest for the pod's service account, bound to the pod (the Node authorizer lets a node ask only for
    pods bound to it), with the source's audience and lifetime, as kubelet fills a projected token."""
    meta = pod["metadata"]
    spec: dict[str, Any] = {
        "audiences": [source["audience"]] if source.get("audience") else [],
        "expirationSeconds": int(source.get("expirationSeconds") or 3607),
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
    }
    account = pod["spec"].get("serviceAccountName") or "default"
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    response = api.call("POST", f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token", body)
    return str(response["status"]["token"])
