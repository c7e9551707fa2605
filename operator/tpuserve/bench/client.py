"""The gRPC side: request encoding, per-request records, and the HealthCheck client.

Requests are serialized once before the run and responses are kept as raw bytes with their arrival time;
parsing (token counts and ids) happens after the run, so each stream message costs one `perf_counter()` and two
list appends. The Decode streams themselves run on an engine from `tpuserve.bench.streams`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from tpuserve.proto import jetstream_pb2, orchestrator

DECODE_METHOD = orchestrator.DECODE.path
HEALTH_METHOD = orchestrator.HEALTH_CHECK.path
OK = "OK"
# A failure the client found inside one request (a malformed, oversized or overlong stream, or a bug): counted
# with its reason in the record's detail, never a reason to stop the run.
CLIENT_ERROR = "CLIENT_ERROR"
# Bounds on what one request may hold, so a misbehaving server cannot exhaust the benchmark pod's memory: a real
# DecodeResponse is a few token ids (bytes to a few KiB of text); a stream carries one message per token at most,
# plus JetStream's initial and final messages (the margin). gRPC core refuses a larger message itself.
MAX_STREAM_MESSAGE_BYTES = 1 << 20
EXTRA_STREAM_MESSAGES = 16
# gRPC core's own words for a message over max_receive_message_length (src/core/lib/surface/call.cc).
_CORE_OVERSIZED = "larger than max"


def encode_request(prompt_ids: list[int], max_tokens: int) -> bytes:
    """A DecodeRequest with only the fields JetStream 0.2.2 and newer servers share (token_content, max_tokens).

    Newer servers prepend BOS when has_bos is false (its default), as 0.2.2 always does: both see the same input.
    """
    message = jetstream_pb2.DecodeRequest(
        max_tokens=max_tokens, token_content=jetstream_pb2.DecodeRequest.TokenContent(token_ids=prompt_ids)
    )
    data: bytes = message.SerializeToString()
    return data


@dataclass(slots=True)
class Record:
    """What happened to one request: perf_counter times (seconds) and the raw stream messages."""

    index: int
    send: float = 0.0
    end: float = 0.0
    arrivals: list[float] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    code: str = OK
    detail: str = ""
    max_messages: int = 0  # the stream is cut (a client error) past this many messages; 0 = no limit


def max_stream_messages(max_tokens: int) -> int:
    """Messages a stream of `max_tokens` tokens may take before the client cuts it."""
    return max(max_tokens, 0) + EXTRA_STREAM_MESSAGES


def overlong_detail(limit: int) -> str:
    return f"stream cut after {limit} messages (max_tokens + {EXTRA_STREAM_MESSAGES}): the server sent more"


def end_status(record: Record, code: str, detail: str) -> None:
    """Record how a call ended; a client error found first stays the reason, and gRPC core's refusal of an
    oversized message is the client's (the server is healthy, its message is not), not the server's own
    RESOURCE_EXHAUSTED (a full prefill queue)."""
    if code == OK or record.code != OK:
        return
    if code == "RESOURCE_EXHAUSTED" and _CORE_OVERSIZED in detail:
        record.code = CLIENT_ERROR
        record.detail = f"oversized stream message (limit {MAX_STREAM_MESSAGE_BYTES} bytes): {detail}"
        return
    record.code, record.detail = code, detail


def parse_record(record: Record) -> tuple[list[int], list[int]]:
    """parse_messages for one request; a message that is not a DecodeResponse fails that request (a client error
    naming the message) instead of the whole report. (protobuf raises its DecodeError; anything else a
    broken message provokes in the parser is the same verdict.)"""
    try:
        return parse_messages(record.messages)
    except Exception as exc:
        index = _first_malformed(record.messages)
        if record.code == OK:
            record.code = CLIENT_ERROR
            record.detail = f"malformed stream message {index} (not a DecodeResponse): {type(exc).__name__}: {exc}"
        return [], []


def _first_malformed(messages: list[bytes]) -> int:
    for index, raw in enumerate(messages):
        try:
            jetstream_pb2.DecodeResponse.FromString(raw)
        except Exception:
            return index
    return -1


def parse_messages(messages: list[bytes]) -> tuple[list[int], list[int]]:
    """(tokens per message, all token ids) from raw DecodeResponse bytes (first sample of each message)."""
    counts: list[int] = []
    ids: list[int] = []
    parse = jetstream_pb2.DecodeResponse.FromString
    for raw in messages:
        response = parse(raw)
        samples = response.stream_content.samples
        if samples:
            token_ids = samples[0].token_ids
            counts.append(len(token_ids))
            ids.extend(token_ids)
        else:  # initial_content or an empty stream message: no token
            counts.append(0)
    return counts, ids


async def wait_until_live(why_not_live: Callable[[float], Awaitable[str | None]], budget_s: float) -> None:
    """Ask `why_not_live(timeout)` every 0.5 s until it answers None; after `budget_s`, raise TimeoutError with the
    last reason (the JetStream and the OpenAI health checks both wait this way)."""
    deadline = time.monotonic() + budget_s
    reason = "no answer"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(reason)
        why = await why_not_live(min(remaining, 5.0))
        if why is None:
            return
        reason = why
        await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def channel_options() -> list[tuple[str, int]]:
    """Channel arguments shared by every engine (long-lived connections that survive idle stretches)."""
    return [
        ("grpc.max_receive_message_length", MAX_STREAM_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        # Separate connections for a pool (otherwise gRPC shares one subchannel between equal channels).
        ("grpc.use_local_subchannel_pool", 1),
    ]


class Client:
    """HealthCheck over one grpc.aio channel (its own connection, apart from the Decode streams)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._channel = grpc.aio.insecure_channel(target, options=channel_options())
        self._health = orchestrator.call(self._channel, orchestrator.HEALTH_CHECK)

    async def close(self) -> None:
        await self._channel.close()

    async def health(self, timeout: float) -> bool:
        response: Any = await self._health(jetstream_pb2.HealthCheckRequest(), timeout=timeout, wait_for_ready=True)
        return bool(response.is_live)

    async def answers(self, timeout: float) -> bool:
        """Whether the server answers a HealthCheck now (no waiting for a connection: a dead server fails fast)."""
        try:
            await self._health(jetstream_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return True

    async def why_not_live(self, timeout: float) -> str | None:
        """None when HealthCheck says the server is live, else why not."""
        try:
            if await self.health(timeout=timeout):
                return None
        except grpc.aio.AioRpcError as exc:
            return f"HealthCheck failed: {exc.code().name}: {exc.details()}"
        return "HealthCheck answered is_live=false"

    async def wait_until_live(self, budget_s: float) -> None:
        """Poll HealthCheck until the server says it is live; raise TimeoutError with the last reason."""
        await wait_until_live(self.why_not_live, budget_s)
