"""docs/install.md, "Uninstall when the operator is already gone": the operator puts no finalizer on its objects, so
deleting them with no operator running finishes; objects an earlier version finalized carry kopf's finalizer, the
one the section names, their deletion hangs, and the section's command, run as written, lets it finish."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from localcluster.wait import wait_for
from tests.operator.conftest import benchmark, server
from tpuserve_dev import REPO
from tpuserve_dev.operator_harness import Objects, OperatorProcess

pytestmark = pytest.mark.cluster

KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
SECTION = "## Uninstall when the operator is already gone"


def documented_command() -> str:
    text = (REPO / "docs" / "install.md").read_text()
    section = text.split(SECTION, 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, f"no bash block under {SECTION!r}"
    return match.group(1)


def test_the_section_names_the_finalizer_kopf_sets() -> None:
    section = (REPO / "docs" / "install.md").read_text().split(SECTION, 1)[1]
    assert f"`{KOPF_FINALIZER}`" in section
    import kopf

    assert kopf.OperatorSettings().persistence.finalizer == KOPF_FINALIZER


@pytest.mark.usefixtures("crds")
def test_the_operator_puts_no_finalizer_so_deletion_without_it_finishes(
    kube_cluster: Any, objects: Objects, namespace: str, tmp_path: Path
) -> None:
    operator = OperatorProcess(kube_cluster.kubeconfig, tmp_path / "operator.log", {"TPUSERVE_CHECK_GCS": "false"})
    operator.start()
    try:
        objects.apply(
            namespace,
            server("srv", path="gs://bkt/ckpt/0/items"),
            benchmark("run", target="10.0.0.1:9000", podAnnotations={"sim.tpuserve.dev/run-duration": "600s"}),
        )
        objects.wait_phase("BenchmarkRun", namespace, "run", "Running", timeout=60)
        wait_for(
            lambda: objects.status("InferenceServer", namespace, "srv").get("phase"),
            timeout=60,
            description="the server handled by the operator",
        )
    finally:
        operator.stop()
    for kind, name in (("InferenceServer", "srv"), ("BenchmarkRun", "run")):
        meta = (objects.get(kind, namespace, name) or {}).get("metadata", {})
        assert not meta.get("finalizers"), meta
        assert not [key for key in meta.get("annotations") or {} if key.startswith("tpuserve.dev/")], meta

    objects.kubectl("delete", "inferenceserver/srv", "benchmarkrun/run", "-n", namespace, "--timeout=60s")
    assert objects.get("InferenceServer", namespace, "srv") is None
    assert objects.get("BenchmarkRun", namespace, "run") is None


@pytest.mark.usefixtures("crds")
def test_deletion_of_objects_an_earlier_version_finalized_finishes_after_the_documented_command(
    kube_cluster: Any, objects: Objects, namespace: str
) -> None:
    """Operator versions that ran a kopf timer per object left kopf's finalizer on them."""
    finalized = {"finalizers": [KOPF_FINALIZER]}
    srv, run = server("srv", path="gs://bkt/ckpt/0/items"), benchmark("run", target="10.0.0.1:9000")
    for body in (srv, run):
        body["metadata"].update(finalized)
    objects.apply(namespace, srv, run)

    objects.kubectl("delete", "inferenceserver/srv", "benchmarkrun/run", "-n", namespace, "--wait=false")
    for kind, name in (("InferenceServer", "srv"), ("BenchmarkRun", "run")):
        stuck = objects.get(kind, namespace, name)
        assert stuck is not None, f"{kind} {name} already gone"
        assert stuck["metadata"].get("deletionTimestamp"), f"{kind} {name} is not being deleted"

    env = {
        **os.environ,
        "KUBECONFIG": str(kube_cluster.kubeconfig),
        "PATH": f"{kube_cluster.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", documented_command()], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "inferenceserver.tpuserve.dev/srv patched" in result.stdout, result.stdout
    assert "benchmarkrun.tpuserve.dev/run patched" in result.stdout, result.stdout
    wait_for(
        lambda: (
            objects.get("InferenceServer", namespace, "srv") is None
            and objects.get("BenchmarkRun", namespace, "run") is None
        ),
        timeout=30,
        description="the deleted objects gone",
    )
