"""Load generation: stages (Poisson rate, all-at-once, or closed-loop concurrency), warmup, deadlines, aborts.

No hidden client-side caps: at a rate every request is sent on its schedule however many are in flight.
Requests are started from the event loop (open loop) or straight from the engine's completion callback (closed
loop); completions are counted from whichever thread the engine reports them on, and the loop is woken only
when everything sent has finished or the server looks gone, never once per request.
Arrival times follow JetStream's draw (`np.random.seed(seed)` then one `exponential(1 / rate)` gap after each
request), but on an absolute schedule, so a slow event loop does not stretch later gaps.
"""

from __future__ import annotations

import asyncio
import gc
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from tpuserve.bench.client import Record, encode_request, max_stream_messages
from tpuserve.bench.datasets import Request
from tpuserve.bench.streams import Streams

# Codes that mean the server is gone rather than that one request failed: the run stops sending.
FATAL_CODES = frozenset({"UNAVAILABLE"})


OnDone = Callable[[Record], None]
StartCall = Callable[[Record, bytes, float | None, OnDone], None]


class Liveness(Protocol):
    """Whether the server answers now (gRPC HealthCheck, or HTTP GET /health)."""

    async def answers(self, timeout: float) -> bool: ...


@dataclass
class Stage:
    name: str
    request_rate: float | None = None  # math.inf = all at once; None with concurrency
    concurrency: int | None = None
    burstiness: float | None = None  # None = JetStream's Poisson draw; a value = vLLM's gamma arrivals
    max_concurrency: int | None = None  # open loop: at most this many in flight (vllm bench serve's semaphore)


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


def arrival_offsets(n: int, rate: float, seed: int, burstiness: float | None = None) -> list[float]:
    """Send times (seconds from stage start) of n requests: JetStream's exponential gaps for this seed, or with a
    burstiness vllm bench serve's gamma arrivals (vLLM 0.32 get_request): gaps gamma(shape=b, scale=1/(rate*b))
    from a RandomState(seed), the first request after the first gap, the cumulative times scaled so that the
    last one is n / rate (vLLM draws from its global numpy state, so its values differ; the law is the same)."""
    if math.isinf(rate):
        return [0.0] * n
    if burstiness is not None:
        if math.isinf(burstiness):
            times = np.arange(1, n + 1) / rate
        else:
            gaps = np.random.RandomState(seed).gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=n)
            times = np.cumsum(gaps)
            if n and times[-1] > 0:
                times = times * ((n / rate) / times[-1])
        return [float(x) for x in times]
    gaps = np.random.RandomState(seed).exponential(1.0 / rate, size=n)
    offsets = np.concatenate(([0.0], np.cumsum(gaps[:-1]))) if n else np.zeros(0)
    return [float(x) for x in offsets]


