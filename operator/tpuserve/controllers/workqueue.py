"""Reconciles asked for by watch events (a child changed, a dependency became ready), coalesced per object.

A Job's creation brings a burst of events for one BenchmarkRun (the Job added, its pod added, the Job's status
counting the pod, the pod scheduled, ...). Each asks for a reconcile of the owner; a request for an object that is
already waiting is dropped, and a request waits COALESCE_SECONDS before it runs, so the burst ends in one or two
reconciles that read the latest state from the cache. A request made while the object's reconcile runs is kept
(the running one may have read the state before that change). kopf's event handlers only enqueue: they run on
kopf's event loop and never wait for a reconcile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import kopf

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace, name)
COALESCE_SECONDS = 0.5


class ReconcileQueue:
    def __init__(self, reconcile: Callable[[str, str, str], None], *, workers: int, delay: float = COALESCE_SECONDS):
        self._reconcile = reconcile
        self._delay = delay
        self._due: deque[tuple[float, Key]] = deque()  # FIFO = by due time (one delay for all)
        self._waiting: set[Key] = set()
        self._changed = threading.Condition()
        self._stopped = False
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def waiting(self) -> int:
        """How many objects wait for their reconcile."""
        with self._changed:
            return len(self._waiting)

    def add(self, kind: str, namespace: str, name: str) -> None:
        key = (kind, namespace, name)
        with self._changed:
            if key in self._waiting:
                return
            self._waiting.add(key)
            self._due.append((time.monotonic() + self._delay, key))
            self._changed.notify()

    def _next(self) -> Key | None:
        with self._changed:
            while not self._stopped:
                if not self._due:
                    self._changed.wait()
                    continue
                due, key = self._due[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._changed.wait(wait)
                    continue
                self._due.popleft()
                self._waiting.discard(key)
                return key
        return None

    def _work(self) -> None:
        while (key := self._next()) is not None:
            try:
                self._reconcile(*key)
            except kopf.TemporaryError as exc:
                log.info("reconcile of %s %s/%s deferred: %s", *key, exc)
            except Exception:
                log.exception("reconcile of %s %s/%s failed", *key)
