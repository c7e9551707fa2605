"""Measured figures against a real gRPC server with injected, known delays (tests/jetstream/delay_server.py).

Tolerances are generous (a loaded 2-core machine): they check definitions, not the machine's speed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

TTFT_MS = 100.0
ITL_MS = 20.0
TOKENS = 10


@pytest.fixture(params=["cq", "aio"])
def delayed_run(
    request: pytest.FixtureRequest,
    delay_server: Callable[..., Any],
    run_bench: Callable[..., Any],
    bench_data: dict[str, Path],
) -> Any:
    """One run per client engine: both must measure the same injected delays."""
    server = delay_server("--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS), "--vocab-size", "200")
    return run_bench(
        "--engine", request.param,
        "--target", server.target, "--dataset", "sharegpt", "--dataset-path", str(bench_data["sharegpt"]),
        "--tokenizer", str(bench_data["tokenizer"]), "--num-prompts", "24", "--request-rate", "20",
        "--max-output-length", str(TOKENS), "--warmup", "sampled", "--warmup-pause", "0",
        "--save-request-outputs", "--slo-ttft-ms", "1000000", "--slo-tpot-ms", "0.001",
    )  # fmt: skip


def test_measured_figures_match_injected_delays(delayed_run: Any) -> None:
    assert delayed_run.code == 0, delayed_run.stdout
    results = json.loads((delayed_run.output / "results.json").read_text())
    stage = results["stages"][0]
    assert stage["successfulRequests"] == 24
    assert stage["failedRequests"] == 0
    assert stage["totalOutputTokens"] == 24 * TOKENS
    # TTFT: the server waits TTFT_MS before the first message; the client adds little on loopback.
    assert TTFT_MS <= stage["ttftMs"]["median"] < TTFT_MS + 40
    # Decode TPOT and ITL: one token every ITL_MS (absolute schedule on the server).
    assert ITL_MS * 0.8 < stage["decodeTpotMs"]["median"] < ITL_MS * 1.4
    assert ITL_MS * 0.5 < stage["itlMs"]["median"] < ITL_MS * 1.5
    expected_latency = TTFT_MS + (TOKENS - 1) * ITL_MS
    assert expected_latency <= stage["latencyMs"]["median"] < expected_latency + 60
    # Throughputs are totals over the measured duration.
    assert stage["outputThroughput"] == pytest.approx(stage["totalOutputTokens"] / stage["durationSeconds"])
    assert stage["requestThroughput"] == pytest.approx(24 / stage["durationSeconds"])
    # Goodput: every request meets a huge TTFT SLO, none meets a 1 µs decode TPOT SLO.
    assert stage["goodput"]["requests"] == 0
    # Warmup is reported apart: JetStream's sampled warmup = first prompt per length bucket, twice.
    assert results["warmup"]["successfulRequests"] > 0
    assert results["warmup"]["successfulRequests"] % 2 == 0


def test_jetstream_tpot_is_latency_over_tokens_exactly(delayed_run: Any) -> None:
    rows = json.loads((delayed_run.output / "stage-00.request-outputs.json").read_text())
    stage = json.loads((delayed_run.output / "results.json").read_text())["stages"][0]
    tpot_ms = np.array([r["latency_sec"] / r["output_len"] * 1000 for r in rows])
    assert stage["tpotMs"]["mean"] == pytest.approx(float(tpot_ms.mean()), rel=1e-12)
    assert stage["tpotMs"]["median"] == pytest.approx(float(np.median(tpot_ms)), rel=1e-12)
    assert stage["tpotMs"]["p99"] == pytest.approx(float(np.percentile(tpot_ms, 99)), rel=1e-12)
    # and it is not the decode TPOT: it includes the TTFT.
    assert stage["tpotMs"]["median"] > stage["decodeTpotMs"]["median"] * 1.2
    # every message's arrival and token count is kept per request
    assert all(r["tokens_per_message"] == [1] * TOKENS and len(r["arrivals_ms"]) == TOKENS for r in rows)
    assert all(len(r["output_token_ids"]) == TOKENS and all(0 <= i < 200 for i in r["output_token_ids"]) for r in rows)
    assert all(r["arrivals_ms"][0] == pytest.approx(r["ttft_sec"] * 1000, abs=1e-3) for r in rows)
    assert sorted(r["send_time_sec"] for r in rows)[-1] > 0.2  # Poisson arrivals at 20 req/s spread over ~1 s
    js = json.loads((delayed_run.output / "stage-00.jetstream.json").read_text())
    assert js["metrics"]["median_tpot_ms"] == stage["tpotMs"]["median"] == js["metrics"]["median_TPOT_ms"]


@pytest.mark.parametrize("engine", ["cq", "aio"])
def test_closed_loop_throughput(engine: str, delay_server: Callable[..., Any], run_bench: Callable[..., Any]) -> None:
    server = delay_server("--ttft-ms", "50", "--itl-ms", "10", "--vocab-size", "200")
    run = run_bench(
        "--engine", engine, "--target", server.target, "--dataset", "synthetic", "--synthetic-input-length", "16",
        "--synthetic-output-length", "6", "--num-prompts", "40", "--concurrency", "4", "--warmup", "none",
    )  # fmt: skip
    assert run.code == 0, run.stdout
    stage = json.loads((run.output / "results.json").read_text())["stages"][0]
    latency_s = (50 + 5 * 10) / 1000
    # 4 in flight, each taking ~latency_s: about 4 / latency_s requests per second, never more.
    assert 0.5 * 4 / latency_s < stage["requestThroughput"] <= 4 / latency_s * 1.02
    assert stage["concurrency"] == 4


@pytest.mark.parametrize("engine", ["cq", "aio"])
def test_no_hidden_cap_on_streams_in_flight(engine: str) -> None:
    """300 streams on the one channel run at once against a gRPC server with default options (as JetStream's
    server_lib builds it): nothing queues them client-side (a cap of 100 would take >= 3 s here)."""
    import asyncio
    import time

    import grpc

    from tpuserve.bench.client import Record, encode_request
    from tpuserve.bench.streams import decode_one, open_streams

    async def decode(_request: bytes, _context: Any) -> Any:
        await asyncio.sleep(1.0)
        yield b"\x1a\x04\x0a\x02\x12\x00"  # one stream message with no token

    async def scenario() -> tuple[float, set[str]]:
        server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler(
            "jetstream_proto.Orchestrator", {"Decode": grpc.unary_stream_rpc_method_handler(decode)}
        )
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        streams = open_streams(f"127.0.0.1:{port}", engine=engine)
        try:
            start = time.perf_counter()
            records = await asyncio.gather(
                *(decode_one(streams, Record(i), encode_request([1, 2, 3], 1), 30) for i in range(300))
            )
            return time.perf_counter() - start, {r.code for r in records}
        finally:
            await streams.close()
            await server.stop(0)

    elapsed, codes = asyncio.run(scenario())
    assert codes == {"OK"}
    assert elapsed < 2.5
    # close() ends the completion-queue engine's receiver thread (nothing left polling a closed channel)
    import threading

    assert not [t for t in threading.enumerate() if t.name.startswith("tpuserve-cq")]
