"""The safety net: every RESYNC_SECONDS, reconcile each object that is not finished, reading from the API server
(not the cache), so a change the watch missed is found within that time. Every state change also arrives as an
event; this is one thread for the whole operator, not a kopf timer per object (a timer costs a finalizer, so a
PATCH, on every object and an asyncio task per object)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from tpuserve.api import BenchmarkPhase, BenchmarkRun, CheckpointPhase, LlamaCheckpoint
from tpuserve.controllers import kube

log = logging.getLogger(__name__)

RESYNC_SECONDS = 300
# Phases after which an object needs no resync (an InferenceServer is never finished: it can drift).
FINISHED = {
    LlamaCheckpoint.KIND: (CheckpointPhase.READY, CheckpointPhase.FAILED),
    BenchmarkRun.KIND: (BenchmarkPhase.SUCCEEDED, BenchmarkPhase.FAILED),
}


def _finished(kind: str, body: dict[str, Any]) -> bool:
    phase = (body.get("status") or {}).get("phase")
    return phase in FINISHED.get(kind, ())


def resync_once(
    ctx: kube.Context, reconcilers: Mapping[str, Callable[[kube.Context, str, str], None]], stop: threading.Event
) -> None:
    assert ctx.cache is not None
    fresh = replace(ctx, fresh_reads=True)
    for kind, reconcile in reconcilers.items():
        for namespace, name in ctx.cache.names(kind):
            body = ctx.cache.get(kind, namespace, name)
            if body is None or _finished(kind, body) or stop.is_set():
                continue
            try:
                reconcile(fresh, namespace, name)
            except Exception:
                log.exception("resync of %s %s/%s failed", kind, namespace, name)


def resync_forever(
    ctx: kube.Context, reconcilers: Mapping[str, Callable[[kube.Context, str, str], None]], stop: threading.Event
) -> None:
    while not stop.wait(RESYNC_SECONDS):
        resync_once(ctx, reconcilers, stop)
