"""Figures from raw records (all times from time.perf_counter, a monotonic clock), for both protocols.

A "token message" is a gRPC stream message, or an OpenAI SSE chunk with non-empty `choices` (its text may be
empty; usage-only, error and [DONE] events are not). Output tokens are the token ids received (gRPC) or
`usage.completion_tokens` (OpenAI; never the number of chunks). Definitions (per successful request with at
least one token message):
- TTFT: first token message received - request sent (vllm bench serve: the same).
- latency: end of the response - request sent.
- E2EL (vllm bench serve's): last token message - request sent (gRPC: the stream's end, as JetStream times it).
- TPOT (JetStream's, under its keys): latency / output tokens -- TTFT and queueing included.
- decode TPOT (vllm bench serve's TPOT): (E2EL - TTFT) / (output tokens - 1), for requests with two or more tokens.
- ITL: gap between consecutive token messages / tokens in the later message (OpenAI: only when every chunk of
  the request carried one token, i.e. chunks == usage tokens; else the request adds no per-token ITL).
- chunk ITL (vllm bench serve's ITL): gap between consecutive token messages, whatever they carry.
- TTST: second stream message - request sent (newer JetStream clients report it).
Goodput (vllm bench serve's): a request is good when its TTFT, decode TPOT (0 for one token) and E2EL are each
at most their SLO, for the SLOs given.
Statistics: numpy mean / median / linear-interpolation percentiles, as JetStream's client computes them.
Duration: first request sent to last response ended; throughputs are totals over it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from tpuserve.bench.client import OK, Record, parse_record
from tpuserve.bench.openai import parse_stream
from tpuserve.bench.runner import StageRun
from tpuserve.bench.tokenizer import Tokenizer
from tpuserve.results import JETSTREAM, OPENAI, Goodput, LatencyStats, StageReport


@dataclass
class RequestResult:
    """One request after parsing: what the outputs file and the figures need (either protocol)."""

    record: Record
    prompt_len: int
    output_ids: list[int]  # gRPC: the ids received; OpenAI: none
    counts: list[int]  # tokens per token message; OpenAI: [] when the chunks do not say
    times: list[float] | None = None  # token messages' arrivals; None = every stream message (gRPC)
    output_tokens: int | None = None  # OpenAI: usage.completion_tokens (or the tokenizer's count, see usage_missing)
    text: str | None = None  # OpenAI: the streamed text
    usage_missing: bool = False  # OpenAI: the stream had no usage

    @property
    def arrivals(self) -> list[float]:
        return self.record.arrivals if self.times is None else self.times

    @property
    def ok(self) -> bool:
        return self.record.code == OK

    @property
    def output_len(self) -> int:
        return len(self.output_ids) if self.output_tokens is None else self.output_tokens

    @property
    def latency(self) -> float:
        return self.record.end - self.record.send

    @property
    def e2el(self) -> float:
        if self.times is None or not self.times:
            return self.latency
        return self.times[-1] - self.record.send

    @property
    def ttft(self) -> float | None:
        arrivals = self.arrivals
        return arrivals[0] - self.record.send if arrivals else None

    @property
    def ttst(self) -> float | None:
        arrivals = self.arrivals
        return arrivals[1] - self.record.send if len(arrivals) > 1 else None

    @property
    def decode_tpot(self) -> float | None:
        ttft = self.ttft
        if ttft is None or self.output_len < 2:
            return None
        return (self.e2el - ttft) / (self.output_len - 1)


def stats_ms(values_s: list[float]) -> LatencyStats | None:
    if not values_s:
        return None
    a = np.asarray(values_s, dtype=np.float64) * 1000.0
    p50, p90, p95, p99 = np.percentile(a, [50, 90, 95, 99])
    return LatencyStats(
        mean=float(a.mean()), median=float(p50), p90=float(p90), p95=float(p95), p99=float(p99), max=float(a.max())
    )


def parse_openai(record: Record, prompt_len: int, tokenizer: Tokenizer | None) -> RequestResult:
    """An OpenAI stream: chunks with choices are the token messages, usage gives the token count; a stream error
    (or a malformed stream) fails the request with the server's reason."""
    stream = parse_stream(record)
    if stream.error is not None and record.code == OK:
        record.code, _, record.detail = stream.error.partition(": ")
    tokens = stream.completion_tokens
    missing = tokens is None
    if missing:
        # vllm bench serve's fallback: count the streamed text with the tokenizer (may overcount slightly).
        tokens = len(tokenizer.encode(stream.text)) if tokenizer is not None and stream.text else 0
    counts = [1] * len(stream.times) if tokens == len(stream.times) else []
    return RequestResult(
        record,
        stream.prompt_tokens if stream.prompt_tokens is not None else prompt_len,
        [],
        counts,
        times=stream.times,
        output_tokens=tokens,
        text=stream.text,
        usage_missing=missing,
    )


