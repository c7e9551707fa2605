"""The local node's container runner, its pure parts: a pod spec -> `docker create` argv, Kubernetes memory
quantities, and the host directories made for a container's volumes. (The runner against a real Docker daemon:
tests/images/test_local_node_containers.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localcluster.container_runner import (
    POD_UID_LABEL,
    Mount,
    VolumeMaker,
    container_name,
    create_argv,
    quantity_bytes,
)
from localcluster.pod_env import UnsupportedPod

UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def bench_pod(**container: Any) -> dict[str, Any]:
    """A pod as the operator renders a benchmark Job's (restricted security context, one container)."""
    return {
        "metadata": {"name": "run-bench-x7", "namespace": "team-a", "uid": UID, "labels": {"app": "bench"}},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532},
            "containers": [
                {
                    "name": "bench",
                    "image": "ghcr.io/tpuserve/bench:0.1.0",
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    "resources": {"limits": {"memory": "4Gi"}},
                    **container,
                }
            ],
        },
    }


def argv_for(pod: dict[str, Any], **kwargs: Any) -> list[str]:
    values: dict[str, Any] = {"env": {}, "command": [], "args": [], "mounts": [], "termination_file": Path("/n/t")}
    return create_argv(pod, pod["spec"]["containers"][0], **{**values, **kwargs})


def flag_values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def test_args_only_keep_the_image_entrypoint_and_follow_the_image() -> None:
    pod = bench_pod()
    argv = argv_for(pod, args=["bench", "run", "--target", "127.0.0.1:9000"], env={"A": "1", "B": "x=y"})

    image_at = argv.index("ghcr.io/tpuserve/bench:0.1.0")
    assert argv[image_at + 1 :] == ["bench", "run", "--target", "127.0.0.1:9000"]
    assert "--entrypoint" not in argv
    assert argv[:3] == ["create", "--name", container_name(pod)]
    assert flag_values(argv, "--network") == ["host"]
    assert flag_values(argv, "--env") == ["A=1", "B=x=y"]
    assert f"{POD_UID_LABEL}={UID}" in flag_values(argv, "--label")


def test_command_replaces_the_entrypoint_and_the_rest_goes_before_args() -> None:
    argv = argv_for(bench_pod(), command=["python3", "-m", "mod"], args=["--flag"])

    assert flag_values(argv, "--entrypoint") == ["python3"]
    assert argv[argv.index("ghcr.io/tpuserve/bench:0.1.0") + 1 :] == ["-m", "mod", "--flag"]


def test_security_context_memory_and_working_dir() -> None:
    argv = argv_for(bench_pod(workingDir="/opt/maxtext"))

    assert flag_values(argv, "--user") == ["65532:65532"]
    assert flag_values(argv, "--group-add") == ["65532"]
    assert flag_values(argv, "--security-opt") == ["no-new-privileges"]
    assert "--cap-drop=ALL" in argv
    assert "--privileged" not in argv
    assert "--read-only" not in argv
    assert flag_values(argv, "--memory") == [str(4 * 2**30)]
    assert flag_values(argv, "--workdir") == ["/opt/maxtext"]


def test_a_privileged_read_only_container_with_its_own_user() -> None:
    context = {"privileged": True, "readOnlyRootFilesystem": True, "runAsUser": 0}
    pod = bench_pod(securityContext=context, resources={})
    del pod["spec"]["securityContext"]

    argv = argv_for(pod)

    assert flag_values(argv, "--user") == ["0"]
    assert "--privileged" in argv
    assert "--read-only" in argv
    assert "--memory" not in argv
    assert "--security-opt" not in argv