class _Completions:
    """Finished requests of one stage, counted from any thread; wakes the event loop when all sent are done."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_fatal: Callable[[Record], None]) -> None:
        self._lock = threading.Lock()
        self._loop = loop
        self._on_fatal = on_fatal
        self._idle: asyncio.Future[None] = loop.create_future()
        self.sent = 0
        self.done = 0
        self.sending = True

    def started(self) -> None:
        with self._lock:
            self.sent += 1

    def finished(self, record: Record) -> None:
        """The engine's on_done (any thread)."""
        with self._lock:
            self.done += 1
            idle = not self.sending and self.done == self.sent
        if record.code in FATAL_CODES:
            self._loop.call_soon_threadsafe(self._on_fatal, record)
        if idle:
            self._loop.call_soon_threadsafe(self._set_idle)

    def stop_sending(self) -> None:
        """No more starts (loop thread): from now on the last completion wakes the loop."""
        with self._lock:
            self.sending = False
            idle = self.done == self.sent
        if idle:
            self._set_idle()

    def _set_idle(self) -> None:
        if not self._idle.done():
            self._idle.set_result(None)

    async def wait(self, timeout: float | None, tick: Callable[[], None]) -> bool:
        """Wait until everything sent has finished (True) or `timeout` passes (False); `tick` every 0.2 s."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self._idle.done():
            step = 0.2 if end is None else min(0.2, end - time.monotonic())
            if step <= 0:
                return False
            try:
                await asyncio.wait_for(asyncio.shield(self._idle), step)
            except TimeoutError:
                tick()
        return True


class Runner:
    def __init__(
        self,
        client: Liveness,
        streams: Streams,
        request_timeout: float | None,
        seed: int,
        progress: Progress,
        run_deadline: float | None = None,
        encode: Callable[[Request], bytes] | None = None,
    ) -> None:
        self.encode = encode or (lambda r: encode_request(r.prompt_ids, r.max_tokens))
        self.client = client
        self.streams = streams
        self.request_timeout = request_timeout
        self.seed = seed
        self.progress = progress
        self.run_deadline = run_deadline  # time.monotonic() value, or None
        self.server_gone: str | None = None
        self.terminated: str | None = None  # set (with a task cancel) by a signal handler: stop, keep results

    async def run_stage(self, stage: Stage, requests: list[Request], warmup: bool = False) -> StageRun:
        payloads = [self.encode(r) for r in requests]
        records = [Record(i, max_messages=max_stream_messages(r.max_tokens)) for i, r in enumerate(requests)]
        run = StageRun(stage, requests, records, warmup=warmup)
        label = f"{'warmup' if warmup else stage.name}"
        stop = threading.Event()
        checking: set[asyncio.Task[None]] = set()

        async def confirm_gone(reason: str) -> None:
            # One UNAVAILABLE can be transient (a GOAWAY, a reconnect): the run stops only if the server
            # does not answer a HealthCheck either (no wait_for_ready, so a dead server fails at once).
            if not await self.client.answers(timeout=2.0) and self.server_gone is None:
                self.server_gone = reason
                stop.set()

        def on_fatal(record: Record) -> None:
            if self.server_gone is None and not checking:
                task = asyncio.ensure_future(confirm_gone(f"{record.code}: {record.detail}"))
                checking.add(task)
                task.add_done_callback(checking.discard)

        completions = _Completions(asyncio.get_running_loop(), on_fatal)

        def tick() -> None:
            self.progress.update(label, completions.done, len(requests))

        # No cyclic garbage is made on the hot path, and a collection pause would show up as client-added TTFT
        # (newer JetStream clients gc.disable() too): collect between stages only.
        gc.collect()
        gc.disable()
        cpu_start = time.process_time()
        try:
            run.start = time.perf_counter()
            try:
                if stage.concurrency is not None:
                    self._closed_loop(stage.concurrency, payloads, records, completions, stop, run)
                else:
                    rate = stage.request_rate if stage.request_rate is not None else math.inf
                    offsets = arrival_offsets(len(requests), rate, self.seed, stage.burstiness)
                    cap = stage.max_concurrency
                    await self._open_loop(offsets, payloads, records, completions, stop, run, tick, cap)
                completions.stop_sending()
                timeout = None if self.run_deadline is None else max(0.0, self.run_deadline - time.monotonic())
                if not await completions.wait(timeout, tick):
                    stop.set()
                    run.aborted = run.aborted or "run timeout reached: in-flight requests cancelled"
                    await self._cancel_in_flight(completions, "run timeout reached", tick)
            except asyncio.CancelledError:
                if self.terminated is None:
                    raise
                # Terminated (SIGTERM from Kubernetes): cancel what is in flight and report what was measured.
                stop.set()
                completions.stop_sending()
                await self._cancel_in_flight(completions, self.terminated, tick)
                run.aborted = f"{self.terminated}: in-flight requests cancelled, the rest not sent"
            if checking:
                await asyncio.gather(*checking, return_exceptions=True)
        finally:
            gc.enable()
        run.cpu_seconds = time.process_time() - cpu_start
        run.sent = completions.sent
        ended = [r.end for r in records[: run.sent] if r.end]
        run.end = max(ended) if ended else time.perf_counter()
        run.unsent = len(requests) - run.sent
        if self.server_gone and run.aborted is None and run.unsent:
            run.aborted = f"server unavailable ({self.server_gone}); stopped after {run.sent} of {len(requests)} sent"
        self.progress.update(label, completions.done, len(requests), force=True)
        return run

    async def _cancel_in_flight(self, completions: _Completions, why: str, tick: Callable[[], None]) -> None:
        """Cancel every call still running; their records say CANCELLED (bounded wait for the engine)."""
        self.streams.cancel_all(f"cancelled by the benchmark ({why})")
        await completions.wait(10.0, tick)

    def _deadline_passed(self) -> bool:
        return self.run_deadline is not None and time.monotonic() >= self.run_deadline

    async def _open_loop(
        self,
        offsets: list[float],
        payloads: list[bytes],
        records: list[Record],
        completions: _Completions,
        stop: threading.Event,
        run: StageRun,
        tick: Callable[[], None],
        max_concurrency: int | None = None,
    ) -> None:
        start_call: StartCall = self.streams.start
        started = completions.started
        finished: OnDone = completions.finished
        timeout = self.request_timeout
        start = run.start
        clock = time.perf_counter
        if max_concurrency is not None:
            start_call, finished = self._capped(max_concurrency, start_call, finished, stop)
        for i, offset in enumerate(offsets):
            delay = start + offset - clock()
            if delay > 0:
                await asyncio.sleep(delay)
                tick()
            if stop.is_set() or self._deadline_passed():
                if self._deadline_passed():
                    run.aborted = "run timeout reached before every request was sent"
                break
            started()
            start_call(records[i], payloads[i], timeout, finished)

    def _capped(
        self,
        cap: int,
        start_call: StartCall,
        finished: OnDone,
        stop: threading.Event,
    ) -> tuple[StartCall, OnDone]:
        """A start that waits while `cap` requests are in flight (vllm bench serve's --max-concurrency semaphore):
        a request due when every slot is busy is sent as soon as one frees, and timed from then, as vLLM times
        it. Requests still waiting when the run stops are finished as CANCELLED."""
        lock = threading.Lock()
        waiting: deque[tuple[Record, bytes, float | None]] = deque()
        in_flight = 0

        def start(record: Record, payload: bytes, timeout: float | None, _on_done: OnDone) -> None:
            nonlocal in_flight
            with lock:
                if in_flight >= cap:
                    waiting.append((record, payload, timeout))
                    return
                in_flight += 1
            start_call(record, payload, timeout, on_done)

        def on_done(record: Record) -> None:
            nonlocal in_flight
            while True:
                with lock:
                    if not waiting:
                        in_flight -= 1
                        break
                    nxt = waiting.popleft()
                if stop.is_set():
                    nxt[0].code, nxt[0].detail = "CANCELLED", "cancelled by the benchmark before it was sent"
                    nxt[0].send = nxt[0].end = time.perf_counter()
                    finished(nxt[0])
                    continue
                start_call(nxt[0], nxt[1], nxt[2], on_done)
                break
            finished(record)

        return start, on_done

    def _closed_loop(
        self,
        concurrency: int,
        payloads: list[bytes],
        records: list[Record],
        completions: _Completions,
        stop: threading.Event,
        run: StageRun,
    ) -> None:
        """Start `concurrency` requests; each completion starts the next (on the engine's thread)."""
        lock = threading.Lock()
        position = 0
        timeout = self.request_timeout
        start_call = self.streams.start

        def start_next() -> bool:
            nonlocal position
            with lock:
                if position >= len(payloads) or stop.is_set():
                    return False
                if self._deadline_passed():
                    run.aborted = run.aborted or "run timeout reached before every request was sent"
                    return False
                i = position
                position += 1
                # Counted before the previous request's completion is, so the stage never looks idle between.
                completions.started()
            start_call(records[i], payloads[i], timeout, on_done)
            return True

        def on_done(record: Record) -> None:
            start_next()
            completions.finished(record)

        for _ in range(min(concurrency, len(payloads))):
            if not start_next():
                break
