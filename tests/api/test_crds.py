"""The generated CRDs on a real API server: good objects are accepted (and defaulted as the models default
them), bad ones are refused with a message naming the field, BenchmarkRun specs cannot change, printer
columns show, and every status field the operator writes survives the structural schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.api.cases import INVALID, VALID, Case, base_benchmark, base_checkpoint, base_server, catalog_slices
from tests.api.conftest import REPO, create
from tests.api.statuses import benchmark_status, checkpoint_status, server_status
from tpuserve.api import BenchmarkRun, InferenceServer, LlamaCheckpoint

pytestmark = pytest.mark.cluster

MODELS = {m.KIND: m for m in (LlamaCheckpoint, InferenceServer, BenchmarkRun)}
EXAMPLES = sorted((REPO / "manifests" / "examples").rglob("*.yaml"))


def _normalise(value: Any) -> Any:
    """JSON as compared across the wire: whole floats as ints, empty maps and lists dropped."""
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(REPO)) for p in EXAMPLES])
def test_example_accepted(crds: Any, namespace: str, path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        result = create(crds, namespace, document)
        assert result.returncode == 0, result.stderr
        MODELS[document["kind"]].model_validate(document)


@pytest.mark.parametrize("case", VALID, ids=[c.id for c in VALID])
def test_valid_object_accepted_and_defaulted_like_the_model(crds: Any, namespace: str, case: Case) -> None:
    obj = case.object()
    result = create(crds, namespace, obj)
    assert result.returncode == 0, result.stderr
    stored_spec = json.loads(result.stdout)["spec"]
    model_spec = MODELS[case.kind].model_validate(obj).spec.to_wire()
    assert _normalise(stored_spec) == _normalise(model_spec)


def test_every_catalog_slice_accepted(crds: Any, namespace: str) -> None:
    """One InferenceServer per (accelerator spelling, single-host topology) the catalog knows, in one request."""
    items = []
    for index, (accelerator, topology) in enumerate(catalog_slices()):
        obj = base_server(f"slice-{index}")
        obj["spec"]["tpu"] = {"accelerator": accelerator, "topology": topology}
        items.append(obj)
    listing = {"apiVersion": "v1", "kind": "List", "items": items}
    result = crds.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-f", "-", check=False, input=json.dumps(listing)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("created (server dry run)") == len(items)


@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
def test_invalid_object_rejected_naming_the_field(crds: Any, namespace: str, case: Case) -> None:
    result = create(crds, namespace, case.object())
    assert result.returncode != 0, f"accepted: {case.object()}"
    field, *words = case.expected
    subject = field if field.startswith('"') else f"{field}: "
    assert subject in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_benchmark_spec_is_immutable(crds: Any, namespace: str) -> None:
    created = create(crds, namespace, base_benchmark("run1"), dry_run=False)
    assert created.returncode == 0, created.stderr
    changed = crds.kubectl(
        "patch",
        "-n",
        namespace,
        "benchmarkrun",
        "run1",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"numPrompts": 10}}),
        check=False,
    )
    assert changed.returncode != 0
    assert "spec: " in changed.stderr, changed.stderr
    assert "spec is immutable" in changed.stderr, changed.stderr
    # Metadata and status stay writable.
    crds.kubectl("label", "-n", namespace, "benchmarkrun", "run1", "team=serving")
    status = crds.kubectl(
        "patch",
        "-n",
        namespace,
        "benchmarkrun",
        "run1",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Running"}}),
        check=False,
    )
    assert status.returncode == 0, status.stderr
    # Other kinds' specs may change (a server is re-rolled, a checkpoint re-converted).
    create(crds, namespace, base_server("srv"), dry_run=False)
    resized = crds.kubectl(
        "patch",
        "-n",
        namespace,
        "inferenceserver",
        "srv",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"replicas": 2}}),
        check=False,
    )
    assert resized.returncode == 0, resized.stderr


STATUS_CASES = [
    ("llamacheckpoint", base_checkpoint, checkpoint_status, LlamaCheckpoint),
    ("inferenceserver", base_server, server_status, InferenceServer),
    ("benchmarkrun", base_benchmark, benchmark_status, BenchmarkRun),
]


@pytest.mark.parametrize(("resource", "base", "status", "model"), STATUS_CASES, ids=[c[0] for c in STATUS_CASES])
def test_operator_status_survives_the_schema(
    crds: Any, namespace: str, resource: str, base: Any, status: Any, model: Any
) -> None:
    obj = base("obj")
    created = create(crds, namespace, obj, dry_run=False)
    assert created.returncode == 0, created.stderr
    sent = status().to_wire()
    crds.kubectl(
        "patch",
        "-n",
        namespace,
        resource,
        "obj",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": sent}),
    )
    stored = json.loads(crds.kubectl("get", "-n", namespace, resource, "obj", "-o", "json").stdout)
    assert _normalise(stored["status"]) == _normalise(sent)  # nothing pruned, nothing changed
    assert model.model_validate(stored).status == status()


def _table(output: str) -> dict[str, str]:
    """`kubectl get` output (header + one row) as column -> value; columns start where header words start."""
    header, row = output.strip().splitlines()[:2]
    starts = [m.start() for m in re.finditer(r"(?<!\S)\S+(?: \S+)*", header)]
    names = [header[s:e].strip() for s, e in zip(starts, [*starts[1:], None], strict=True)]
    values = [row[s:e].strip() for s, e in zip(starts, [*starts[1:], None], strict=True)]
    return dict(zip(names, values, strict=True))


def test_printer_columns(crds: Any, namespace: str) -> None:
    for resource, base, status, _ in STATUS_CASES:
        create(crds, namespace, base("obj"), dry_run=False)
        crds.kubectl(
            "patch",
            "-n",
            namespace,
            resource,
            "obj",
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status().to_wire()}),
        )

    bench = _table(crds.kubectl("get", "-n", namespace, "bench", "obj").stdout)
    assert bench["PHASE"] == "Succeeded"
    assert bench["SERVER"] == "server"
    assert bench["REQ/S"] == "3.26"
    assert bench["OUTPUT TOK/S"] == "3061.78"
    assert bench["TTFT P50 MS"] == "140039.96"
    assert bench["TPOT P50 MS"] == "164.01"
    assert "AGE" in bench
    wide = _table(crds.kubectl("get", "-n", namespace, "bench", "obj", "-o", "wide").stdout)
    assert wide["DECODE TPOT P50 MS"] == "31.5"
    assert wide["$/M TOK"] == "0.871"

    server = _table(crds.kubectl("get", "-n", namespace, "infsrv", "obj").stdout)
    assert server["MODEL"] == "llama2-7b"
    assert server["ACCELERATOR"] == "v5e"
    assert server["TOPOLOGY"] == "2x4"
    assert server["READY"] == "1"
    assert server["PHASE"] == "Ready"
    assert server["ENDPOINT"] == "server.ns.svc.cluster.local:9000"

    checkpoint = _table(crds.kubectl("get", "-n", namespace, "lckpt", "obj").stdout)
    assert checkpoint["MODEL"] == "llama2-7b"
    assert checkpoint["PHASE"] == "Ready"

    everything = crds.kubectl("get", "-n", namespace, "tpuserve", "-o", "name").stdout.split()
    assert sorted(everything) == [
        "benchmarkrun.tpuserve.dev/obj",
        "inferenceserver.tpuserve.dev/obj",
        "llamacheckpoint.tpuserve.dev/obj",
    ]
