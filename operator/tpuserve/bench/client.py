"""The gRPC side: request encoding, per-request records, and the HealthCheck client.

Requests are serialized once before the run and responses are kept as raw bytes with their arrival time;
parsing (token counts and ids) happens after the run, so each stream message costs one `perf_counter()` and two
list appends. The Decode streams themselves run on an engine from `tpuserve.bench.streams`.
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


def channel_options() -> list[tuple[str, int]]:
    """Channel arguments shared by every engine (long-lived connections that survive idle stretches)."""
    return [
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
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
        self._health = self._channel.unary_unary(
            HEALTH_METHOD,
            request_serializer=jetstream_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=jetstream_pb2.HealthCheckResponse.FromString,
        )

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
