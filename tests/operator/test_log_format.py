"""TPUSERVE_LOG_FORMAT=json on the real operator process: every line it writes is a JSON object Cloud Logging
reads as a structured entry, and a handler's line names the object it handled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from localcluster.wait import wait_for
from tests.operator.conftest import operator_env, server
from tpuserve_dev.operator_harness import Objects, OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

HARNESS_MARK = "===== start #"  # the harness's own separator in the log file, not the operator's


def json_lines(log: Path) -> list[dict[str, Any]]:
    lines = [line for line in log.read_text().splitlines() if line.strip() and not line.startswith(HARNESS_MARK)]
    return [json.loads(line) for line in lines]  # a line that is not JSON fails here, with the line in the error


@pytest.mark.usefixtures("crds")
def test_json_log_lines_for_cloud_logging(
    kube_cluster: Any, gcs_emulator: str, tiny_arch_file: Path, objects: Objects, namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "operator.log"
    process = OperatorProcess(
        kube_cluster.kubeconfig, log, operator_env(gcs_emulator, tiny_arch_file, TPUSERVE_LOG_FORMAT="json")
    )
    process.start()
    try:
        objects.apply(namespace, server("waits-for-checkpoint", ref="not-there"))

        def handled() -> list[dict[str, Any]]:
            return [e for e in json_lines(log) if e.get("object", {}).get("name") == "waits-for-checkpoint"]

        about_server = wait_for(handled, timeout=60, description="a log line about the InferenceServer")
    finally:
        process.stop()
    entries = json_lines(log)
    assert entries
    for entry in entries:
        assert entry["severity"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}, entry
        assert isinstance(entry["message"], str), entry
        assert entry["time"].endswith("Z"), entry
        assert entry["logging.googleapis.com/labels"]["logger"], entry
    labels = about_server[0]["logging.googleapis.com/labels"]
    assert labels["k8s-namespace"] == namespace
    assert labels["k8s-name"] == "waits-for-checkpoint"
