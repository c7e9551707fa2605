"""What a pod's container sees on the local node: its environment (env, envFrom, fieldRef and keyRef values,
`$(VAR)` expansion), simulated cluster DNS for Service addresses, and emptyDir volumes as per-pod directories."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

from localcluster import sim
from localcluster.node_api import Api, ApiError
from localcluster.pod_status import POD_IP

SERVICE_ADDRESS = re.compile(
    r"(?P<svc>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.(?P<ns>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.svc(?:\.cluster\.local)?:(?P<port>\d+)"
)
ENV_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class UnsupportedPod(Exception):
    """A pod this node cannot run; the reason becomes the pod's status.reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ContainerEnvironment:
    """Builds a container's process environment and resolves Service addresses, reading the API for both."""

    def __init__(self, api: Api, entrypoint: Path, env_file: Path | None) -> None:
        self.api = api
        self.entrypoint = entrypoint
        self.env_file = env_file

    def environment(
        self, pod: dict[str, Any], container: dict[str, Any], mounts: dict[str, Path], *, host_base: bool = True
    ) -> dict[str, str]:
        """The process environment: a minimal base (like an image's ENV; host_base=False, for a container whose
        image has its own, leaves it out), the env file, then the pod's env."""
        env: dict[str, str] = {}
        if host_base:
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
