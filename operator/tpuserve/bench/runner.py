"""Load generation: stages (Poisson rate, all-at-once, or closed-loop concurrency), warmup, deadlines, aborts.

No hidden client-side caps: at a rate every request is sent on its schedule however many are in flight.
Arrival times follow JetStream's draw (`np.random.seed(seed)` then one `exponential(1 / rate)` gap after each
request), but on an absolute schedule, so a slow event loop does not stretch later gaps.
"""

from __future__ import annotations

import asyncio
import gc
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tpuserve.bench.client import Client, Record, encode_request
from tpuserve.bench.datasets import Request

# Codes that mean the server is gone rather than that one request failed: the run stops sending.
FATAL_CODES = frozenset({"UNAVAILABLE"})


@dataclass
class Stage:
    name: str
    request_rate: float | None = None  # math.inf = all at once; None with concurrency
    concurrency: int | None = None


@dataclass
class StageRun:
    """Raw outcome of one stage: per-request records in request order, plus the timing frame."""

    stage: Stage
    requests: list[Request]
    records: list[Record]
    start: float = 0.0
    end: float = 0.0
    sent: int = 0
    aborted: str | None = None  # why the stage stopped early
    warmup: bool = False
    unsent: int = field(default=0)
    cpu_seconds: float = 0.0  # this process's CPU time (all threads) during the stage


class Progress:
    """A one-line progress bar on stderr, redrawn at most 5 times a second; disabled off a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._last = 0.0

    def update(self, label: str, done: int, total: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        width = 30
        filled = int(width * done / total) if total else width
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if force:
            sys.stderr.write("\n")
        sys.stderr.flush()


def arrival_offsets(n: int, rate: float, seed: int) -> list[float]:
    """Send times (seconds from stage start) of n requests: JetStream's exponential gaps for this seed."""
    if math.isinf(rate):
        return [0.0] * n
    gaps = np.random.RandomState(seed).exponential(1.0 / rate, size=n)
    offsets = np.concatenate(([0.0], np.cumsum(gaps[:-1]))) if n else np.zeros(0)
    return [float(x) for x in offsets]


