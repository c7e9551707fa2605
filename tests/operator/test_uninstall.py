"""docs/install.md, "Uninstall when the operator is already gone": the finalizer the real operator (kopf) puts on
its objects is the one the section names, deleting such an object with no operator running hangs, and the
section's command, run as written, lets the deletion finish."""

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
def test_deletion_without_the_operator_finishes_after_the_documented_command(
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

        def finalizers(kind: str, name: str) -> list[str]:
            found: list[str] = (objects.get(kind, namespace, name) or {}).get("metadata", {}).get("finalizers") or []
            return found

        def finalized() -> bool:
            return all(
                KOPF_FINALIZER in finalizers(k, n) for k, n in (("InferenceServer", "srv"), ("BenchmarkRun", "run"))
            )

        wait_for(finalized, timeout=60, interval=0.5, description="kopf's finalizer on the server and the run")
    finally:
        operator.stop()  # the operator is gone; its finalizers stay

    objects.kubectl("delete", "inferenceserver/srv", "benchmarkrun/run", "-n", namespace, "--wait=false")
    for kind, name in (("InferenceServer", "srv"), ("BenchmarkRun", "run")):
        stuck = objects.get(kind, namespace, name)
        assert stuck is not None, f"{kind} {name} already gone"
        assert stuck["metadata"].get("deletionTimestamp"), f"{kind} {name} already gone"

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
