"""The benchmark summary as the termination message: camelCase, no nulls, at most 4096 bytes (not characters), and
read back unchanged. These are the tests `make mutation` runs against results.py."""

from __future__ import annotations

import json

import pytest

from tpuserve.results import SUMMARY_MAX_BYTES, BenchmarkSummary, LatencyStats

TTFT = LatencyStats(mean=250.0, median=240.0, p90=300.0, p95=320.0, p99=400.0, max=512.5)


def summary(message: str | None = None) -> BenchmarkSummary:
    return BenchmarkSummary(
        request_rate=4.0,
        successful_requests=10,
        failed_requests=0,
        duration_seconds=2.5,
        total_input_tokens=100,
        total_output_tokens=50,
        request_throughput=4.0,
        input_throughput=40.0,
        output_throughput=20.0,
        ttft_ms=TTFT,
        message=message,
    )


def test_the_message_is_camel_case_without_nulls_and_reads_back() -> None:
    text = summary().to_termination_message()
    data = json.loads(text)
    assert data["successfulRequests"] == 10
    assert data["ttftMs"]["p99"] == 400.0
    assert "successful_requests" not in data
    assert None not in data.values()
    assert "message" not in data
    assert "concurrency" not in data
    assert BenchmarkSummary.from_termination_message(text) == summary()


def test_a_summary_of_exactly_4096_bytes_fits() -> None:
    base = len(summary("").to_termination_message().encode())
    text = summary("x" * (SUMMARY_MAX_BYTES - base)).to_termination_message()
    assert len(text.encode()) == SUMMARY_MAX_BYTES


def test_one_byte_more_is_refused_counting_bytes_not_characters() -> None:
    base = len(summary("").to_termination_message().encode())
    with pytest.raises(ValueError, match=f"^benchmark summary is {SUMMARY_MAX_BYTES + 1} bytes, over 4096$"):
        summary("x" * (SUMMARY_MAX_BYTES + 1 - base)).to_termination_message()
    # "é" is two bytes in UTF-8: fewer than 4096 characters, more than 4096 bytes
    room = SUMMARY_MAX_BYTES - base
    with pytest.raises(ValueError, match="over 4096"):
        summary("é" * (room // 2 + 1)).to_termination_message()
