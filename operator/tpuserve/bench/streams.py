"""Decode streams: start a call, time every stream message on receipt, hand back the finished record.

Two engines behind one interface (`start`, `cancel_all`, `close`):

- `CompletionQueueStreams` (the default, `--engine cq`): one gRPC core channel per connection and one receiver
  thread per channel that takes events straight off the channel's completion queue. A stream message costs one
  completion-queue event, a clock read, two list appends and the next receive operation: about half of what a
  grpc.aio stream iterator costs (no asyncio future, task step or callback per message). It uses grpcio's
  Cython layer (`grpc._cython.cygrpc`, what `grpc`'s synchronous channel is built on), which is not a public
  API: `available()` checks for it and the client falls back to the asyncio engine if it ever changes shape.
- `AioStreams` (`--engine aio`): one grpc.aio task per request. Portable, slower.

`on_done(record)` is called once per request, from the receiver thread (cq) or the event loop (aio), so callers
must be thread-safe; `decode_one` wraps one call for an asyncio caller.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import grpc

from tpuserve.bench.client import (
    CLIENT_ERROR,
    DECODE_METHOD,
    HEALTH_METHOD,
    Record,
    channel_options,
    end_status,
    overlong_detail,
)

OnDone = Callable[[Record], None]
CANCELLED = grpc.StatusCode.CANCELLED.name
# gRPC core status codes (ints) to names, from the public enum (its values are (int, name) pairs).
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


class Streams(Protocol):
    """What the runner needs from an engine."""

    def start(self, record: Record, payload: bytes, timeout: float | None, on_done: OnDone) -> None: ...

    def cancel_all(self, detail: str) -> None: ...

    async def close(self) -> None: ...


try:  # grpcio's Cython layer; absent or different in some future grpcio: then only the asyncio engine runs
    from grpc._cython import cygrpc
except ImportError:  # pragma: no cover - depends on the installed grpcio
    cygrpc = None


def available() -> bool:
    """Whether this grpcio has the completion-queue calls the fast engine uses."""
    needed = ("integrated_call", "next_call_event", "close")
    ops = (
        "SendInitialMetadataOperation",
        "SendMessageOperation",
        "SendCloseFromClientOperation",
        "ReceiveInitialMetadataOperation",
        "ReceiveMessageOperation",
        "ReceiveStatusOnClientOperation",
    )
    return (
        cygrpc is not None
        and all(hasattr(cygrpc.Channel, name) for name in needed)
        and all(hasattr(cygrpc, name) for name in ops)
    )


class _Stream:
    """One call in flight on the completion-queue engine; also the tag of its receive-message operations."""

    __slots__ = ("arrivals", "call", "limit", "messages", "on_done", "open_parts", "record")

    def __init__(self, record: Record, on_done: OnDone) -> None:
        self.record = record
        self.arrivals = record.arrivals
        self.messages = record.messages
        self.limit = record.max_messages or sys.maxsize
        self.on_done = on_done
        self.call: Any = None
        # The message stream and the status both have to end before the request is finished (core may
        # complete them in either order).
        self.open_parts = 2


class _Status:
    """Tag of a call's receive-status operation."""

    __slots__ = ("stream",)

    def __init__(self, stream: _Stream) -> None:
        self.stream = stream


class _Wake:
    """Tag of the HealthCheck call `close()` sends so that a blocked receiver thread wakes up and exits."""

    __slots__ = ()


_WAKE = _Wake()


