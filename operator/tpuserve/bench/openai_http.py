"""HTTP/1.1 + SSE streams for the OpenAI-compatible protocol, with the gRPC engines' interface.

`HttpStreams.start(record, body, timeout, on_done)` POSTs one JSON body on a keep-alive connection and times
every body chunk on receipt: a chunk costs one `perf_counter()` and two list appends (the raw bytes and their
arrival time); SSE events are split out and JSON is parsed after the stage (tpuserve.bench.openai), each event
timed by the chunk that completed it. Responses are parsed by `httptools`
(llhttp, the parser uvicorn uses) inside an `asyncio.Protocol`: no task, future or stream reader per request or
per chunk. It was chosen by measurement over aiohttp and httpx (tpuserve_dev.perf.openai_engines, docs/bench.md).

Connections: a pool of idle keep-alive connections; a request takes one or opens a new one (no cap here: a
concurrency cap is the runner's job), so after warm-up the pool holds as many connections as requests were ever
in flight at once. A connection the server closes is dropped from the pool.

Failures end only their request, with a code and the reason: `HTTP_<status>` (the error body's message),
`CONNECTION_ERROR` (reset or closed mid-response), `UNAVAILABLE` (the connection could not be opened: the
runner then checks whether the server is gone), `DEADLINE_EXCEEDED` (--request-timeout), `CANCELLED`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

import httptools

from tpuserve.bench import BenchError
from tpuserve.bench.client import CLIENT_ERROR, OK, Record

OnDone = Callable[[Record], None]
UNAVAILABLE = "UNAVAILABLE"
CONNECTION_ERROR = "CONNECTION_ERROR"
DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
CANCELLED = "CANCELLED"
_ERROR_BODY_LIMIT = 64 * 1024  # keep at most this much of a non-200 body (enough for any JSON error)


class BaseURL:
    """An OpenAI-compatible server's base URL: http(s)://host[:port][/prefix] (without /v1)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise BenchError(f"--target {url!r} must be an http:// or https:// URL (e.g. http://llama.default:8000)")
        if parts.query or parts.fragment:
            raise BenchError(f"--target {url!r} must not have a query or fragment")
        self.url = url.rstrip("/")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        try:
            self.port = parts.port or (443 if self.https else 80)
        except ValueError as exc:
            raise BenchError(f"--target {url!r}: {exc}") from None
        prefix = parts.path.rstrip("/")
        if prefix.endswith("/v1"):
            prefix = prefix[: -len("/v1")]
        self.prefix = prefix
        default_port = (self.https and self.port == 443) or (not self.https and self.port == 80)
        self.host_header = self.host if default_port else f"{self.host}:{self.port}"

    def path(self, endpoint: str) -> str:
        return self.prefix + endpoint


def request_head(base: BaseURL, path: str, bearer: str | None, content_type: str = "application/json") -> bytes:
    """The fixed part of every request's head; Content-Length and the body follow."""
    lines = [
        f"POST {base.path(path)} HTTP/1.1",
        f"Host: {base.host_header}",
        "User-Agent: tpuserve-bench",
        "Accept: text/event-stream",
        f"Content-Type: {content_type}",
    ]
    if bearer:
        lines.append(f"Authorization: Bearer {bearer}")
    return ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")


