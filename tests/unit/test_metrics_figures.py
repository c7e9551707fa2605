"""Every figure of a stage report pinned on hand-made records, boundaries included (an SLO met exactly, a zero-length
stage, ids at the edge of the vocabulary). Times are binary fractions so that the expected milliseconds are exact.
These are the tests `make mutation` runs against bench/metrics.py."""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer as HFCore
from tokenizers import models, pre_tokenizers

from tpuserve.bench.client import Record
from tpuserve.bench.datasets import Request
from tpuserve.bench.metrics import parse_run, stage_report, stats_ms
from tpuserve.bench.runner import Stage, StageRun
from tpuserve.bench.tokenizer import HFTokenizer
from tpuserve.proto import jetstream_pb2
from tpuserve.results import OPENAI, Goodput

RATE_4 = Stage("rate=4", request_rate=4.0)


def jet(*ids: int) -> bytes:
    sample = jetstream_pb2.DecodeResponse.StreamContent.Sample(token_ids=list(ids))
    data: bytes = jetstream_pb2.DecodeResponse(
        stream_content=jetstream_pb2.DecodeResponse.StreamContent(samples=[sample])
    ).SerializeToString()
    return data


def sse(payload: object) -> bytes:
    return b"data: " + (b"[DONE]" if payload == "[DONE]" else json.dumps(payload).encode()) + b"\n\n"


def chunk(text: str) -> bytes:
    return sse({"choices": [{"text": text}]})


def usage(completion: int, prompt: int | None = None) -> bytes:
    counts = {"completion_tokens": completion} | ({} if prompt is None else {"prompt_tokens": prompt})
    return sse({"choices": [], "usage": counts})


def record(
    index: int,
    send: float,
    arrivals: list[float],
    messages: list[bytes],
    end: float,
    code: str = "OK",
    detail: str = "",
) -> Record:
    return Record(index, send, end, arrivals, messages, code, detail)


def requests(*prompt_lens: int) -> list[Request]:
    return [Request("", [1] * n, "", 4, 4, i) for i, n in enumerate(prompt_lens)]


def stage_run(
    records: list[Record], prompt_lens: list[int], start: float, end: float, stage: Stage = RATE_4
) -> StageRun:
    return StageRun(stage, requests(*prompt_lens), records, start=start, end=end, sent=len(records))


