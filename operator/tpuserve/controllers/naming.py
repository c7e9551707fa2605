"""Names, labels and annotation keys of the children the operator creates. Pure."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tpuserve.api import API_VERSION, KINDS, BenchmarkRun, InferenceServer, LlamaCheckpoint

PART_OF = "tpuserve"
MANAGED_BY = "tpuserve-operator"

# app.kubernetes.io/* recommended labels.
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
# Which owner a child (and its pods) belongs to: the child-event handlers find the owner from these
# (tpuserve.dev/<singular>, e.g. tpuserve.dev/benchmarkrun).
OWNER_LABELS = {kind.KIND: f"{kind.GROUP}/{kind.SINGULAR}" for kind in KINDS}
LABEL_CHECKPOINT = OWNER_LABELS[LlamaCheckpoint.KIND]
LABEL_SERVER = OWNER_LABELS[InferenceServer.KIND]
LABEL_BENCHMARK = OWNER_LABELS[BenchmarkRun.KIND]
# Hash of the rendered child: the operator patches a child only when it differs.
ANNOTATION_SPEC_HASH = "tpuserve.dev/spec-hash"
# Generation of the owner the child was rendered from.
ANNOTATION_GENERATION = "tpuserve.dev/owner-generation"

MAX_NAME = 63  # Job and Service names end up in labels / DNS labels


def child_name(owner: str, suffix: str = "") -> str:
    """A deterministic child name: `<owner><suffix>`, shortened with a hash when over 63 characters."""
    name = f"{owner}{suffix}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    keep = MAX_NAME - len(suffix) - len(digest) - 1
    return f"{owner[:keep].rstrip('-.')}-{digest}{suffix}"


def job_name_convert(owner: str) -> str:
    return child_name(owner, "-convert")


def job_name_mirror(owner: str) -> str:
    """The Hugging Face mirror Job of a LlamaCheckpoint with format huggingface."""
    return child_name(owner, "-mirror")


def job_name_bench(owner: str) -> str:
    return child_name(owner, "-bench")


def server_name(owner: str) -> str:
    """Deployment and Service name (the Service name is the cluster DNS name clients use)."""
    return child_name(owner)


def labels(owner_kind: str, owner_name: str, app: str, component: str) -> dict[str, str]:
    value = owner_name if len(owner_name) <= MAX_NAME else child_name(owner_name)
    return {
        LABEL_NAME: app,
        LABEL_INSTANCE: value,
        LABEL_COMPONENT: component,
        LABEL_PART_OF: PART_OF,
        LABEL_MANAGED_BY: MANAGED_BY,
        OWNER_LABELS[owner_kind]: value,
    }


def owner_reference(kind: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "name": metadata["name"], "uid": metadata.get("uid", "")}


def spec_hash(obj: dict[str, Any]) -> str:
    """Hash of a rendered child without its own hash annotation."""
    clean = json.loads(json.dumps(obj, sort_keys=True))
    clean.get("metadata", {}).get("annotations", {}).pop(ANNOTATION_SPEC_HASH, None)
    return hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()[:16]
