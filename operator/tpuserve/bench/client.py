"""The gRPC side: one long-lived grpc.aio channel (or a small pool), raw bytes on the hot path.

Requests are serialized once before the run and responses are kept as raw bytes with their arrival time;
parsing (token counts and ids) happens after the run, so each stream message costs the event loop one
`perf_counter()` and two list appends.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import grpc

from tpuserve.proto import jetstream_pb2

DECODE_METHOD = "/jetstream_proto.Orchestrator/Decode"
HEALTH_METHOD = "/jetstream_proto.Orchestrator/HealthCheck"
OK = "OK"
# Any non-gRPC failure inside a request (never expected; counted rather than crashing the run).
CLIENT_ERROR = "CLIENT_ERROR"


def _identity(data: bytes) -> bytes:
    return data


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


class Client:
    """Streams Decode calls over `channels` long-lived HTTP/2 connections to one target."""

    def __init__(self, target: str, channels: int = 1) -> None:
        options = [
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.http2.max_pings_without_data", 0),
            # Separate connections for a pool (otherwise gRPC shares one subchannel between equal channels).
            ("grpc.use_local_subchannel_pool", 1),
        ]
        self.target = target
        self._channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(channels)]
        self._decode = [
            ch.unary_stream(DECODE_METHOD, request_serializer=_identity, response_deserializer=_identity)
            for ch in self._channels
        ]
        self._health = self._channels[0].unary_unary(
            HEALTH_METHOD,
            request_serializer=jetstream_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=jetstream_pb2.HealthCheckResponse.FromString,
        )
        self._next = 0

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

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

    async def wait_until_live(self, budget_s: float) -> None:
        """Poll HealthCheck until the server says it is live; raise TimeoutError with the last reason."""
        deadline = time.monotonic() + budget_s
        reason = "no answer"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(reason)
            try:
                if await self.health(timeout=min(remaining, 5.0)):
                    return
                reason = "HealthCheck answered is_live=false"
            except grpc.aio.AioRpcError as exc:
                reason = f"HealthCheck failed: {exc.code().name}: {exc.details()}"
            await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    async def decode(self, record: Record, payload: bytes, timeout: float | None) -> Record:
        """Run one Decode stream to its end, filling `record` (never raises for RPC failures)."""
        stub = self._decode[self._next]
        self._next = (self._next + 1) % len(self._decode)
        arrivals = record.arrivals
        messages = record.messages
        clock = time.perf_counter
        record.send = clock()
        try:
            call = stub(payload, timeout=timeout)
            async for message in call:
                arrivals.append(clock())
                messages.append(message)
            record.end = clock()
        except grpc.aio.AioRpcError as exc:
            record.end = clock()
            record.code = exc.code().name
            record.detail = exc.details() or ""
        except asyncio.CancelledError:
            record.end = clock()
            record.code = grpc.StatusCode.CANCELLED.name
            record.detail = "cancelled by the benchmark (run ended)"
            raise
        except Exception as exc:  # a bug or a broken message: count it, keep the run going
            record.end = clock()
            record.code = CLIENT_ERROR
            record.detail = f"{type(exc).__name__}: {exc}"
        return record
