"""JetStream 0.2.2's own client code against a server, for the wire-compatibility test (JetStream venv's python).

Imports `benchmarks.benchmark_serving` from the google-jetstream wheel (its `eval_accuracy` import, which needs
nltk/evaluate and is unused here, is given a stand-in) and calls its `grpc_async_request` with the DecodeRequest
its `send_request` builds (session_cache, priority, token_content, max_tokens), plus a HealthCheck through the
upstream stub. Prints one JSON line: {"live", "tokens", "ttft", "latency"}.

    python upstream_client.py HOST:PORT MAX_TOKENS TOKEN_ID...
"""

from __future__ import annotations

import asyncio
import json
import sys
import types

import grpc


def main() -> None:
    target, max_tokens, prompt = sys.argv[1], int(sys.argv[2]), [int(x) for x in sys.argv[3:]]
    stub_module = types.ModuleType("eval_accuracy")
    stub_module.eval_accuracy = lambda *_args, **_kwargs: {}  # type: ignore[attr-defined]
    sys.modules["eval_accuracy"] = stub_module
    from benchmarks import benchmark_serving as bs
    from jetstream.core.proto import jetstream_pb2, jetstream_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        live = jetstream_pb2_grpc.OrchestratorStub(channel).HealthCheck(jetstream_pb2.HealthCheckRequest()).is_live
    request = jetstream_pb2.DecodeRequest(
        session_cache="",
        token_content=jetstream_pb2.DecodeRequest.TokenContent(token_ids=prompt),
        priority=0,
        max_tokens=max_tokens,
    )
    tokens, ttft, latency = asyncio.run(bs.grpc_async_request(target, request))
    print(json.dumps({"live": live, "tokens": list(tokens), "ttft": ttft, "latency": latency}))


if __name__ == "__main__":
    main()
