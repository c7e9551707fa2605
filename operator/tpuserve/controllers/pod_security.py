"""Security contexts of the workload pods: Pod Security "restricted" wherever the image allows it. Pure.

- This project's images (bench, converter) run as uid 65532 (images/*.Dockerfile): their pods meet "restricted"
  (non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp).
- Google's images (maxengine-server, jetstream-http, inference-checkpoint) run as root and need it (the checkpoint
  script installs Python packages and clones MaxText into the image's file system): their pods meet "baseline"
  and every "restricted" rule except runAsNonRoot.
- The server container is privileged only when the operator setting `server_privileged` asks for it (GKE before
  1.28 gave TPU devices only to privileged containers). See docs/security.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The user (and group) the project's images create and run as.
WORKLOAD_UID = 65532

_RUNTIME_DEFAULT_SECCOMP = {"type": "RuntimeDefault"}
_UNPRIVILEGED_CONTAINER: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


@dataclass(frozen=True)
class PodSecurity:
    """The pod-level securityContext and the one for each container."""

    pod: dict[str, Any] = field(default_factory=dict)
    container: dict[str, Any] = field(default_factory=dict)


RESTRICTED = PodSecurity(
    pod={
        "runAsNonRoot": True,
        "runAsUser": WORKLOAD_UID,
        "runAsGroup": WORKLOAD_UID,
        "fsGroup": WORKLOAD_UID,
        "seccompProfile": _RUNTIME_DEFAULT_SECCOMP,
    },
    container=_UNPRIVILEGED_CONTAINER,
)
# "restricted" but for runAsNonRoot: for images that run as root.
ROOT_IMAGE = PodSecurity(pod={"seccompProfile": _RUNTIME_DEFAULT_SECCOMP}, container=_UNPRIVILEGED_CONTAINER)
# The operator patches a live Deployment with the rendered one (a merge: fields it omits stay), so each mode
# states the fields the other sets: the API server refuses privileged together with allowPrivilegeEscalation false.
# (A privileged container gets every capability whatever `capabilities` says.)
PRIVILEGED_SERVER: dict[str, Any] = {"privileged": True, "allowPrivilegeEscalation": True}
UNPRIVILEGED_SERVER: dict[str, Any] = {"privileged": False, **_UNPRIVILEGED_CONTAINER}


def server_container(privileged: bool) -> dict[str, Any]:
    """The JetStream server container's securityContext (the HTTP sidecar always gets ROOT_IMAGE.container)."""
    return PRIVILEGED_SERVER if privileged else UNPRIVILEGED_SERVER
