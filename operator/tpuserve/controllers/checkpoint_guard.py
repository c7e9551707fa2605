"""What keeps a LlamaCheckpoint from destroying or mis-reporting a checkpoint:

- an output that a Ready InferenceServer loads from is never cleared or rewritten: a new conversion into it is
  refused (reason `OutputInUse`) rather than written elsewhere, because a new location would silently change
  `status.unscannedPath` under the user (and their servers would roll onto weights nobody checked yet); the
  message says how to proceed (another spec.output, or scale the server down first);
- Ready needs the converter's summary: ok, and its checkpoint paths under spec.output (a Job that exits 0 without
  one is not a conversion). Google's `inference-checkpoint` image writes no summary: its fixed output layout is
  taken as is (the one exception, documented).
"""

from __future__ import annotations

from typing import Any

from tpuserve.api import ConverterPreset, InferenceServer, LlamaCheckpointSpec, ServerPhase
from tpuserve.controllers import kube


def _under(path: str, base: str) -> bool:
    return path.startswith(base.rstrip("/") + "/")


def servers_loading_from(ctx: kube.Context, namespace: str, output: str) -> list[str]:
    """Names of the Ready InferenceServers in `namespace` whose loaded checkpoint lies under `output`."""
    names = []
    for item in kube.list_custom(ctx, InferenceServer.KIND, namespace):
        status = item.get("status") or {}
        path = status.get("checkpointPath") or ""
        if status.get("phase") == ServerPhase.READY and _under(path, output):
            names.append(str(item["metadata"]["name"]))
    return sorted(names)


def in_use_message(output: str, servers: list[str]) -> str:
    return (
        f"not converting into {output}: Ready InferenceServer(s) {', '.join(servers)} load their weights from it "
        "(a conversion clears and rewrites it); set another spec.output, or scale those servers to 0 replicas "
        "first, then edit this object to retry"
    )


def summary_problem(spec: LlamaCheckpointSpec, summary: Any) -> str | None:
    """Why a succeeded conversion Job does not make the checkpoint Ready, or None."""
    if spec.converter.preset == ConverterPreset.INFERENCE_CHECKPOINT:
        return None
    if summary is None:
        return "left no readable summary in its termination message"
    if not summary.ok:
        return f"its summary says it failed ({summary.reason}: {summary.message or ''})"
    for label, path in (("scannedPath", summary.scanned_path), ("unscannedPath", summary.unscanned_path)):
        if not path or not _under(path, spec.output):
            return f"its summary's {label} {path!r} does not lie under spec.output {spec.output}"
    return None