def parse_run(run: StageRun, protocol: str = JETSTREAM, tokenizer: Tokenizer | None = None) -> list[RequestResult]:
    results = []
    for request, record in zip(run.requests[: run.sent], run.records[: run.sent], strict=True):
        if record.end == 0.0:  # never reported finished by its engine before the stage stopped waiting
            record.code, record.detail = "CANCELLED", "cancelled by the benchmark (run ended)"
            record.end = run.end
        if protocol == OPENAI:
            results.append(parse_openai(record, request.prompt_len, tokenizer))
            continue
        counts, ids = parse_record(record)
        results.append(RequestResult(record, request.prompt_len, ids, counts))
    return results


def stage_report(
    run: StageRun,
    results: list[RequestResult],
    slo_ttft_ms: float | None = None,
    slo_tpot_ms: float | None = None,
    tokenizer: Tokenizer | None = None,
    slo_e2el_ms: float | None = None,
) -> StageReport:
    ok = [r for r in results if r.ok]
    with_tokens = [r for r in ok if (r.output_len > 0 or r.usage_missing) and r.ttft is not None]
    duration = max(run.end - run.start, 1e-9) if results else 0.0
    total_in = sum(r.prompt_len for r in ok)
    total_out = sum(r.output_len for r in ok)
    itl: list[float] = []
    chunk_itl: list[float] = []
    for r in with_tokens:
        arrivals = r.arrivals
        per_token = len(r.counts) == len(arrivals)
        for k in range(1, len(arrivals)):
            gap = arrivals[k] - arrivals[k - 1]
            chunk_itl.append(gap)
            if per_token and r.counts[k]:
                itl.append(gap / r.counts[k])
    errors = Counter(r.record.code for r in results if not r.ok)
    examples: dict[str, str] = {}
    for r in results:
        if not r.ok and r.record.code not in examples:
            examples[r.record.code] = r.record.detail[:300]
    goodput = None
    if slo_ttft_ms is not None or slo_tpot_ms is not None or slo_e2el_ms is not None:
        good = 0
        for r in with_tokens:
            ttft_ok = slo_ttft_ms is None or (r.ttft or 0.0) * 1000.0 <= slo_ttft_ms
            tpot = r.decode_tpot
            tpot_ok = slo_tpot_ms is None or tpot is None or tpot * 1000.0 <= slo_tpot_ms
            e2el_ok = slo_e2el_ms is None or r.e2el * 1000.0 <= slo_e2el_ms
            good += ttft_ok and tpot_ok and e2el_ok
        goodput = Goodput(requests=good, share=good / len(ok) if ok else 0.0, rate=good / duration if duration else 0.0)
    undecodable = 0
    if tokenizer is not None:
        size = tokenizer.vocab_size
        undecodable = sum(1 for r in ok for i in r.output_ids if not 0 <= i < size)
    per_s = (lambda x: x / duration) if duration else (lambda _: 0.0)
    return StageReport(
        name=run.stage.name,
        request_rate=run.stage.request_rate
        if run.stage.request_rate is None or run.stage.request_rate < float("inf")
        else None,
        concurrency=run.stage.concurrency,
        successful_requests=len(ok),
        failed_requests=len(results) - len(ok),
        unsent_requests=run.unsent,
        duration_seconds=duration,
        total_input_tokens=total_in,
        total_output_tokens=total_out,
        request_throughput=per_s(len(ok)),
        input_throughput=per_s(total_in),
        output_throughput=per_s(total_out),
        total_throughput=per_s(total_in + total_out),
        ttft_ms=stats_ms([r.ttft for r in with_tokens if r.ttft is not None]),
        ttst_ms=stats_ms([r.ttst for r in with_tokens if r.ttst is not None]),
        # an OpenAI stream without usage whose text counts no token (no tokenizer, empty deltas) has no TPOT
        tpot_ms=stats_ms([r.latency / r.output_len for r in with_tokens if r.output_len > 0]),
        decode_tpot_ms=stats_ms([t for r in with_tokens if (t := r.decode_tpot) is not None]),
        itl_ms=stats_ms(itl),
        chunk_itl_ms=stats_ms(chunk_itl),
        e2el_ms=stats_ms([r.e2el for r in with_tokens]),
        latency_ms=stats_ms([r.latency for r in ok]),
        goodput=goodput,
        errors=dict(sorted(errors.items())),
        undecodable_tokens=undecodable,
        empty_responses=len(ok) - len(with_tokens),
        requests_without_usage=sum(1 for r in ok if r.usage_missing),
        error_examples=examples,
        message=run.aborted,
        client_cpu_seconds=run.cpu_seconds,
    )
