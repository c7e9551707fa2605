"""Figures from raw records (all times from time.perf_counter, a monotonic clock).

Definitions (per successful request with at least one token):
- TTFT: first stream message received - request sent.
- latency: end of stream - request sent.
- TPOT (JetStream's, under its keys): latency / output tokens -- TTFT and queueing included.
- decode TPOT: (latency - TTFT) / (output tokens - 1), for requests with two or more tokens.
- ITL: gap between consecutive stream messages / tokens in the later message.
- TTST: second stream message - request sent (newer JetStream clients report it).
Statistics: numpy mean / median / linear-interpolation percentiles, as JetStream's client computes them.
Duration: first request sent to last response ended; throughputs are totals over it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from tpuserve.bench.client import OK, Record, parse_record
from tpuserve.bench.runner import StageRun
from tpuserve.bench.tokenizer import Tokenizer
from tpuserve.results import Goodput, LatencyStats, StageReport


@dataclass
class RequestResult:
    """One request after parsing: what the outputs file and the figures need."""

    record: Record
    prompt_len: int
    output_ids: list[int]
    counts: list[int]

    @property
    def ok(self) -> bool:
        return self.record.code == OK

    @property
    def output_len(self) -> int:
        return len(self.output_ids)

    @property
    def latency(self) -> float:
        return self.record.end - self.record.send

    @property
    def ttft(self) -> float | None:
        return self.record.arrivals[0] - self.record.send if self.record.arrivals else None

    @property
    def ttst(self) -> float | None:
        return self.record.arrivals[1] - self.record.send if len(self.record.arrivals) > 1 else None

    @property
    def decode_tpot(self) -> float | None:
        ttft = self.ttft
        if ttft is None or self.output_len < 2:
            return None
        return (self.latency - ttft) / (self.output_len - 1)


def stats_ms(values_s: list[float]) -> LatencyStats | None:
    if not values_s:
        return None
    a = np.asarray(values_s, dtype=np.float64) * 1000.0
    p50, p90, p95, p99 = np.percentile(a, [50, 90, 95, 99])
    return LatencyStats(
        mean=float(a.mean()), median=float(p50), p90=float(p90), p95=float(p95), p99=float(p99), max=float(a.max())
    )


def parse_run(run: StageRun) -> list[RequestResult]:
    results = []
    for request, record in zip(run.requests[: run.sent], run.records[: run.sent], strict=True):
        if record.end == 0.0:  # never reported finished by its engine before the stage stopped waiting
            record.code, record.detail = "CANCELLED", "cancelled by the benchmark (run ended)"
            record.end = run.end
        counts, ids = parse_record(record)
        results.append(RequestResult(record, request.prompt_len, ids, counts))
    return results


def stage_report(
    run: StageRun,
    results: list[RequestResult],
    slo_ttft_ms: float | None = None,
    slo_tpot_ms: float | None = None,
    tokenizer: Tokenizer | None = None,
) -> StageReport:
    ok = [r for r in results if r.ok]
    with_tokens = [r for r in ok if r.output_len > 0 and r.ttft is not None]
    duration = max(run.end - run.start, 1e-9) if results else 0.0
    total_in = sum(r.prompt_len for r in ok)
    total_out = sum(r.output_len for r in ok)
    itl: list[float] = []
    for r in with_tokens:
        arrivals = r.record.arrivals
        for k in range(1, len(arrivals)):
            if r.counts[k]:
                itl.append((arrivals[k] - arrivals[k - 1]) / r.counts[k])
    errors = Counter(r.record.code for r in results if not r.ok)
    goodput = None
    if slo_ttft_ms is not None or slo_tpot_ms is not None:
        good = 0
        for r in with_tokens:
            ttft_ok = slo_ttft_ms is None or (r.ttft or 0.0) * 1000.0 <= slo_ttft_ms
            tpot = r.decode_tpot
            tpot_ok = slo_tpot_ms is None or tpot is None or tpot * 1000.0 <= slo_tpot_ms
            good += ttft_ok and tpot_ok
        goodput = Goodput(requests=good, share=good / len(ok) if ok else 0.0, rate=good / duration if duration else 0.0)
    undecodable = 0
    if tokenizer is not None:
        size = tokenizer.vocab_size
        undecodable = sum(1 for r in ok for i in r.output_ids if not 0 <= i < size)
    per_s = (lambda x: x / duration) if duration else (lambda x: 0.0)
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
        tpot_ms=stats_ms([r.latency / r.output_len for r in with_tokens]),
        decode_tpot_ms=stats_ms([t for r in with_tokens if (t := r.decode_tpot) is not None]),
        itl_ms=stats_ms(itl),
        latency_ms=stats_ms([r.latency for r in ok]),
        goodput=goodput,
        errors=dict(sorted(errors.items())),
        undecodable_tokens=undecodable,
        empty_responses=len(ok) - len(with_tokens),
        message=run.aborted,
        client_cpu_seconds=run.cpu_seconds,
    )
