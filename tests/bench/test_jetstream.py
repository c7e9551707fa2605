"""Against JetStream 0.2.2's real code (its own venv, `make jetstream`): the mock-engine server end to end, and
wire compatibility both ways with the upstream generated modules."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tpuserve.bench.client import Client, Record, encode_request, parse_messages
from tpuserve.bench.streams import decode_one, open_streams

pytestmark = pytest.mark.jetstream
HERE = Path(__file__).resolve().parent.parent / "jetstream"


def test_against_jetstreams_mock_server(
    jetstream_mock_server: str, run_bench: Callable[..., Any], bench_data: dict[str, Path]
) -> None:
    """16 requests x 8 tokens (a generate step takes ~1 s here); the mock engine's ids exceed the vocabulary."""
    run = run_bench(
        "--target", jetstream_mock_server, "--dataset", "sharegpt", "--dataset-path", str(bench_data["sharegpt"]),
        "--tokenizer", str(bench_data["tokenizer"]), "--num-prompts", "16", "--max-output-length", "8",
        "--warmup", "none", "--save-request-outputs", "--model", "mock",
    )  # fmt: skip
    assert run.code == 0, run.stdout
    assert run.summary["successfulRequests"] == 16
    assert run.summary["totalOutputTokens"] == 16 * 8
    assert run.summary["ttftMs"]["median"] > 0
    assert run.summary["decodeTpotMs"]["median"] > 0
    assert "Successful requests: 16" in run.stdout
    assert "Undecodable output token ids" in run.stdout  # mock ids beyond the 200-piece vocabulary
    js = json.loads((run.output / "stage-00.jetstream.json").read_text())
    assert js["metrics"]["completed"] == 16
    assert js["dimensions"]["model_id"] == "mock"


def _start(python: str, script: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([python, str(script)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("PORT "), line
    return process, f"127.0.0.1:{line.split()[1]}"


async def _decode(target: str, prompt: list[int], max_tokens: int) -> tuple[bool, Record]:
    client = Client(target)
    streams = open_streams(target)
    try:
        live = await client.health(timeout=10)
        record = await decode_one(streams, Record(0), encode_request(prompt, max_tokens), timeout=30)
    finally:
        await streams.close()
        await client.close()
    return live, record


def test_our_client_against_the_upstream_servicer(jetstream_venv_python: str) -> None:
    import asyncio

    process, target = _start(jetstream_venv_python, HERE / "upstream_servicer_server.py")
    try:
        prompt = [5, 17, 300, 4000]
        live, record = asyncio.run(_decode(target, prompt, 6))
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert live, record.detail
    assert record.code == "OK", record.detail
    counts, ids = parse_messages(record.messages)
    assert counts == [1] * 6
    assert ids == [(sum(prompt) + i) % 30000 for i in range(6)]


def test_jetstreams_client_against_our_test_server(
    jetstream_venv_python: str, delay_server: Callable[..., Any]
) -> None:
    server = delay_server("--ttft-ms", "30", "--itl-ms", "5", "--vocab-size", "32000")
    done = subprocess.run(
        [jetstream_venv_python, str(HERE / "upstream_client.py"), server.target, "7", "1", "2", "3", "4"],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["live"] is True
    assert answer["tokens"] == [3 + (i * 7919) % (32000 - 3) for i in range(7)]
    assert answer["ttft"] >= 0.030
    assert answer["latency"] >= 0.030 + 6 * 0.005
