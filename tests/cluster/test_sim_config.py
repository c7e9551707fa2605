"""kwok's stage file and localcluster.sim spell the same annotations; the stages parse (no cluster needed)."""

from __future__ import annotations

import re

import yaml

from localcluster import sim
from localcluster.components import KWOK_STAGES


def stages() -> dict[str, dict[str, object]]:
    documents = list(yaml.safe_load_all(KWOK_STAGES.read_text()))
    return {d["metadata"]["name"]: d for d in documents}


def test_every_stage_is_a_kwok_stage_for_pods_or_nodes() -> None:
    loaded = stages()

    assert set(loaded) == {"node-ready", "pod-start", "job-pod-exit", "pod-stop", "pod-remove"}
    for stage in loaded.values():
        assert stage["apiVersion"] == "kwok.x-k8s.io/v1alpha1"
        assert stage["kind"] == "Stage"


def test_stage_templates_read_the_contract_annotations() -> None:
    text = KWOK_STAGES.read_text()
    for annotation in (
        sim.EXIT_CODE_ANNOTATION,
        sim.TERMINATION_MESSAGE_ANNOTATION,
        sim.READY_ANNOTATION,
        sim.RUN_DURATION_ANNOTATION,
    ):
        assert f'"{annotation}"' in text, annotation
    # Every sim.tpuserve.dev key the stages read is one of the constants (no typo'd annotation).
    keys = set(re.findall(r"sim\.tpuserve\.dev/[a-z-]+", text))
    assert keys == {
        sim.EXIT_CODE_ANNOTATION,
        sim.TERMINATION_MESSAGE_ANNOTATION,
        sim.READY_ANNOTATION,
        sim.RUN_DURATION_ANNOTATION,
    }


def test_local_node_placement_matches_the_contract() -> None:
    placement = sim.local_node_placement()

    assert placement["nodeSelector"] == {"tpuserve.dev/local-node": "true"}
    assert placement["tolerations"] == [
        {"key": "tpuserve.dev/local-node", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    ]
