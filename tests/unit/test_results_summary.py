"""The benchmark summary as the termination message: camelCase, no nulls, at most 4096 bytes (not characters), and
read back unchanged. These are the tests `make mutation` runs against results.py."""

from __future__ import annotations

import json
import math

import pytest

from tpuserve.results import SUMMARY_MAX_BYTES, BenchmarkSummary, LatencyStats, _readable_tree, readable

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


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.5307101048601143, 0.5307),
        (8439.5213, 8439.5),  # at least one decimal, even past four figures
        (12.3456, 12.35),
        (0.000123456, 0.0001235),
        (3000.0, 3000.0),
        (0.0, 0.0),
        (-1.23456, -1.235),
        (float("inf"), float("inf")),
    ],
)
def test_status_figures_are_rounded_for_people(value: float, shown: float) -> None:
    assert readable(value) == shown


def test_a_nan_stays_nan() -> None:
    assert math.isnan(readable(float("nan")))


def test_a_readable_summary_rounds_every_figure_and_keeps_the_counts() -> None:
    full = summary().model_copy(
        update={
            "request_throughput": 10.123456,
            "duration_seconds": 98.76543,
            "ttft_ms": TTFT.model_copy(update={"p99": 400.123456}),
        }
    )
    shown = full.readable()
    assert type(shown) is BenchmarkSummary
    assert (shown.request_throughput, shown.duration_seconds) == (10.12, 98.77)
    assert shown.ttft_ms is not None
    assert shown.ttft_ms.p99 == 400.1
    assert shown.ttft_ms.max == 512.5
    assert (shown.successful_requests, shown.total_output_tokens) == (10, 50)
    assert isinstance(shown.successful_requests, int)
    assert shown.message is None
    assert full.request_throughput == 10.123456  # the original keeps full precision


def test_figures_in_lists_are_rounded_too() -> None:
    assert _readable_tree({"a": [1.23456, {"b": 2.34567}], "n": 3, "s": "x"}) == {
        "a": [1.235, {"b": 2.346}],
        "n": 3,
        "s": "x",
    }
