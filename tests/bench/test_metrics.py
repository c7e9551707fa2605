"""The metric definitions on hand-made records (exact values): multi-token messages, one-token answers,
failures, goodput."""

from __future__ import annotations

import pytest

from tpuserve.bench.client import Record
from tpuserve.bench.datasets import Request
from tpuserve.bench.metrics import parse_run, stage_report
from tpuserve.bench.runner import Stage, StageRun
from tpuserve.proto import jetstream_pb2


def message(*ids: int) -> bytes:
    sample = jetstream_pb2.DecodeResponse.StreamContent.Sample(token_ids=list(ids))
    data: bytes = jetstream_pb2.DecodeResponse(
        stream_content=jetstream_pb2.DecodeResponse.StreamContent(samples=[sample])
    ).SerializeToString()
    return data


def record(
    index: int, send: float, arrivals: list[float], messages: list[bytes], end: float, code: str = "OK"
) -> Record:
    return Record(index, send, end, arrivals, messages, code, "" if code == "OK" else "boom")


def test_definitions_exactly() -> None:
    requests = [
        Request("", [1] * 10, "", 4, 4, 0),
        Request("", [1] * 20, "", 1, 1, 1),
        Request("", [1] * 5, "", 4, 4, 2),
    ]
    records = [
        # 4 tokens in 3 messages: first at +0.1 s (1 token), +0.3 s (2 tokens), +0.4 s (1 token); ends +0.5 s
        record(0, 1.0, [1.1, 1.3, 1.4], [message(5), message(6, 7), message(8)], 1.5),
        # one token: TTFT 0.2 s, no decode TPOT
        record(1, 1.2, [1.4], [message(9)], 1.45),
        record(2, 1.3, [], [], 1.6, code="RESOURCE_EXHAUSTED"),
    ]
    run = StageRun(Stage("rate=inf", request_rate=float("inf")), requests, records, start=1.0, end=2.0, sent=3)
    report = stage_report(run, parse_run(run), slo_ttft_ms=150, slo_tpot_ms=200)
    assert report.successful_requests == 2
    assert report.failed_requests == 1
    assert report.errors == {"RESOURCE_EXHAUSTED": 1}
    assert report.total_input_tokens == 30
    assert report.total_output_tokens == 5
    assert report.duration_seconds == pytest.approx(1.0)
    assert report.output_throughput == pytest.approx(5.0)
    assert report.total_throughput == pytest.approx(35.0)
    assert report.ttft_ms is not None
    assert report.ttft_ms.max == pytest.approx(200.0)
    assert report.ttft_ms.mean == pytest.approx(150.0)
    # JetStream TPOT = latency / tokens: 0.5/4 and 0.25/1
    assert report.tpot_ms is not None
    assert report.tpot_ms.max == pytest.approx(250.0)
    assert report.tpot_ms.mean == pytest.approx((125.0 + 250.0) / 2)
    # decode TPOT = (latency - TTFT) / (tokens - 1) = (0.5 - 0.1) / 3, only for the 4-token request
    assert report.decode_tpot_ms is not None
    assert report.decode_tpot_ms.mean == pytest.approx(400.0 / 3)
    # ITL per token: (1.3 - 1.1) / 2 tokens, (1.4 - 1.3) / 1 token
    assert report.itl_ms is not None
    assert report.itl_ms.max == pytest.approx(100.0)
    assert report.itl_ms.mean == pytest.approx(100.0)
    # TTST = second message - send
    assert report.ttst_ms is not None
    assert report.ttst_ms.max == pytest.approx(300.0)
    # goodput: request 0 meets TTFT 150 and decode TPOT 200 (133 ms); request 1 misses TTFT (200 ms)
    assert report.goodput is not None
    assert report.goodput.requests == 1
    assert report.goodput.share == 0.5
    assert report.request_rate is None  # all at once


def test_an_empty_answer_is_successful_but_not_completed_as_jetstream_counts() -> None:
    """Status OK with no token: ours counts it successful (and reports it apart); JetStream's `completed` and
    request_throughput leave it out, while its input tokens still count, as in JetStream 0.2.2's calculate_metrics."""
    from datetime import UTC, datetime

    from tpuserve.bench.outputs import jetstream_result

    requests = [Request("", [1] * 10, "", 4, 4, 0), Request("", [1] * 7, "", 4, 4, 1)]
    records = [record(0, 1.0, [1.1], [message(5)], 1.2), record(1, 1.0, [], [], 1.5)]
    run = StageRun(Stage("rate=inf", request_rate=float("inf")), requests, records, start=1.0, end=2.0, sent=2)
    report = stage_report(run, parse_run(run))
    assert report.successful_requests == 2
    assert report.empty_responses == 1
    assert report.ttft_ms is not None
    assert report.ttft_ms.max == pytest.approx(100.0)
    metrics = jetstream_result(report, 2, "m", "t", {}, datetime.now(UTC))["metrics"]
    assert metrics["completed"] == 1
    assert metrics["request_throughput"] == pytest.approx(1.0)
    assert metrics["total_input_tokens"] == 17