def word_tokenizer() -> HFTokenizer:
    """A real (tiny) Hugging Face tokenizer: four words, one id each."""
    core = HFCore(models.WordLevel({"<unk>": 0, "a": 1, "b": 2, "c": 3}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return HFTokenizer(core, "words")


def test_stats_are_numpy_linear_percentiles_in_milliseconds() -> None:
    stats = stats_ms([v / 1000 for v in range(1, 101)])  # 1 .. 100 ms
    assert stats is not None
    assert stats.model_dump() == pytest.approx(
        {"mean": 50.5, "median": 50.5, "p90": 90.1, "p95": 95.05, "p99": 99.01, "max": 100.0}
    )
    assert stats_ms([]) is None


def test_jetstream_stage_every_figure() -> None:
    long_reason = "x" * 400
    records = [
        # 4 tokens in 3 messages: +0.25 s (1 token), +0.5 s (2 tokens), +1.0 s (1 token); the stream ends at +1.5 s
        record(0, 10.0, [10.25, 10.5, 11.0], [jet(5), jet(6, 7), jet(8)], 11.5),
        # one token that arrives at the instant of sending: TTFT 0, no decode TPOT, no ITL
        record(1, 10.0, [10.0], [jet(9)], 10.125),
        record(2, 10.5, [], [], 10.75, "RESOURCE_EXHAUSTED", long_reason),
        record(3, 10.5, [], [], 10.75, "RESOURCE_EXHAUSTED", "a later reason"),
    ]
    run = stage_run(records, [10, 20, 5, 3], start=10.0, end=12.0)
    run.unsent, run.aborted, run.cpu_seconds = 2, "stopped at the deadline", 0.75
    report = stage_report(run, parse_run(run))
    assert report.model_dump(
        include={
            "name",
            "request_rate",
            "concurrency",
            "successful_requests",
            "failed_requests",
            "unsent_requests",
            "duration_seconds",
            "total_input_tokens",
            "total_output_tokens",
            "request_throughput",
            "input_throughput",
            "output_throughput",
            "total_throughput",
            "errors",
            "error_examples",
            "undecodable_tokens",
            "empty_responses",
            "requests_without_usage",
            "message",
            "client_cpu_seconds",
            "goodput",
        }
    ) == {
        "name": "rate=4",
        "request_rate": 4.0,
        "concurrency": None,
        "successful_requests": 2,
        "failed_requests": 2,
        "unsent_requests": 2,
        "duration_seconds": 2.0,
        "total_input_tokens": 30,  # failed requests' prompts do not count
        "total_output_tokens": 5,
        "request_throughput": 1.0,
        "input_throughput": 15.0,
        "output_throughput": 2.5,
        "total_throughput": 17.5,
        "errors": {"RESOURCE_EXHAUSTED": 2},
        "error_examples": {"RESOURCE_EXHAUSTED": "x" * 300},  # the first reason, cut at 300 characters
        "undecodable_tokens": 0,
        "empty_responses": 0,
        "requests_without_usage": 0,
        "message": "stopped at the deadline",
        "client_cpu_seconds": 0.75,
        "goodput": None,
    }
    assert report.ttft_ms is not None
    assert (report.ttft_ms.mean, report.ttft_ms.max) == (125.0, 250.0)
    assert report.ttst_ms is not None
    assert (report.ttst_ms.mean, report.ttst_ms.max) == (500.0, 500.0)
    # JetStream's TPOT = latency / tokens: 1.5 s / 4 and 0.125 s / 1
    assert report.tpot_ms is not None
    assert (report.tpot_ms.mean, report.tpot_ms.max) == (250.0, 375.0)
    # decode TPOT = (E2EL - TTFT) / (tokens - 1), the 4-token request only
    assert report.decode_tpot_ms is not None
    assert report.decode_tpot_ms.max == pytest.approx(1250.0 / 3)
    # ITL per token: 0.25 s over 2 tokens, then 0.5 s over 1; chunk ITL: the gaps themselves
    assert report.itl_ms is not None
    assert (report.itl_ms.mean, report.itl_ms.max) == (312.5, 500.0)
    assert report.chunk_itl_ms is not None
    assert (report.chunk_itl_ms.mean, report.chunk_itl_ms.max) == (375.0, 500.0)
    # gRPC: E2EL is the stream's end, as latency
    assert report.e2el_ms is not None
    assert (report.e2el_ms.mean, report.e2el_ms.max) == (812.5, 1500.0)
    assert report.latency_ms is not None
    assert (report.latency_ms.mean, report.latency_ms.max) == (812.5, 1500.0)


def test_request_rate_and_concurrency_are_reported_as_run() -> None:
    def rate(stage: Stage) -> tuple[float | None, int | None]:
        run = stage_run([record(0, 0.0, [0.5], [jet(1)], 1.0)], [4], start=0.0, end=1.0, stage=stage)
        report = stage_report(run, parse_run(run))
        return report.request_rate, report.concurrency

    assert rate(RATE_4) == (4.0, None)
    assert rate(Stage("rate=inf", request_rate=float("inf"))) == (None, None)  # all at once: no rate
    assert rate(Stage("concurrency=8", concurrency=8)) == (None, 8)


# One request: TTFT 250 ms, decode TPOT (1.0 - 0.25) / 2 = 375 ms, E2EL 1000 ms, in a 2 s stage.
ONE_REQUEST = [record(0, 0.0, [0.25, 0.5, 0.75], [jet(1), jet(2), jet(3)], 1.0)]


@pytest.mark.parametrize(
    ("ttft", "tpot", "e2el", "good"),
    [
        (250.0, None, None, 1),  # met exactly
        (249.9, None, None, 0),
        (None, 375.0, None, 1),
        (None, 374.9, None, 0),
        (None, None, 1000.0, 1),
        (None, None, 999.9, 0),
        (250.0, 375.0, 1000.0, 1),
        (250.0, 374.9, 1000.0, 0),
    ],
)
def test_goodput_counts_an_slo_met_exactly(
    ttft: float | None, tpot: float | None, e2el: float | None, good: int
) -> None:
    run = stage_run(ONE_REQUEST, [4], start=0.0, end=2.0)
    report = stage_report(run, parse_run(run), slo_ttft_ms=ttft, slo_tpot_ms=tpot, slo_e2el_ms=e2el)
    assert report.goodput == Goodput(requests=good, share=float(good), rate=good / 2.0)


def test_no_slo_no_goodput() -> None:
    run = stage_run(ONE_REQUEST, [4], start=0.0, end=2.0)
    assert stage_report(run, parse_run(run)).goodput is None


def test_a_first_token_at_the_send_instant_meets_any_ttft_slo() -> None:
    run = stage_run([record(0, 1.0, [1.0, 1.5], [jet(1), jet(2)], 1.5)], [4], start=1.0, end=2.0)
    report = stage_report(run, parse_run(run), slo_ttft_ms=10.0)
    assert report.goodput is not None
    assert report.goodput.requests == 1
    assert report.ttst_ms is not None  # a second message, the last one: TTST 0.5 s
    assert report.ttst_ms.max == 500.0


def test_a_stage_that_sent_nothing_reports_zeros() -> None:
    run = StageRun(RATE_4, requests(4), [], start=3.0, end=5.0, sent=0, unsent=1)
    report = stage_report(run, [], slo_ttft_ms=100.0)
    assert (report.duration_seconds, report.request_throughput, report.output_throughput) == (0.0, 0.0, 0.0)
    assert report.goodput == Goodput(requests=0, share=0.0, rate=0.0)
    assert report.ttft_ms is None
    assert report.latency_ms is None
    assert report.unsent_requests == 1


def test_a_stage_without_a_successful_request_has_no_goodput_share() -> None:
    run = stage_run([record(0, 0.0, [], [], 0.5, "UNAVAILABLE", "refused")], [4], start=0.0, end=1.0)
    report = stage_report(run, parse_run(run), slo_e2el_ms=100.0)
    assert report.goodput == Goodput(requests=0, share=0.0, rate=0.0)
    assert report.error_examples == {"UNAVAILABLE": "refused"}


def test_a_zero_length_stage_is_floored_at_a_nanosecond() -> None:
    run = stage_run([record(0, 1.0, [1.0], [jet(1)], 1.0)], [4], start=1.0, end=1.0)
    report = stage_report(run, parse_run(run))
    assert report.duration_seconds == 1e-9
    assert report.request_throughput == pytest.approx(1e9)


def test_ids_outside_the_vocabulary_are_counted_for_successful_requests() -> None:
    records = [
        record(0, 0.0, [0.25, 0.5], [jet(-1, 0), jet(1, 3)], 0.5),
        record(1, 0.0, [0.25], [jet(4)], 0.5),  # 4 == vocabulary size: outside
        record(2, 0.0, [0.25], [jet(-5, 7)], 0.5, "INTERNAL", "died"),  # failed: not counted
    ]
    run = stage_run(records, [4, 4, 4], start=0.0, end=1.0)
    assert stage_report(run, parse_run(run), tokenizer=word_tokenizer()).undecodable_tokens == 2
    assert stage_report(run, parse_run(run)).undecodable_tokens == 0  # no tokenizer: not checked


def test_unfinished_requests_are_cancelled_at_the_end_of_the_run() -> None:
    records = [record(0, 1.0, [1.25], [jet(1)], 0.0), record(1, 0.5, [0.75], [jet(2)], 1.0)]
    run = stage_run(records, [4, 4], start=0.5, end=3.0)
    results = parse_run(run)
    assert [(r.record.code, r.record.end) for r in results] == [("CANCELLED", 3.0), ("OK", 1.0)]
    report = stage_report(run, results)
    assert report.errors == {"CANCELLED": 1}
    assert report.error_examples == {"CANCELLED": "cancelled by the benchmark (run ended)"}


def test_records_must_match_the_requests_sent() -> None:
    run = StageRun(RATE_4, requests(4, 4), [record(0, 0.0, [0.5], [jet(1)], 1.0)], start=0.0, end=1.0, sent=2)
    with pytest.raises(ValueError, match="shorter"):
        parse_run(run)


def test_openai_stage_every_figure() -> None:
    records = [
        # one token per chunk (usage says 3, three chunks): per-token ITL; usage's prompt_tokens wins over ours
        record(
            0,
            0.0,
            [0.25, 0.5, 1.0, 1.0, 1.0],
            [chunk("a"), chunk(" b"), chunk(" c"), usage(3, prompt=7), sse("[DONE]")],
            1.25,
        ),
        # two tokens per chunk (usage 4, two chunks): chunk ITL only; no prompt_tokens: the request's own length
        record(1, 0.0, [0.5, 1.0, 1.0, 1.0], [chunk("a b"), chunk(" c a"), usage(4), sse("[DONE]")], 1.5),
        # usage-only, no chunk with choices: successful but empty
        record(2, 0.0, [0.5, 0.5], [usage(3), sse("[DONE]")], 0.5),
    ]
    run = stage_run(records, [10, 5, 6], start=0.0, end=2.0)
    report = stage_report(run, parse_run(run, OPENAI))
    assert (report.successful_requests, report.empty_responses, report.requests_without_usage) == (3, 1, 0)
    assert (report.total_input_tokens, report.total_output_tokens) == (7 + 5 + 6, 3 + 4 + 3)
    assert report.ttft_ms is not None
    assert (report.ttft_ms.mean, report.ttft_ms.max) == (375.0, 500.0)
    assert report.itl_ms is not None
    assert (report.itl_ms.mean, report.itl_ms.max) == (375.0, 500.0)
    assert report.chunk_itl_ms is not None
    assert report.chunk_itl_ms.mean == pytest.approx(1250.0 / 3)
    assert report.chunk_itl_ms.max == 500.0
    # E2EL ends at the last chunk with choices, latency at the end of the response
    assert report.e2el_ms is not None
    assert (report.e2el_ms.mean, report.e2el_ms.max) == (1000.0, 1000.0)
    assert report.latency_ms is not None
    assert report.latency_ms.max == 1500.0
    # decode TPOT: (1.0 - 0.25) / 2 and (1.0 - 0.5) / 3
    assert report.decode_tpot_ms is not None
    assert report.decode_tpot_ms.mean == pytest.approx((375.0 + 500.0 / 3) / 2)
    assert report.tpot_ms is not None
    assert (report.tpot_ms.mean, report.tpot_ms.max) == pytest.approx(((1250.0 / 3 + 375.0) / 2, 1250.0 / 3))


def test_openai_without_usage_counts_the_text_with_the_tokenizer() -> None:
    chunks = [chunk("a"), chunk(" b"), chunk(" c"), sse("[DONE]")]
    run = stage_run([record(0, 0.0, [0.25, 0.5, 1.0, 1.0], chunks, 1.0)], [4], start=0.0, end=1.0)
    tokenizer = word_tokenizer()
    results = parse_run(run, OPENAI, tokenizer)
    assert results[0].text == "a b c"  # kept for the outputs file
    with_tokenizer = stage_report(run, results, tokenizer=tokenizer)  # as `tpuserve bench` calls it
    assert (with_tokenizer.total_output_tokens, with_tokenizer.requests_without_usage) == (3, 1)
    assert with_tokenizer.undecodable_tokens == 0  # OpenAI streams carry text, not ids
    assert with_tokenizer.itl_ms is not None
    assert with_tokenizer.itl_ms.max == 500.0
    # Without a tokenizer nothing is counted: the request still has a TTFT, but no per-token figure.
    without = stage_report(run, parse_run(run, OPENAI))
    assert (without.total_output_tokens, without.requests_without_usage, without.empty_responses) == (0, 1, 0)
    assert without.ttft_ms is not None
    assert without.ttft_ms.max == 250.0
    assert without.tpot_ms is None
    assert without.itl_ms is None
    assert without.chunk_itl_ms is not None
    assert without.chunk_itl_ms.max == 500.0


def test_openai_chunks_with_empty_text_and_no_usage_do_not_break_the_report() -> None:
    """A role-only first delta and an empty one, no usage: zero tokens counted, so no per-token latency."""
    chunks = [sse({"choices": [{"delta": {"role": "assistant", "content": ""}}]}), chunk(""), sse("[DONE]")]
    run = stage_run([record(0, 0.0, [0.5, 0.75, 1.0], chunks, 1.0)], [4], start=0.0, end=1.0)
    report = stage_report(run, parse_run(run, OPENAI, word_tokenizer()))
    assert (report.successful_requests, report.total_output_tokens, report.tpot_ms) == (1, 0, None)


def test_openai_stream_errors_fail_the_request_with_the_servers_reason() -> None:
    records = [
        record(0, 0.0, [0.5, 0.5], [sse({"error": {"message": "overloaded: retry"}}), sse("[DONE]")], 0.5),
        # already failed on the client side: the stream's own error does not replace the reason
        record(1, 0.0, [0.5], [sse({"error": "late"})], 0.5, "UNAVAILABLE", "connection reset"),
    ]
    run = stage_run(records, [4, 4], start=0.0, end=1.0)
    results = parse_run(run, OPENAI)
    assert [(r.record.code, r.record.detail) for r in results] == [
        ("STREAM_ERROR", "overloaded: retry"),
        ("UNAVAILABLE", "connection reset"),
    ]
    assert stage_report(run, results).failed_requests == 2


def test_messages_without_tokens_make_an_empty_response() -> None:
    """A stream of messages that carry no token id (gRPC) or a usage of zero tokens (OpenAI) has arrivals but
    produced nothing: it is a successful, empty response, with no TTFT."""
    empty_grpc = record(0, 0.0, [0.25, 0.5], [jet(), jet()], 0.5)
    run = stage_run([empty_grpc, record(1, 0.0, [0.5], [jet(1)], 1.0)], [4, 4], start=0.0, end=1.0)
    report = stage_report(run, parse_run(run))
    assert (report.successful_requests, report.empty_responses, report.total_output_tokens) == (2, 1, 1)
    assert report.ttft_ms is not None
    assert report.ttft_ms.max == 500.0
    zero_usage = record(0, 0.0, [0.25, 0.5, 0.5], [chunk(""), usage(0), sse("[DONE]")], 0.5)
    openai_run = stage_run([zero_usage], [4], start=0.0, end=1.0)
    openai_report = stage_report(openai_run, parse_run(openai_run, OPENAI))
    assert (openai_report.empty_responses, openai_report.ttft_ms) == (1, None)