class CompletionQueueStreams:
    """Decode calls on gRPC core channels, their events taken off each channel's queue by its own thread."""

    def __init__(self, target: str, channels: int = 1) -> None:
        if not available():  # pragma: no cover - depends on the installed grpcio
            raise RuntimeError("this grpcio has no completion-queue channel API; use --engine aio")
        options = tuple(channel_options())
        self._channels = [cygrpc.Channel(target.encode(), options, None) for _ in range(channels)]
        self._next = 0
        self._inflight: set[_Stream] = set()
        # Held from integrated_call() until the call is stored on its stream: a receiver thread that gets the
        # stream's first message in between (possible after a forced GIL switch) waits on it instead of finding
        # no call to ask for the next message.
        self._starting = threading.Lock()
        self._closing = False
        self._threads = [
            threading.Thread(target=self._receive, args=(ch,), name=f"tpuserve-cq-{i}", daemon=True)
            for i, ch in enumerate(self._channels)
        ]
        for thread in self._threads:
            thread.start()

    def start(self, record: Record, payload: bytes, timeout: float | None, on_done: OnDone) -> None:
        """Send one Decode call (from any thread); `record.send` is taken just before it goes out."""
        channel = self._channels[self._next]
        self._next = (self._next + 1) % len(self._channels)
        stream = _Stream(record, on_done)
        deadline = None if timeout is None else time.time() + timeout
        self._inflight.add(stream)
        failure: str | None = None
        self._starting.acquire()
        try:
            record.send = time.perf_counter()
            stream.call = channel.integrated_call(
                0,
                DECODE_METHOD.encode(),
                None,
                deadline,
                (),
                None,
                (
                    (
                        (
                            cygrpc.SendInitialMetadataOperation((), 0),
                            cygrpc.SendMessageOperation(payload, 0),
                            cygrpc.SendCloseFromClientOperation(0),
                            cygrpc.ReceiveInitialMetadataOperation(0),
                        ),
                        None,
                    ),
                    ((cygrpc.ReceiveMessageOperation(0),), stream),
                    ((cygrpc.ReceiveStatusOnClientOperation(0),), _Status(stream)),
                ),
            )
        except Exception as exc:  # a closed channel or a core error: this request failed, the run goes on
            failure = f"could not start the call: {type(exc).__name__}: {exc}"
        finally:
            self._starting.release()
        if failure is not None:
            self._inflight.discard(stream)
            record.end = time.perf_counter()
            record.code = CLIENT_ERROR
            record.detail = failure
            on_done(record)

    def cancel_all(self, detail: str) -> None:
        with self._starting:  # no call half-started: every stream in flight has its call
            streams = list(self._inflight)
        for stream in streams:
            if stream.call is not None:
                stream.call.cancel(cygrpc.StatusCode.cancelled, detail)

    def _finish(self, stream: _Stream) -> None:
        stream.record.end = time.perf_counter()
        self._inflight.discard(stream)
        stream.on_done(stream.record)

    def _receive(self, channel: Any) -> None:
        next_event = channel.next_call_event
        receive_message = cygrpc.ReceiveMessageOperation
        queue_timeout = cygrpc.CompletionType.queue_timeout
        clock = time.perf_counter
        while True:
            event = next_event()
            arrived = clock()  # first thing after the event leaves the queue: the message's time of receipt
            if event.completion_type == queue_timeout:
                continue
            tag = event.tag
            kind = tag.__class__
            try:
                if kind is _Stream:
                    message = event.batch_operations[0].message()
                    if message is not None and len(tag.messages) >= tag.limit:
                        # An overlong stream: this request fails, its memory stays bounded, the run goes on.
                        self._cut(tag, overlong_detail(tag.limit))
                    elif message is not None:
                        tag.arrivals.append(arrived)
                        tag.messages.append(message)
                        call = tag.call
                        if call is None:  # its starter is still between integrated_call() and storing the call
                            with self._starting:
                                call = tag.call
                        try:
                            if call.operate((receive_message(0),), tag):
                                continue
                        except Exception:  # core refused the batch: the call is over, as below
                            pass
                    # End of the stream, or the call is over (operate refused: no event will come): part done.
                    self._part_done(tag)
                elif kind is _Status:
                    stream = tag.stream
                    status = event.batch_operations[0]
                    code = _CODE_NAMES.get(status.code(), f"CODE_{status.code()}")
                    end_status(stream.record, code, status.details() or "")
                    self._part_done(stream)
                elif kind is _Wake and self._closing:
                    return
            except Exception as exc:  # a bug: fail this request (its part ends here), keep serving the others
                stream = tag if kind is _Stream else getattr(tag, "stream", None)
                if stream is None:  # not tied to a request (never expected): say so, keep serving
                    print(f"tpuserve bench: receiver thread: {type(exc).__name__}: {exc}", file=sys.stderr)
                    continue
                stream.record.code = CLIENT_ERROR
                stream.record.detail = f"{type(exc).__name__}: {exc}"
                if stream.open_parts > 1 and stream.call is not None:
                    stream.call.cancel(cygrpc.StatusCode.cancelled, "client error")
                self._part_done(stream)

    def _cut(self, stream: _Stream, detail: str) -> None:
        """End a request the client refuses (its message part ends here; the status part follows the cancel)."""
        stream.record.code = CLIENT_ERROR
        stream.record.detail = detail
        if stream.call is not None:
            stream.call.cancel(cygrpc.StatusCode.cancelled, "client error")
        self._part_done(stream)

    def _part_done(self, stream: _Stream) -> None:
        stream.open_parts -= 1
        if not stream.open_parts:
            self._finish(stream)

    async def close(self) -> None:
        """Cancel what is still in flight, let the receiver threads drain it, then stop them."""
        if self._closing:
            return
        if self._inflight:
            self.cancel_all("benchmark client closing")
            for _ in range(100):
                if not self._inflight:
                    break
                await asyncio.sleep(0.05)
        self._closing = True
        for channel in self._channels:
            # Any completion wakes the thread; a HealthCheck ends quickly whether or not the server answers.
            channel.integrated_call(
                0,
                HEALTH_METHOD.encode(),
                None,
                time.time() + 1.0,
                (),
                None,
                (
                    (
                        (
                            cygrpc.SendInitialMetadataOperation((), 0),
                            cygrpc.SendMessageOperation(b"", 0),
                            cygrpc.SendCloseFromClientOperation(0),
                            cygrpc.ReceiveInitialMetadataOperation(0),
                            cygrpc.ReceiveMessageOperation(0),
                            cygrpc.ReceiveStatusOnClientOperation(0),
                        ),
                        _WAKE,
                    ),
                ),
            )
        loop = asyncio.get_running_loop()
        for thread in self._threads:
            await loop.run_in_executor(None, thread.join, 5.0)
        if not self._inflight and not any(t.is_alive() for t in self._threads):
            for channel in self._channels:
                channel.close(cygrpc.StatusCode.cancelled, "benchmark client closed")