def test_mounts_and_the_termination_file_at_its_path() -> None:
    mounts = [Mount(Path("/n/v/scratch"), "/var/tmp/x"), Mount(Path("/n/v/key"), "/etc/key", read_only=True)]

    default = flag_values(argv_for(bench_pod(), mounts=mounts), "--mount")
    custom = flag_values(argv_for(bench_pod(terminationMessagePath="/tmp/msg")), "--mount")

    assert default == [
        "type=bind,source=/n/v/scratch,target=/var/tmp/x",
        "type=bind,source=/n/v/key,target=/etc/key,readonly",
        "type=bind,source=/n/t,target=/dev/termination-log",
    ]
    assert custom == ["type=bind,source=/n/t,target=/tmp/msg"]


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("512Mi", 512 * 2**20), ("1G", 10**9), ("1.5Gi", 3 * 2**29), ("1e3", 1000), (2048, 2048), ("100m", 1)],
)
def test_memory_quantities(quantity: str | int, expected: int) -> None:
    assert quantity_bytes(quantity) == expected


def test_a_memory_limit_that_is_no_quantity_fails_the_pod_with_a_reason() -> None:
    with pytest.raises(UnsupportedPod, match="not a Kubernetes quantity") as error:
        argv_for(bench_pod(resources={"limits": {"memory": "lots"}}))
    assert error.value.reason == "CreateContainerConfigError"


def data_source(namespace: str, ref: dict[str, Any]) -> dict[str, str]:
    """Secret and ConfigMap data as the node reads it from the API (decoded), here from a table."""
    table = {("team-a", "secretRef", "api-key"): {"key": "s3cret"}, ("team-a", "configMapRef", "cfg"): {"a": "1"}}
    kind = next(iter(ref))
    return table.get((namespace, kind, ref[kind]["name"]), {})


def token_source(pod: dict[str, Any], source: dict[str, Any]) -> str:
    """A TokenRequest's answer, here the pod and audience it would be bound to."""
    return f"token-for-{pod['metadata']['name']}-{source.get('audience', 'api')}"


def test_volumes_become_host_directories_with_the_pod_data(tmp_path: Path) -> None:
    pod = bench_pod(
        volumeMounts=[
            {"name": "scratch", "mountPath": "/var/tmp/x"},
            {"name": "key", "mountPath": "/etc/key", "readOnly": True},
            {"name": "info", "mountPath": "/etc/info"},
            {"name": "host", "mountPath": "/work", "readOnly": True},
        ]
    )
    pod["spec"]["volumes"] = [
        {"name": "scratch", "emptyDir": {}},
        {"name": "key", "secret": {"secretName": "api-key", "items": [{"key": "key", "path": "file"}]}},
        {
            "name": "info",
            "projected": {
                "sources": [
                    {"configMap": {"name": "cfg"}},
                    {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                ]
            },
        },
        {"name": "host", "hostPath": {"path": "/srv/data"}},
    ]

    mounts = VolumeMaker(data_source, token_source).mounts(pod, pod["spec"]["containers"][0], tmp_path)

    assert mounts == [
        Mount(tmp_path / "scratch", "/var/tmp/x"),
        Mount(tmp_path / "key", "/etc/key", read_only=True),
        Mount(tmp_path / "info", "/etc/info"),
        Mount(Path("/srv/data"), "/work", read_only=True),
    ]
    assert (tmp_path / "scratch").stat().st_mode & 0o777 == 0o777  # the image's user writes there
    assert (tmp_path / "key" / "file").read_text() == "s3cret"
    assert (tmp_path / "info" / "a").read_text() == "1"
    assert (tmp_path / "info" / "name").read_text() == "run-bench-x7"
    assert (tmp_path / "info" / "token").read_text() == "token-for-run-bench-x7-api"


def test_an_unsupported_volume_kind_fails_the_pod_with_a_reason(tmp_path: Path) -> None:
    pod = bench_pod(volumeMounts=[{"name": "data", "mountPath": "/data"}])
    pod["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "x"}}]

    with pytest.raises(UnsupportedPod, match="persistentVolumeClaim"):
        VolumeMaker(data_source, token_source).mounts(pod, pod["spec"]["containers"][0], tmp_path)