def error_reason(status: int, body: bytes) -> str:
    """The message of an OpenAI/vLLM error body (new nested or old flat form), else the start of the body."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:500]
        if isinstance(inner, str):
            return inner[:500]
    text = body[:300].decode("utf-8", "replace").strip()
    return text or f"HTTP {status} with an empty body"


class _Connection(asyncio.Protocol):
    """One keep-alive connection: at most one request at a time (HTTP/1.1 without pipelining)."""

    __slots__ = (
        "arrivals",
        "body",
        "buffer",
        "complete",
        "messages",
        "on_done",
        "owner",
        "parser",
        "payload",
        "record",
        "reused",
        "status",
        "timeout",
        "timer",
        "transport",
    )

    def __init__(self, owner: HttpStreams) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.record: Record | None = None
        self.on_done: OnDone | None = None
        self.messages: list[bytes] = []
        self.arrivals: list[float] = []
        self.buffer = b""
        self.body = bytearray()
        self.status = 0
        self.complete = False
        self.timer: asyncio.TimerHandle | None = None
        self.payload = b""
        self.timeout: float | None = None
        self.reused = False  # taken from the idle pool: the server may have closed it meanwhile

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # pragma: no cover - never asked for
            self._fail(CONNECTION_ERROR, "unexpected protocol upgrade")
        except httptools.HttpParserError as exc:
            self._fail(CONNECTION_ERROR, f"malformed HTTP response: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._forget(self)
        if self.record is not None and self.reused and self.status == 0:
            # An idle keep-alive connection the server closed (uvicorn: after 5 s) just as this request was
            # written on it: nothing came back, so the request is sent again once, on a new connection, and
            # timed from its first attempt (what every HTTP client pool does with a stale connection).
            record, on_done = self.record, self.on_done
            assert on_done is not None
            self.record = self.on_done = None
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            self.owner._resend(record, self.payload, self.timeout, on_done)
            return
        if self.record is not None:
            # A response without Content-Length or chunking ends with the connection.
            if self.status and not self.complete:
                with contextlib.suppress(httptools.HttpParserError):
                    self.parser.feed_data(b"")
            if self.record is not None:
                why = f"connection closed by the server mid-response ({exc or 'EOF'})"
                self._finish(CONNECTION_ERROR, why)

    # httptools callbacks
    def on_status(self, _reason: bytes) -> None:  # the reason phrase; the code comes from the parser
        self.status = self.parser.get_status_code()

    def on_body(self, data: bytes) -> None:
        if self.status != 200:
            if len(self.body) < _ERROR_BODY_LIMIT:
                self.body += data
            return
        # The raw chunk and its arrival: SSE events are split out after the stage (tpuserve.bench.openai).
        self.arrivals.append(time.perf_counter())
        self.messages.append(data)

    def on_message_complete(self) -> None:
        self.complete = True
        keep = self.parser.should_keep_alive() and self.transport is not None and not self.transport.is_closing()
        if self.status == 200:
            code, detail = OK, ""
        else:
            code, detail = f"HTTP_{self.status}", error_reason(self.status, bytes(self.body))
        # Back in the pool before the request's completion is reported, so a closed loop's next request (started
        # from that report) reuses this connection instead of opening another.
        self._finish(code, detail, release=keep)
        if not keep and self.transport is not None:
            self.transport.close()

    # the engine's side
    def send(self, record: Record, head: bytes, body: bytes, timeout: float | None, on_done: OnDone) -> None:
        assert self.transport is not None
        self.record, self.on_done = record, on_done
        self.payload, self.timeout = body, timeout
        self.messages, self.arrivals = record.messages, record.arrivals
        self.buffer, self.status, self.complete = b"", 0, False
        if self.body:
            self.body = bytearray()
        if timeout is not None:
            self.timer = self.owner.loop.call_later(timeout, self._timed_out, record)
        record.send = time.perf_counter()
        self.transport.write(b"%s%d\r\n\r\n%s" % (head, len(body), body))

    def _timed_out(self, record: Record) -> None:
        if self.record is record:
            self._fail(DEADLINE_EXCEEDED, "request timeout reached (--request-timeout)")

    def _fail(self, code: str, detail: str) -> None:
        """End the request and drop the connection (its state is unknown)."""
        self._finish(code, detail)
        if self.transport is not None:
            self.transport.abort()

    def _finish(self, code: str, detail: str, release: bool = False) -> None:
        record, on_done = self.record, self.on_done
        if record is None or on_done is None:
            return
        record.end = time.perf_counter()
        if code != OK:
            record.code, record.detail = code, detail
        self.record = self.on_done = None
        self.messages, self.arrivals = [], []
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.owner._busy.discard(self)
        if release:
            self.owner._release(self)
        on_done(record)


class HttpStreams:
    """The OpenAI-protocol engine: `start` (event-loop thread only), `cancel_all`, `close`."""

    def __init__(self, base_url: str, bearer: str | None, path: str = "/v1/completions") -> None:
        self.base = BaseURL(base_url)
        self.head = request_head(self.base, path, bearer)
        self.loop = asyncio.get_running_loop()
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._connecting: set[asyncio.Task[None]] = set()
        self._ssl = ssl.create_default_context() if self.base.https else None
        self._closed = False

    def start(self, record: Record, payload: bytes, timeout: float | None, on_done: OnDone) -> None:
        if self._idle:
            connection = self._idle.pop()
            self._busy.add(connection)
            connection.reused = True
            connection.send(record, self.head, payload, timeout, on_done)
            return
        self._resend(record, payload, timeout, on_done, first=True)

    def _resend(
        self, record: Record, payload: bytes, timeout: float | None, on_done: OnDone, first: bool = False
    ) -> None:
        """Send on a new connection (first attempt, or the one retry after a stale keep-alive connection)."""
        task = self.loop.create_task(self._connect_and_send(record, payload, timeout, on_done, first))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect_and_send(
        self, record: Record, payload: bytes, timeout: float | None, on_done: OnDone, first: bool = True
    ) -> None:
        if first:
            record.send = time.perf_counter()  # a failed connect still has a send time
        try:
            connect = self.loop.create_connection(
                lambda: _Connection(self), self.base.host, self.base.port, ssl=self._ssl
            )
            _, protocol = await asyncio.wait_for(connect, timeout)
        except asyncio.CancelledError:
            record.end = time.perf_counter()
            record.code, record.detail = CANCELLED, "cancelled by the benchmark while connecting"
            on_done(record)
            return
        except (OSError, TimeoutError) as exc:
            record.end = time.perf_counter()
            record.code, record.detail = UNAVAILABLE, f"cannot connect to {self.base.url}: {exc or type(exc).__name__}"
            on_done(record)
            return
        except Exception as exc:  # never expected: counted against this request rather than hanging the run
            record.end = time.perf_counter()
            record.code, record.detail = CLIENT_ERROR, f"{type(exc).__name__}: {exc}"
            on_done(record)
            return
        connection: _Connection = protocol
        self._busy.add(connection)
        # Timed from before the connect: connection set-up counts in TTFT, as it does in any HTTP client.
        send = record.send
        connection.send(record, self.head, payload, timeout, on_done)
        record.send = send

    def _release(self, connection: _Connection) -> None:
        if not self._closed:
            self._idle.append(connection)

    def _forget(self, connection: _Connection) -> None:
        self._busy.discard(connection)
        if connection in self._idle:
            self._idle.remove(connection)

    def cancel_all(self, detail: str) -> None:
        for task in list(self._connecting):
            task.cancel()
        for connection in list(self._busy):
            connection._fail(CANCELLED, detail)

    async def close(self) -> None:
        self._closed = True
        self.cancel_all("benchmark closed")
        for connection in self._idle:
            if connection.transport is not None:
                connection.transport.close()
        self._idle.clear()
        if self._connecting:
            await asyncio.gather(*self._connecting, return_exceptions=True)