class AioStreams:
    """Decode calls as grpc.aio tasks on the running event loop (`on_done` runs on the loop)."""

    def __init__(self, target: str, channels: int = 1) -> None:
        options = channel_options()
        self._channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(channels)]
        self._decode = [
            ch.unary_stream(DECODE_METHOD, request_serializer=_identity, response_deserializer=_identity)
            for ch in self._channels
        ]
        self._next = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._cancel_detail = "cancelled by the benchmark"

    def start(self, record: Record, payload: bytes, timeout: float | None, on_done: OnDone) -> None:
        stub = self._decode[self._next]
        self._next = (self._next + 1) % len(self._decode)
        task = asyncio.ensure_future(self._run(stub, record, payload, timeout, on_done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, stub: Any, record: Record, payload: bytes, timeout: float | None, on_done: OnDone) -> None:
        arrivals = record.arrivals
        messages = record.messages
        clock = time.perf_counter
        limit = record.max_messages or sys.maxsize
        record.send = clock()
        try:
            call = stub(payload, timeout=timeout)
            async for message in call:
                if len(messages) >= limit:  # an overlong stream: this request fails, the run goes on
                    call.cancel()
                    record.code, record.detail = CLIENT_ERROR, overlong_detail(limit)
                    break
                arrivals.append(clock())
                messages.append(message)
            record.end = clock()
        except grpc.aio.AioRpcError as exc:
            record.end = clock()
            end_status(record, exc.code().name, exc.details() or "")
        except asyncio.CancelledError:
            record.end = clock()
            record.code = CANCELLED
            record.detail = self._cancel_detail
        except Exception as exc:  # a bug or a broken message: count it, keep the run going
            record.end = clock()
            record.code = CLIENT_ERROR
            record.detail = f"{type(exc).__name__}: {exc}"
        on_done(record)

    def cancel_all(self, detail: str) -> None:
        self._cancel_detail = detail
        for task in list(self._tasks):
            task.cancel()

    async def close(self) -> None:
        if self._tasks:
            self.cancel_all("benchmark client closing")
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for channel in self._channels:
            await channel.close()


def _identity(data: bytes) -> bytes:
    return data


def open_streams(target: str, channels: int = 1, engine: str = "cq") -> CompletionQueueStreams | AioStreams:
    """The requested engine; `cq` falls back to `aio` (with a warning on stderr) if grpcio lacks its API."""
    if engine == "cq" and available():
        return CompletionQueueStreams(target, channels)
    if engine == "cq":  # pragma: no cover - depends on the installed grpcio
        print("warning: this grpcio has no completion-queue API; using the asyncio engine", file=sys.stderr)
    return AioStreams(target, channels)


async def decode_one(streams: Streams, record: Record, payload: bytes, timeout: float | None) -> Record:
    """Run one Decode call to its end from a coroutine (tests, one-off probes)."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[Record] = loop.create_future()

    def settle(done: Record) -> None:
        if not finished.done():
            finished.set_result(done)

    def on_done(done: Record) -> None:
        loop.call_soon_threadsafe(settle, done)

    streams.start(record, payload, timeout, on_done)
    return await finished
