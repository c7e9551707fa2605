"""What a run leaves behind: the console summary, the files, and the termination-message summary."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

import numpy as np

from tpuserve import termination
from tpuserve.bench import storage
from tpuserve.bench.datasets import Request
from tpuserve.bench.metrics import RequestResult
from tpuserve.bench.tokenizer import Tokenizer
from tpuserve.results import BenchmarkSummary, LatencyStats, StageBrief, StageReport

RESULTS_FILE = "results.json"
# Above this share of one core the client itself may be what limits the measured figures.
CLIENT_BUSY_WARNING = 0.9


@dataclass(frozen=True)
class VllmSettings:
    """The run settings vllm bench serve writes beside its figures."""

    backend: str  # vLLM's backend name: "openai" (completions) or "openai-chat"; "jetstream" for gRPC runs
    model_id: str
    tokenizer_id: str
    num_prompts: int
    burstiness: float = 1.0
    max_concurrency: int | None = None
    goodput_slos_ms: dict[str, float] = field(default_factory=dict)  # ttft / tpot / e2el


def _ms(stats: LatencyStats | None, attr: str) -> float:
    return float(getattr(stats, attr)) if stats is not None else math.nan


def print_summary(stage: StageReport, out: TextIO) -> None:
    """The seed's (JetStream 0.2.2's) lines first, byte for byte in format, then the extra figures."""
    p = out.write
    p(f"Successful requests: {stage.successful_requests}\n")
    p(f"Benchmark duration: {stage.duration_seconds:2f} s\n")
    p(f"Total input tokens: {stage.total_input_tokens}\n")
    p(f"Total generated tokens: {stage.total_output_tokens}\n")
    p(f"Request throughput: {stage.request_throughput:.2f} requests/s\n")
    p(f"Input token throughput: {stage.input_throughput:.2f} tokens/s\n")
    p(f"Output token throughput: {stage.output_throughput:.2f} tokens/s\n")
    for label, stats in (("TTFT", stage.ttft_ms), ("TPOT", stage.tpot_ms)):
        p(f"Mean {label}: {_ms(stats, 'mean'):.2f} ms\n")
        p(f"Median {label}: {_ms(stats, 'median'):.2f} ms\n")
        p(f"P99 {label}: {_ms(stats, 'p99'):.2f} ms\n")
    p("---- tpuserve extras (TPOT above is JetStream's: latency / tokens, TTFT included) ----\n")
    p(f"Failed requests: {stage.failed_requests}")
    p(f"  {stage.errors}\n" if stage.errors else "\n")
    for code, detail in sorted(stage.error_examples.items()):
        p(f"  first {code}: {detail}\n")
    if stage.empty_responses:
        p(f"Empty responses: {stage.empty_responses} (status OK, no token; JetStream does not count them completed)\n")
    if stage.requests_without_usage:
        p(f"Streams without usage: {stage.requests_without_usage} (their tokens counted from the text)\n")
    if stage.unsent_requests:
        p(f"Unsent requests: {stage.unsent_requests}\n")
    p(f"Total token throughput: {stage.total_throughput:.2f} tokens/s\n")
    p(f"{'':18}{'mean':>10}{'median':>10}{'p90':>10}{'p95':>10}{'p99':>10}{'max':>10}\n")
    for label, stats in (
        ("TTFT ms", stage.ttft_ms),
        ("Decode TPOT ms", stage.decode_tpot_ms),
        ("ITL ms", stage.itl_ms),
        ("Chunk ITL ms", stage.chunk_itl_ms),
        ("E2EL ms", stage.e2el_ms),
        ("E2E latency ms", stage.latency_ms),
        ("JetStream TPOT ms", stage.tpot_ms),
    ):
        if stats is None:
            p(f"{label:18}{'n/a':>10}\n")
            continue
        p(
            f"{label:18}"
            + "".join(f"{v:10.2f}" for v in (stats.mean, stats.median, stats.p90, stats.p95, stats.p99, stats.max))
            + "\n"
        )
    if stage.goodput is not None:
        g = stage.goodput
        p(f"Goodput: {g.requests} requests ({g.share:.1%}) = {g.rate:.2f} requests/s\n")
    if stage.undecodable_tokens:
        p(f"Undecodable output token ids (outside the tokenizer): {stage.undecodable_tokens}\n")
    if stage.duration_seconds > 0:
        busy = stage.client_cpu_seconds / stage.duration_seconds
        p(f"Client CPU: {stage.client_cpu_seconds:.2f} s in {stage.duration_seconds:.2f} s ({busy:.0%} of one core)\n")
        if busy > CLIENT_BUSY_WARNING:
            p("Warning: the client was busy most of the stage and may have limited these figures\n")
    if stage.message:
        p(f"Stage ended early: {stage.message}\n")


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def jetstream_result(
    stage: StageReport,
    num_prompts: int,
    model_id: str,
    tokenizer_id: str,
    metadata: dict[str, str],
    date: datetime,
) -> dict[str, Any]:
    """JetStream's --save-result layout: 0.2.2's keys plus the newer client's (mean_TPOT_ms, *_ttst_ms).

    request_rate is "inf" for all-at-once as 0.2.2 writes it (the newer client writes 0.0, and invalid Infinity
    elsewhere); values that do not exist (no successful request) are null rather than NaN.
    """
    rate: float | str = stage.request_rate if stage.request_rate is not None else "inf"
    # JetStream counts a request completed only if it returned a token (an empty answer adds its input tokens).
    completed = stage.successful_requests - stage.empty_responses
    metrics: dict[str, Any] = {
        "num_prompts": num_prompts,
        "request_rate": rate if stage.concurrency is None else f"concurrency={stage.concurrency}",
        "duration": stage.duration_seconds,
        "completed": completed,
        "total_input_tokens": stage.total_input_tokens,
        "total_output_tokens": stage.total_output_tokens,
        "request_throughput": completed / stage.duration_seconds if stage.duration_seconds else 0.0,
        "input_throughput": stage.input_throughput,
        "output_throughput": stage.output_throughput,
    }
    for key, stats in (("ttft", stage.ttft_ms), ("tpot", stage.tpot_ms)):
        for stat, attr in (("mean", "mean"), ("median", "median"), ("p99", "p99")):
            metrics[f"{stat}_{key}_ms"] = _finite(_ms(stats, attr))
    for key, stats in (("TPOT", stage.tpot_ms), ("ttst", stage.ttst_ms)):
        for stat, attr in (("mean", "mean"), ("median", "median"), ("p99", "p99")):
            metrics[f"{stat}_{key}_ms"] = _finite(_ms(stats, attr))
    dimensions = {"date": date.strftime("%Y%m%d-%H%M%S"), "model_id": model_id, "tokenizer_id": tokenizer_id}
    dimensions.update(metadata)
    return {"metrics": metrics, "dimensions": dimensions}


def request_outputs(
    requests: list[Request], results: list[RequestResult], tokenizer: Tokenizer | None, stage_start: float = 0.0
) -> list[dict[str, Any]]:
    """JetStream's outputs file entries (0.2.2 keys, the newer *_sec keys) plus ours: output_len, error, the send
    time (seconds after the stage started), every stream message's arrival (ms after send), its token count, and
    the token ids as received (also those the tokenizer cannot decode)."""
    rows = []
    for request, result in zip(requests, results, strict=False):
        text = result.text if result.text is not None else ""
        if result.text is None and tokenizer is not None:
            text = tokenizer.decode(result.output_ids)[0]
        rows.append(
            {
                "prompt": request.prompt,
                "original_output": request.reference_output,
                "generated_text": text,
                "success": result.ok,
                "latency": result.latency,
                "latency_sec": result.latency,
                "ttft_sec": result.ttft or 0.0,
                "ttst_sec": result.ttst or 0.0,
                "prompt_len": request.prompt_len,
                "output_len": result.output_len,
                "max_tokens": request.max_tokens,
                "sample_idx": request.sample_idx,
                "error": None if result.ok else f"{result.record.code}: {result.record.detail}",
                "send_time_sec": result.record.send - stage_start,
                "arrivals_ms": [round((t - result.record.send) * 1000.0, 4) for t in result.arrivals],
                "tokens_per_message": result.counts,
                "output_token_ids": result.output_ids,
            }
        )
    return rows


def dump(data: Any) -> str:
    return json.dumps(data, indent=2, allow_nan=False)


def stage_file(prefix: str, index: int, kind: str) -> str:
    return storage.join(prefix, f"stage-{index:02d}.{kind}.json")


def brief(stage: StageReport) -> StageBrief:
    return StageBrief(
        request_rate=stage.request_rate,
        concurrency=stage.concurrency,
        successful_requests=stage.successful_requests,
        failed_requests=stage.failed_requests,
        request_throughput=stage.request_throughput,
        output_throughput=stage.output_throughput,
        ttft_p50_ms=stage.ttft_ms.median if stage.ttft_ms else None,
        ttft_p99_ms=stage.ttft_ms.p99 if stage.ttft_ms else None,
        decode_tpot_p50_ms=stage.decode_tpot_ms.median if stage.decode_tpot_ms else None,
    )


_STAGE_FIELDS = (set(BenchmarkSummary.model_fields) & set(StageReport.model_fields)) - {"message"}


def summary(stages: list[StageReport], results_uri: str | None, message: str | None) -> BenchmarkSummary:
    """The compact summary: the headline stage in full (a sweep's last stage), every stage in brief; trimmed
    (stage briefs, then the message) until it fits the 4 KiB termination message."""
    head: dict[str, Any] = {}
    if stages:
        head = {k: v for k, v in stages[-1] if k in _STAGE_FIELDS}
    else:
        head = {
            "successful_requests": 0,
            "failed_requests": 0,
            "duration_seconds": 0.0,
            "total_input_tokens": 0,
            "total_output_tokens": 0,
            "request_throughput": 0.0,
            "input_throughput": 0.0,
            "output_throughput": 0.0,
        }
    briefs = [brief(s) for s in stages] if len(stages) > 1 else []
    result = BenchmarkSummary(**head, stages=briefs, results_uri=results_uri, message=message)

    def fewer_stages() -> bool:
        if not result.stages:
            return False
        result.stages = result.stages[:-1]
        return True

    def shorter_message() -> bool:
        cut = result.message[:200] + "..." if result.message and len(result.message) > 200 else result.message
        changed = cut != result.message
        result.message = cut
        return changed

    def fewer_errors() -> bool:
        if len(result.errors) <= 5:
            return False
        result.errors = dict(list(result.errors.items())[:5])
        return True

    termination.shrink_to_fit(
        lambda: result.model_dump_json(by_alias=True, exclude_none=True), fewer_stages, shorter_message, fewer_errors
    )
    return result


def failure_summary(message: str) -> str:
    """The termination message of a run that produced no stage: zeros and the reason."""
    return summary([], None, message).to_termination_message()


def vllm_result(
    stage: StageReport,
    results: list[RequestResult],
    settings: VllmSettings,
    date: datetime,
    detailed: bool = False,
) -> dict[str, Any]:
    """`vllm bench serve --save-result` layout (vLLM 0.32 serve.py), computed with its definitions from the same
    requests: completed = requests with a token message (ours counts empty answers successful and reports them
    apart; vLLM fails them); output tokens from usage (vLLM's tokenizer fallback when a stream had none); TPOT
    excluding the first token; ITL = gaps between chunks; E2EL to the last token chunk; np.mean/median/std and
    linear percentiles; request_goodput with the ttft/tpot/e2el SLOs (a one-token request's TPOT counts as 0).
    `duration` is ours (first request sent to last response ended; vLLM's runs from before the first send to
    after the last). With `detailed` (its --save-detailed) the per-request lists are included."""
    good = [r for r in results if r.ok and r.ttft is not None]
    ttfts = [r.ttft or 0.0 for r in good]
    tpots = [t for r in good if (t := r.decode_tpot) is not None]
    itls = [b - a for r in good for a, b in itertools.pairwise(r.arrivals)]
    e2els = [r.e2el for r in good]
    total_in = sum(r.prompt_len for r in good)
    total_out = sum(r.output_len for r in good)
    duration = stage.duration_seconds or 1e-9
    goodput = None
    slos = settings.goodput_slos_ms
    if slos:
        count = 0
        for r in good:
            values = {"ttft": r.ttft or 0.0, "tpot": r.decode_tpot or 0.0, "e2el": r.e2el}
            count += all(values[k] * 1000.0 <= v for k, v in slos.items())
        goodput = count / duration
    out: dict[str, Any] = {
        "date": date.strftime("%Y%m%d-%H%M%S"),
        "endpoint_type": settings.backend,
        "backend": settings.backend,
        "label": None,
        "model_id": settings.model_id,
        "tokenizer_id": settings.tokenizer_id,
        "num_prompts": settings.num_prompts,
        "request_rate": stage.request_rate if stage.request_rate is not None else "inf",
        "burstiness": settings.burstiness,
        "max_concurrency": stage.concurrency or settings.max_concurrency,
        "duration": stage.duration_seconds,
        "completed": len(good),
        "failed": len(results) - len(good),
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "request_throughput": len(good) / duration,
        "request_goodput": goodput,
        "output_throughput": total_out / duration,
        "total_token_throughput": (total_in + total_out) / duration,
    }
    for name, series in (("ttft", ttfts), ("tpot", tpots), ("itl", itls), ("e2el", e2els)):
        a = np.asarray(series or [0.0], dtype=np.float64) * 1000.0
        out[f"mean_{name}_ms"] = float(a.mean())
        out[f"median_{name}_ms"] = float(np.median(a))
        out[f"std_{name}_ms"] = float(a.std())
        for p in (90, 95, 99):
            out[f"p{p}_{name}_ms"] = float(np.percentile(a, p))
    if detailed:
        out["input_lens"] = [r.prompt_len for r in results]
        counted = {id(r) for r in good}
        out["output_lens"] = [r.output_len if id(r) in counted else 0 for r in results]
        out["ttfts"] = [(r.ttft or 0.0) if r.ok else 0.0 for r in results]
        out["itls"] = [[b - a for a, b in itertools.pairwise(r.arrivals)] if r.ok else [] for r in results]
        out["latencies"] = [r.e2el if r.ok else 0.0 for r in results]
        out["start_times"] = [r.record.send for r in results]
        out["generated_texts"] = [r.text or "" for r in results]
        out["errors"] = ["" if r.ok else f"{r.record.code}: {r.record.detail}" for r in results]
    return out
