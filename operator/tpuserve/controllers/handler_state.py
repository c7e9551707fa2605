"""kopf's per-object bookkeeping (handler progress, the last handled spec) kept in the operator's memory instead of
annotations on every object: kopf would otherwise PATCH each object after every handled change (one more API
request per object, and a write every other client sees).

What memory loses on a restart is harmless here: with no last-handled spec every object counts as created, and the
create/resume handler reconciles it anyway (reconciles are idempotent); a retry budget starts counting again. The
annotations of earlier operator versions are still removed when kopf purges a handler's progress, and a delayed
retry still wakes kopf with a touch annotation (kopf needs an event; the error path only).
"""

from __future__ import annotations

import threading

import kopf


class MemoryProgressStorage(kopf.AnnotationsProgressStorage):
    """Handler progress (attempts, retry times, first start) by object uid and handler id."""

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix=prefix)
        self._records: dict[tuple[str, str], kopf.ProgressRecord] = {}
        self._lock = threading.Lock()

    def fetch(self, *, key: kopf.HandlerId, body: kopf.Body) -> kopf.ProgressRecord | None:
        with self._lock:
            return self._records.get((body.metadata.uid or "", key))

    def store(self, *, key: kopf.HandlerId, record: kopf.ProgressRecord, body: kopf.Body, patch: kopf.Patch) -> None:
        del patch  # nothing goes to the object
        with self._lock:
            self._records[(body.metadata.uid or "", key)] = record

    def purge(self, *, key: kopf.HandlerId, body: kopf.Body, patch: kopf.Patch) -> None:
        with self._lock:
            self._records.pop((body.metadata.uid or "", key), None)
        super().purge(key=key, body=body, patch=patch)  # an earlier version's annotation, if any

    def forget(self, uid: str) -> None:
        with self._lock:
            for stored in [stored for stored in self._records if stored[0] == uid]:
                del self._records[stored]


class MemoryDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """The last handled essence (spec, labels, annotations) by object uid: what kopf diffs an update against."""

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix=prefix)
        self._essences: dict[str, kopf.BodyEssence] = {}
        self._lock = threading.Lock()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        with self._lock:
            return self._essences.get(body.metadata.uid or "")

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        del patch  # nothing goes to the object
        with self._lock:
            self._essences[body.metadata.uid or ""] = essence

    def forget(self, uid: str) -> None:
        with self._lock:
            self._essences.pop(uid, None)