class Runner:
    def __init__(
        self,
        client: Client,
        request_timeout: float | None,
        seed: int,
        progress: Progress,
        run_deadline: float | None = None,
    ) -> None:
        self.client = client
        self.request_timeout = request_timeout
        self.seed = seed
        self.progress = progress
        self.run_deadline = run_deadline  # time.monotonic() value, or None
        self.server_gone: str | None = None
        self.terminated: str | None = None  # set (with a task cancel) by a signal handler: stop, keep results
        self._inflight: set[asyncio.Future[Any]] = set()

    async def run_stage(self, stage: Stage, requests: list[Request], warmup: bool = False) -> StageRun:
        payloads = [encode_request(r.prompt_ids, r.max_tokens) for r in requests]
        records = [Record(i) for i in range(len(requests))]
        run = StageRun(stage, requests, records, warmup=warmup)
        done = 0
        label = f"{'warmup' if warmup else stage.name}"
        stop = asyncio.Event()

        checking: set[asyncio.Task[None]] = set()

        async def confirm_gone(reason: str) -> None:
            # One UNAVAILABLE can be transient (a GOAWAY, a reconnect): the run stops only if the server
            # does not answer a HealthCheck either (no wait_for_ready, so a dead server fails at once).
            if not await self.client.answers(timeout=2.0) and self.server_gone is None:
                self.server_gone = reason
                stop.set()

        def finished(record: Record) -> None:
            nonlocal done
            done += 1
            if record.code in FATAL_CODES and self.server_gone is None and not checking:
                task = asyncio.ensure_future(confirm_gone(f"{record.code}: {record.detail}"))
                checking.add(task)
                task.add_done_callback(checking.discard)
            self.progress.update(label, done, len(requests))

        # No cyclic garbage is made on the hot path, and a collection pause would show up as client-added TTFT
        # (newer JetStream clients gc.disable() too): collect between stages only.
        gc.collect()
        gc.disable()
        cpu_start = time.process_time()
        try:
            run.start = time.perf_counter()
            try:
                if stage.concurrency is not None:
                    await self._closed_loop(stage.concurrency, payloads, records, finished, stop, run)
                else:
                    rate = stage.request_rate if stage.request_rate is not None else math.inf
                    offsets = arrival_offsets(len(requests), rate, self.seed)
                    await self._open_loop(offsets, payloads, records, finished, stop, run)
            except asyncio.CancelledError:
                if self.terminated is None:
                    raise
                # Terminated (SIGTERM from Kubernetes): cancel what is in flight and report what was measured.
                pending = [t for t in self._inflight if not t.done()]
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                run.aborted = f"{self.terminated}: in-flight requests cancelled, the rest not sent"
            finally:
                self._inflight.clear()
            if checking:
                await asyncio.gather(*checking, return_exceptions=True)
        finally:
            gc.enable()
        run.cpu_seconds = time.process_time() - cpu_start
        ended = [r.end for r in records[: run.sent] if r.end]
        run.end = max(ended) if ended else time.perf_counter()
        run.unsent = len(requests) - run.sent
        if self.server_gone and run.aborted is None and run.unsent:
            run.aborted = f"server unavailable ({self.server_gone}); stopped after {run.sent} of {len(requests)} sent"
        self.progress.update(label, done, len(requests), force=True)
        return run

    async def _wait_or_stop(self, tasks: set[asyncio.Task[Record]], stop: asyncio.Event, run: StageRun) -> None:
        """Wait for in-flight requests; at the run deadline cancel them (their records say CANCELLED)."""
        if not tasks:
            return
        timeout = None if self.run_deadline is None else max(0.0, self.run_deadline - time.monotonic())
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        if pending:
            run.aborted = run.aborted or "run timeout reached: in-flight requests cancelled"
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _deadline_passed(self) -> bool:
        return self.run_deadline is not None and time.monotonic() >= self.run_deadline

    async def _open_loop(
        self,
        offsets: list[float],
        payloads: list[bytes],
        records: list[Record],
        finished: Callable[[Record], None],
        stop: asyncio.Event,
        run: StageRun,
    ) -> None:
        tasks: set[asyncio.Task[Record]] = set()
        decode = self.client.decode
        timeout = self.request_timeout
        start = run.start
        clock = time.perf_counter
        for i, offset in enumerate(offsets):
            delay = start + offset - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            if stop.is_set() or self._deadline_passed():
                if self._deadline_passed():
                    run.aborted = "run timeout reached before every request was sent"
                break
            task = asyncio.ensure_future(decode(records[i], payloads[i], timeout))
            task.add_done_callback(lambda t: None if t.cancelled() else finished(t.result()))
            tasks.add(task)
            self._inflight.add(task)
            run.sent = i + 1
        await self._wait_or_stop(tasks, stop, run)

    async def _closed_loop(
        self,
        concurrency: int,
        payloads: list[bytes],
        records: list[Record],
        finished: Callable[[Record], None],
        stop: asyncio.Event,
        run: StageRun,
    ) -> None:
        position = 0
        decode = self.client.decode
        timeout = self.request_timeout

        async def worker() -> None:
            nonlocal position
            while position < len(payloads) and not stop.is_set() and not self._deadline_passed():
                i = position
                position += 1
                run.sent = max(run.sent, i + 1)
                finished(await decode(records[i], payloads[i], timeout))

        workers = {asyncio.ensure_future(worker()) for _ in range(min(concurrency, len(payloads)))}
        self._inflight.update(workers)
        timeout_s = None if self.run_deadline is None else max(0.0, self.run_deadline - time.monotonic())
        _, pending = await asyncio.wait(workers, timeout=timeout_s)
        if pending:
            run.aborted = "run timeout reached: in-flight requests cancelled"
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._deadline_passed() and run.sent < len(payloads):
            run.aborted = run.aborted or "run timeout reached before every request was sent"
