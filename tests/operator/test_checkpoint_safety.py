"""Issue 13, checkpoints, on the local cluster with the real operator and the GCS emulator: Ready only on the
converter's valid summary with paths under spec.output, an unreadable manifest stops everything (no Job, nothing
deleted), and the output a Ready InferenceServer loads from is never handed to a new conversion.

Simulated: the conversion Job pods (kwok: exit code and termination message from pod annotations) and the
server pods.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from localcluster import sim
from tests.operator.conftest import checkpoint, server
from tpuserve_dev.operator_harness import Objects, condition, convert_summary_json

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.mark.usefixtures("operator")
def test_job_success_without_a_valid_summary_is_not_ready(
    objects: Objects, namespace: str, gcs_bucket: str, meta_source: Callable[..., str]
) -> None:
    source = meta_source()
    elsewhere = {sim.TERMINATION_MESSAGE_ANNOTATION: convert_summary_json(f"gs://{gcs_bucket}/somewhere-else")}
    objects.apply(
        namespace,
        checkpoint("silent", source, f"gs://{gcs_bucket}/silent"),  # exit 0, no termination message
        checkpoint("astray", source, f"gs://{gcs_bucket}/astray", podAnnotations=elsewhere),
    )
    silent = objects.wait_phase("LlamaCheckpoint", namespace, "silent", "Ready", "Failed", timeout=90)
    assert silent["phase"] == "Failed", silent
    assert condition(silent, "Ready")["reason"] == "InvalidSummary"
    assert "exited 0 but left no readable summary" in silent["message"]
    assert "unscannedPath" not in silent
    astray = objects.wait_phase("LlamaCheckpoint", namespace, "astray", "Ready", "Failed", timeout=90)
    assert astray["phase"] == "Failed", astray
    assert f"does not lie under spec.output gs://{gcs_bucket}/astray" in astray["message"]


@pytest.mark.usefixtures("operator")
def test_unreadable_manifest_is_an_output_conflict_without_a_job(
    objects: Objects, namespace: str, gcs_client: Any, gcs_bucket: str, meta_source: Callable[..., str]
) -> None:
    bucket = gcs_client.bucket(gcs_bucket)
    bucket.blob("kept/tpuserve-manifest.json").upload_from_string(b'{"schemaVersion": "tpuserve.dev/other/v7"}')
    bucket.blob("kept/unscanned/checkpoints/0/items/d/0").upload_from_string(b"someone's weights")
    before = {b.name: b.generation for b in gcs_client.list_blobs(gcs_bucket, prefix="kept/")}
    objects.apply(namespace, checkpoint("kept", meta_source(), f"gs://{gcs_bucket}/kept"))
    status = objects.wait_phase("LlamaCheckpoint", namespace, "kept", "Ready", "Failed", timeout=60)
    assert status["phase"] == "Failed", status
    assert condition(status, "Ready")["reason"] == "OutputConflict"
    assert f"gs://{gcs_bucket}/kept/tpuserve-manifest.json exists but cannot be read" in status["message"]
    assert objects.items("jobs", namespace) == []
    assert {b.name: b.generation for b in gcs_client.list_blobs(gcs_bucket, prefix="kept/")} == before


@pytest.mark.usefixtures("operator")
def test_output_of_a_ready_server_is_not_rewritten(
    objects: Objects, namespace: str, gcs_bucket: str, meta_source: Callable[..., str]
) -> None:
    output = f"gs://{gcs_bucket}/served"
    converted = {sim.TERMINATION_MESSAGE_ANNOTATION: convert_summary_json(output)}
    objects.apply(
        namespace,
        checkpoint("served", meta_source(), output, podAnnotations=converted),
        server("live", ref="served"),
    )
    objects.wait_phase("LlamaCheckpoint", namespace, "served", "Ready", timeout=90)
    srv = objects.wait_phase("InferenceServer", namespace, "live", "Ready", timeout=90)
    assert srv["checkpointPath"] == f"{output}/unscanned/checkpoints/0/items"
    old_job = objects.get("jobs", namespace, "served-convert")
    assert old_job is not None

    # A new generation of the checkpoint into the same output would clear what the server loads: refused.
    patch = {"spec": {"weightDtype": "float32"}}
    objects.kubectl("patch", "llamacheckpoint", "served", "-n", namespace, "--type=merge", "-p", json.dumps(patch))
    status = objects.wait_phase("LlamaCheckpoint", namespace, "served", "Failed", timeout=60)
    assert condition(status, "Ready")["reason"] == "OutputInUse"
    assert "Ready InferenceServer(s) live load their weights from it" in status["message"]
    assert status["observedGeneration"] == 2
    jobs = objects.items("jobs", namespace)
    assert all(j["metadata"]["uid"] == old_job["metadata"]["uid"] for j in jobs)  # no conversion of generation 2
    assert objects.status("InferenceServer", namespace, "live")["phase"] == "Ready"
    assert any(e["reason"] == "OutputInUse" and e["type"] == "Warning" for e in objects.events(namespace, "served"))
