"""JetStream children rendered from the server examples, written once from the renderer as it was before the
vllm-tpu runtime existed (`PYTHONPATH=<old tree>/operator python -m tests.operator.jetstream_snapshots`), so
that test_render proves every JetStream object still renders byte-for-byte as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tpuserve.api import InferenceServerSpec
from tpuserve.controllers import render
from tpuserve.settings import OperatorSettings

REPO = Path(__file__).resolve().parents[2]
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
OWNER: dict[str, Any] = {"name": "server", "namespace": "team-a", "uid": "0b4c3f9e-1111-2222-3333-444455556666"}
CHECKPOINT = "gs://bucket/llama2-7b/maxtext/unscanned/checkpoints/0/items"


def example_specs() -> dict[str, dict[str, Any]]:
    """Every InferenceServer example under manifests/examples, by directory name."""
    specs: dict[str, dict[str, Any]] = {}
    for path in sorted((REPO / "manifests" / "examples").glob("*/server.yaml")):
        obj = yaml.safe_load(path.read_text())
        if obj["spec"].get("runtime", "jetstream-maxtext") == "jetstream-maxtext":
            specs[path.parent.name] = obj["spec"]
    return specs


def rendered(spec: dict[str, Any]) -> str:
    """The Deployment, Service, PodMonitoring and ServiceMonitor of one spec, as stable JSON text."""
    typed = InferenceServerSpec.model_validate(spec)
    settings = OperatorSettings()
    children = [
        render.render_deployment(typed, OWNER, settings, CHECKPOINT),
        render.render_service(typed, OWNER),
        render.render_pod_monitoring(OWNER),
        render.render_service_monitor(OWNER),
    ]
    return json.dumps(children, indent=1, sort_keys=True) + "\n"


def main() -> None:
    SNAPSHOTS.mkdir(exist_ok=True)
    for name, spec in example_specs().items():
        (SNAPSHOTS / f"jetstream-{name}.json").write_text(rendered(spec))


if __name__ == "__main__":
    main()
