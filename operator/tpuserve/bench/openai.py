"""The OpenAI-compatible protocol: request bodies, the server's liveness, and parsing a finished stream.

Bodies are built once before the run, as `vllm bench serve` 0.32 builds them (vllm/benchmarks/lib/
endpoint_request_func.py): `/v1/completions` gets `prompt` + `max_tokens`, `/v1/chat/completions` gets one user
message + `max_completion_tokens`; both `stream: true` with `stream_options.include_usage`, and `ignore_eos` when
asked. No per-request `seed` (vLLM TPU refuses it: "JAX does not support per-request seed").

A stream is parsed after the run from its raw SSE `data:` payloads and their arrival times:
- a chunk with non-empty `choices` is an output chunk (its text may be empty; vLLM's TTFT counts it);
- `usage.completion_tokens` (the last chunk, `choices: []`) is the output token count -- never the number of
  chunks, since one chunk can carry several tokens; a stream without usage is reported as such;
- `{"error": ...}` mid-stream fails the request with the server's message; `[DONE]` ends the stream.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tpuserve.bench import BenchError, RunFailed
from tpuserve.bench.client import OK, Record, wait_until_live
from tpuserve.bench.openai_http import BaseURL

COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"
ENDPOINTS = (COMPLETIONS, CHAT)
STREAM_ERROR = "STREAM_ERROR"  # a `data: {"error": ...}` event
MALFORMED = "MALFORMED_STREAM"  # a data payload that is not JSON, or a 200 stream without [DONE]
TOKEN_ENV = "TPUSERVE_BENCH_API_KEY"  # the bearer token (or --api-key-file); never a command-line value


def request_body(
    endpoint: str,
    model: str,
    prompt: str | list[int],
    max_tokens: int,
    ignore_eos: bool,
    extra: dict[str, Any] | None = None,
) -> bytes:
    body: dict[str, Any] = {"model": model}
    if endpoint == CHAT:
        body["messages"] = [{"role": "user", "content": prompt}]
        body["max_completion_tokens"] = max_tokens
    else:
        body["prompt"] = prompt
        body["max_tokens"] = max_tokens
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    if ignore_eos:
        body["ignore_eos"] = True
    if extra:
        body.update(extra)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def read_bearer(path: str | None) -> str | None:
    """The API key: from --api-key-file, else $TPUSERVE_BENCH_API_KEY, else none."""
    if path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BenchError(f"--api-key-file {path!r} cannot be read: {exc.strerror}") from None
        if not token:
            raise BenchError(f"--api-key-file {path!r} is empty")
        return token
    return os.environ.get(TOKEN_ENV) or None


@dataclass(slots=True)
class Stream:
    """One finished OpenAI stream, parsed."""

    times: list[float] = field(default_factory=list)  # arrival of every chunk with choices
    texts: list[str] = field(default_factory=list)
    completion_tokens: int | None = None  # usage.completion_tokens; None = the server sent no usage
    prompt_tokens: int | None = None
    error: str | None = None  # code: message, when the stream itself reported or showed a failure

    @property
    def text(self) -> str:
        return "".join(self.texts)


def _chunk_text(choice: dict[str, Any]) -> str:
    if "text" in choice:
        return choice.get("text") or ""
    delta = choice.get("delta") or {}
    return str(delta.get("content") or delta.get("reasoning") or delta.get("reasoning_content") or "")


def sse_data(chunks: list[bytes], arrivals: list[float]) -> Iterator[tuple[bytes, float]]:
    """(data payload, arrival) of every SSE `data:` line in a response body received as `chunks`; an event is timed
    by the chunk that completed it. Comments (":") and other fields are skipped; an unterminated last event counts."""
    buffer = b""
    last = 0.0
    for data, arrival in zip(chunks, arrivals, strict=True):
        last = arrival
        buffer = buffer + data if buffer else data
        if b"\n\n" not in buffer and b"\r\n\r\n" not in buffer:
            continue
        events = buffer.replace(b"\r\n", b"\n").split(b"\n\n")
        buffer = events.pop()
        for event in events:
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    yield line[5:].lstrip(b" "), arrival
    for line in buffer.replace(b"\r\n", b"\n").split(b"\n"):
        if line.startswith(b"data:"):
            yield line[5:].lstrip(b" "), last


def parse_stream(record: Record) -> Stream:
    stream = Stream()
    done = False
    for raw, arrival in sse_data(record.messages, record.arrivals):
        if raw == b"[DONE]":
            done = True
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            stream.error = f"{MALFORMED}: data is not JSON: {raw[:120]!r}"
            continue
        if not isinstance(data, dict):
            stream.error = f"{MALFORMED}: data is not a JSON object: {raw[:120]!r}"
            continue
        if "error" in data:
            err = data["error"]
            message = err.get("message") if isinstance(err, dict) else err
            stream.error = f"{STREAM_ERROR}: {message}"
            continue
        choices = data.get("choices")
        if choices:
            stream.times.append(arrival)
            stream.texts.append(_chunk_text(choices[0]) if isinstance(choices[0], dict) else "")
        usage = data.get("usage")
        if isinstance(usage, dict):
            if isinstance(usage.get("completion_tokens"), int):
                stream.completion_tokens = usage["completion_tokens"]
            if isinstance(usage.get("prompt_tokens"), int):
                stream.prompt_tokens = usage["prompt_tokens"]
    if stream.error is None and record.code == OK and not done:
        stream.error = f"{MALFORMED}: the stream ended without data: [DONE]"
    return stream


class HealthClient:
    """Is the server up? `GET /health` (vLLM), falling back to `GET /v1/models` (any OpenAI-compatible server)."""

    def __init__(self, base_url: str, bearer: str | None) -> None:
        self.base = BaseURL(base_url)
        self.bearer = bearer

    async def close(self) -> None:
        return None

    async def _get(self, path: str, timeout: float, want_body: bool = False) -> tuple[int, bytes]:
        """(status, body) of one GET on its own connection (HTTP/1.0: the body ends with the connection)."""

        async def get() -> tuple[int, bytes]:
            reader, writer = await asyncio.open_connection(self.base.host, self.base.port, ssl=self.base.https or None)
            try:
                auth = f"Authorization: Bearer {self.bearer}\r\n" if self.bearer else ""
                head = f"GET {self.base.path(path)} HTTP/1.0\r\nHost: {self.base.host_header}\r\n{auth}"
                writer.write(f"{head}\r\n".encode("latin-1"))
                status_line = await reader.readline()
                parts = status_line.split()
                status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
                if not want_body:
                    return status, b""
                headers = await reader.readuntil(b"\r\n\r\n")
                for line in headers.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        return status, await reader.readexactly(int(value))
                return status, await reader.read(16 * 1024 * 1024)  # HTTP/1.0: the body ends with the connection
            finally:
                writer.close()

        return await asyncio.wait_for(get(), timeout)

    async def first_model(self, timeout: float) -> str:
        """The first model id of GET /v1/models (vllm bench serve's default model, too)."""
        try:
            status, body = await self._get("/v1/models", timeout, want_body=True)
            if status == 200:
                return str(json.loads(body)["data"][0]["id"])
            reason = f"HTTP {status}"
        except (OSError, TimeoutError, ValueError, KeyError, IndexError, TypeError, asyncio.IncompleteReadError) as exc:
            reason = str(exc) or type(exc).__name__
        raise RunFailed(f"cannot read the served model from {self.base.url}/v1/models ({reason}); pass --model")

    async def status(self, timeout: float) -> str | None:
        """None when the server is ready, else why not."""
        try:
            code, _ = await self._get("/health", timeout)
            if code == 404:
                code, _ = await self._get("/v1/models", timeout)
        except (OSError, TimeoutError) as exc:
            return f"no answer from {self.base.url} ({exc or type(exc).__name__})"
        return None if code == 200 else f"{self.base.url} answered HTTP {code}"

    async def answers(self, timeout: float) -> bool:
        return await self.status(timeout) is None

    async def wait_until_live(self, budget_s: float) -> None:
        await wait_until_live(self.status, budget_s)
