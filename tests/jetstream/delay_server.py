"""A JetStream-protocol test server (our own .proto) with known, injected timings and real gRPC faults.

Each Decode answers `max_tokens` tokens, one stream message per `--tokens-per-message` tokens: the first
message `--ttft-ms` after the request arrives, then one every `--itl-ms` (absolute schedule, so no drift).
Faults it produces for real: `--max-inflight N` answers RESOURCE_EXHAUSTED beyond N streams in flight (as a
full JetStream prefill queue does); `--unavailable-every K` fails every K-th Decode with UNAVAILABLE while
staying up (a transient error); `--hang` never answers (deadline tests); `--vocab-size` bounds token ids
(`--out-of-vocab` emits ids past it, as JetStream's mock engine does); `--bad-stream KIND --bad-every K` makes
every K-th Decode misbehave: `garbage` (one stream message that is not a DecodeResponse), `oversized` (one
2 MiB message) or `overlong` (token messages without end, past max_tokens).

Run: python -m tests.jetstream.delay_server --port 0 --ttft-ms 50 --itl-ms 10   (prints "PORT <n>" when serving)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from tpuserve.proto import jetstream_pb2, orchestrator

DECODE = orchestrator.DECODE.path
HEALTH = orchestrator.HEALTH_CHECK.path


@dataclass
class Behaviour:
    ttft_ms: float = 0.0
    itl_ms: float = 0.0
    tokens_per_message: int = 1
    max_inflight: int = 0  # 0 = unlimited
    hang: bool = False
    vocab_size: int = 32000
    out_of_vocab: bool = False
    live: bool = True
    unavailable_every: int = 0  # 0 = never; else every k-th Decode ends with UNAVAILABLE (a live server)
    bad_stream: str = ""  # garbage | oversized | overlong, on every bad_every-th Decode
    bad_every: int = 1


# Not a DecodeResponse: field 1 (stream_content) as a length-delimited field whose length runs past the end.
GARBAGE_MESSAGE = b"\x0a\xff\xff\xff\x0f\x01"
OVERSIZED_BYTES = 2 << 20


def _message(ids: list[int]) -> bytes:
    response = jetstream_pb2.DecodeResponse(
        stream_content=jetstream_pb2.DecodeResponse.StreamContent(
            samples=[jetstream_pb2.DecodeResponse.StreamContent.Sample(token_ids=ids)]
        )
    )
    data: bytes = response.SerializeToString()
    return data


class DelayServer:
    def __init__(self, behaviour: Behaviour) -> None:
        self.b = behaviour
        self.inflight = 0
        self.requests = 0
        self._cache: dict[int, list[bytes]] = {}

    def _messages(self, max_tokens: int) -> list[bytes]:
        cached = self._cache.get(max_tokens)
        if cached is None:
            per = max(1, self.b.tokens_per_message)
            base = self.b.vocab_size if self.b.out_of_vocab else 3
            span = 1_000_000 if self.b.out_of_vocab else max(1, self.b.vocab_size - 3)
            ids = [base + (i * 7919) % span for i in range(max_tokens)]
            cached = [_message(ids[i : i + per]) for i in range(0, max_tokens, per)]
            self._cache[max_tokens] = cached
        return cached

    async def decode(self, request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.requests += 1
        if self.b.max_inflight and self.inflight >= self.b.max_inflight:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "The driver prefill queue is full and more requests cannot be handled. You may retry this request.",
            )
        if self.b.unavailable_every and self.requests % self.b.unavailable_every == 0:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "injected: try again")
        parsed = jetstream_pb2.DecodeRequest.FromString(request)
        bad = self.b.bad_stream if self.b.bad_stream and self.requests % self.b.bad_every == 0 else ""
        self.inflight += 1
        try:
            if self.b.hang:
                await asyncio.sleep(3600)
            if bad:
                async for message in self._bad(bad, parsed.max_tokens):
                    yield message
                return
            messages = self._messages(max(0, parsed.max_tokens))
            ttft = self.b.ttft_ms / 1000.0
            itl = self.b.itl_ms / 1000.0
            for k, message in enumerate(messages):
                due = start + ttft + k * itl
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                yield message
        finally:
            self.inflight -= 1

    async def _bad(self, kind: str, max_tokens: int) -> AsyncIterator[bytes]:
        """A stream the client must refuse (one request fails, the run goes on)."""
        yield _message([3])
        if kind == "garbage":
            yield GARBAGE_MESSAGE
        elif kind == "oversized":
            yield _message([1 << 21] * (OVERSIZED_BYTES // 4))  # 4-byte varints: about OVERSIZED_BYTES
        elif kind == "overlong":
            while True:  # until the client cancels: never ending unless cut
                yield _message([4])
                await asyncio.sleep(0)
        else:
            raise ValueError(f"unknown --bad-stream {kind}")
        for message in self._messages(max(0, max_tokens - 1)):
            yield message

    async def health(self, _request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
        data: bytes = jetstream_pb2.HealthCheckResponse(is_live=self.b.live).SerializeToString()
        return data

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "jetstream_proto.Orchestrator",
            {
                "Decode": grpc.unary_stream_rpc_method_handler(self.decode),
                "HealthCheck": grpc.unary_unary_rpc_method_handler(self.health),
            },
        )


async def serve(behaviour: Behaviour, port: int, ready: asyncio.Future[int] | None = None) -> None:
    # gRPC core cancels calls beyond its pending-request limits (default 1000 / hard 3000): a burst of
    # requests sent at once would then see CANCELLED from the test server itself, so lift them.
    options = [
        ("grpc.max_concurrent_streams", 1 << 20),
        ("grpc.so_reuseport", 0),
        ("grpc.server.max_pending_requests", 1 << 20),
        ("grpc.server.max_pending_requests_hard_limit", 1 << 20),
    ]
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers((DelayServer(behaviour).handler(),))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    if ready is not None:
        ready.set_result(bound)
    else:
        print(f"PORT {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--itl-ms", type=float, default=0.0)
    parser.add_argument("--tokens-per-message", type=int, default=1)
    parser.add_argument("--max-inflight", type=int, default=0)
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--vocab-size", type=int, default=32000)
    parser.add_argument("--out-of-vocab", action="store_true")
    parser.add_argument("--not-live", action="store_true")
    parser.add_argument("--unavailable-every", type=int, default=0, help="every k-th Decode answers UNAVAILABLE")
    parser.add_argument("--bad-stream", choices=["garbage", "oversized", "overlong"], default="")
    parser.add_argument("--bad-every", type=int, default=1, help="which Decodes --bad-stream affects (every k-th)")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (faster, for performance runs)")
    args = parser.parse_args(argv)
    behaviour = Behaviour(
        ttft_ms=args.ttft_ms,
        itl_ms=args.itl_ms,
        tokens_per_message=args.tokens_per_message,
        max_inflight=args.max_inflight,
        hang=args.hang,
        vocab_size=args.vocab_size,
        out_of_vocab=args.out_of_vocab,
        live=not args.not_live,
        unavailable_every=args.unavailable_every,
        bad_stream=args.bad_stream,
        bad_every=max(1, args.bad_every),
    )
    if args.uvloop:
        import uvloop

        uvloop.run(serve(behaviour, args.port))
    else:
        asyncio.run(serve(behaviour, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
