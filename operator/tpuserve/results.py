"""The one benchmark results model, shared by the writer (`tpuserve bench`) and the reader (the operator).

`BenchmarkSummary` is the compact, versioned summary (<= 4 KiB as JSON) that the benchmark writes to the
container's termination-message file and that the operator copies into `BenchmarkRun.status.results`.
Field names are camelCase on the wire (Kubernetes convention); Python code uses snake_case.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tpuserve import termination

# The protocols a benchmark speaks (BenchmarkRun.spec.target.protocol and `tpuserve bench run --protocol`).
JETSTREAM = "jetstream"  # JetStream's gRPC Orchestrator/Decode
OPENAI = "openai"  # the OpenAI-compatible HTTP API with SSE streaming (vLLM)
PROTOCOLS = (JETSTREAM, OPENAI)

SUMMARY_SCHEMA_VERSION = "tpuserve.dev/bench-summary/v1"
# The summary must fit the termination message whole.
SUMMARY_MAX_BYTES = termination.MAX_BYTES


# Figures people read in `kubectl get/describe` (BenchmarkRun status): four significant figures, never fewer than
# one decimal place (0.5307101048601143 -> 0.5307, 8439.5213 -> 8439.5). The results files keep full precision.
STATUS_SIGNIFICANT_FIGURES = 4


def readable(value: float, figures: int = STATUS_SIGNIFICANT_FIGURES) -> float:
    """`value` rounded for a status: `figures` significant figures, at least one decimal place."""
    if value == 0 or not math.isfinite(value):
        return value
    decimals = max(1, figures - 1 - math.floor(math.log10(abs(value))))
    return round(value, decimals)


def _readable_tree(data: Any) -> Any:
    if isinstance(data, float):
        return readable(data)
    if isinstance(data, dict):
        return {key: _readable_tree(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_readable_tree(value) for value in data]
    return data


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class LatencyStats(CamelModel):
    """Distribution of one latency, in milliseconds (numpy linear-interpolation percentiles)."""

    mean: float = Field(description="Arithmetic mean, ms.")
    median: float = Field(description="50th percentile, ms.")
    p90: float = Field(description="90th percentile, ms.")
    p95: float = Field(description="95th percentile, ms.")
    p99: float = Field(description="99th percentile, ms.")
    max: float = Field(description="Largest value, ms.")


class Goodput(CamelModel):
    """Requests that met every configured SLO (TTFT and/or decode TPOT)."""

    requests: int = Field(ge=0, description="Successful requests that met every SLO.")
    share: float = Field(ge=0, le=1, description="requests / successful requests.")
    rate: float = Field(ge=0, description="requests / benchmark duration, per second.")


class StageLoad(CamelModel):
    """A stage's load and how many of its requests succeeded: what a stage's full and brief figures both begin with."""

    request_rate: float | None = Field(default=None, description="Poisson arrival rate (req/s); null = all at once.")
    concurrency: int | None = Field(default=None, description="Closed-loop concurrency, when used.")
    successful_requests: int = Field(ge=0, description="Requests whose stream ended with status OK.")
    failed_requests: int = Field(ge=0, description="Requests sent that ended with an error.")


class StageResults(StageLoad):
    """The figures of one load stage (one request rate or concurrency)."""

    failed_requests: int = Field(ge=0, description="Requests sent that ended with an error (see errors).")
    duration_seconds: float = Field(ge=0, description="First request sent to last response received.")
    total_input_tokens: int = Field(ge=0, description="Prompt tokens of the successful requests.")
    total_output_tokens: int = Field(ge=0, description="Tokens streamed back to the successful requests.")
    request_throughput: float = Field(ge=0, description="Successful requests per second.")
    input_throughput: float = Field(ge=0, description="Input tokens per second.")
    output_throughput: float = Field(ge=0, description="Output tokens per second.")
    total_throughput: float = Field(default=0, ge=0, description="Input plus output tokens per second.")
    ttft_ms: LatencyStats | None = Field(default=None, description="Time to first token.")
    tpot_ms: LatencyStats | None = Field(
        default=None, description="JetStream's TPOT: end-to-end latency / output tokens (TTFT included)."
    )
    decode_tpot_ms: LatencyStats | None = Field(
        default=None, description="Decode TPOT: (latency - TTFT) / (output tokens - 1)."
    )
    itl_ms: LatencyStats | None = Field(default=None, description="Inter-token latency per stream message.")
    latency_ms: LatencyStats | None = Field(default=None, description="End-to-end request latency.")
    goodput: Goodput | None = None
    errors: dict[str, int] = Field(default_factory=dict, description="Failed requests by gRPC status code.")


class StageBrief(StageLoad):
    """One sweep stage, abbreviated so that a whole sweep fits the 4 KiB summary."""

    request_throughput: float = Field(ge=0, description="Successful requests per second.")
    output_throughput: float = Field(ge=0, description="Output tokens per second.")
    ttft_p50_ms: float | None = Field(default=None, description="Median time to first token, ms.")
    ttft_p99_ms: float | None = Field(default=None, description="99th-percentile time to first token, ms.")
    decode_tpot_p50_ms: float | None = Field(default=None, description="Median decode TPOT, ms.")


class BenchmarkSummary(StageResults):
    """The compact result of a whole run: the headline stage in full, every sweep stage in brief."""

    schema_version: str = Field(default=SUMMARY_SCHEMA_VERSION, description="Summary format version.")
    stages: list[StageBrief] = Field(default_factory=list, description="Every stage, for sweeps.")
    results_uri: str | None = Field(default=None, description="Where the full results were written.")
    message: str | None = Field(default=None, description="Why the run failed or ended early, if it did.")

    def to_termination_message(self) -> str:
        text = self.model_dump_json(by_alias=True, exclude_none=True)
        if len(text.encode()) > SUMMARY_MAX_BYTES:
            raise ValueError(f"benchmark summary is {len(text.encode())} bytes, over {SUMMARY_MAX_BYTES}")
        return text

    @classmethod
    def from_termination_message(cls, text: str) -> BenchmarkSummary:
        return cls.model_validate_json(text)

    def readable(self) -> BenchmarkSummary:
        """This summary with every float rounded for a status (`readable`); counts stay exact."""
        return type(self).model_validate(_readable_tree(self.model_dump()))


RESULTS_SCHEMA_VERSION = "tpuserve.dev/bench-results/v1"


class StageReport(StageResults):
    """A stage in the full results file: every StageResults figure plus the details too big for the summary."""

    name: str = Field(description="Stage label, e.g. 'rate=4' or 'concurrency=8' or 'warmup'.")
    ttst_ms: LatencyStats | None = Field(default=None, description="Time to second stream message (JetStream).")
    e2el_ms: LatencyStats | None = Field(
        default=None,
        alias="e2elMs",  # to_camel would make it e2ElMs
        description="vllm bench serve's E2EL: request sent to the last message that carried tokens.",
    )
    chunk_itl_ms: LatencyStats | None = Field(
        default=None, description="vllm bench serve's ITL: gaps between token messages, not divided by tokens."
    )
    error_examples: dict[str, str] = Field(
        default_factory=dict, description="The first failed request's reason for each error code."
    )
    requests_without_usage: int = Field(
        default=0, ge=0, description="OpenAI streams that ended without usage (tokens counted from the text)."
    )
    unsent_requests: int = Field(default=0, ge=0, description="Requests never sent (run ended early).")
    undecodable_tokens: int = Field(default=0, ge=0, description="Output token ids outside the tokenizer.")
    empty_responses: int = Field(
        default=0,
        ge=0,
        description="Successful requests that returned no token (JetStream's client does not count them completed).",
    )
    message: str | None = Field(default=None, description="Why the stage ended early, if it did.")
    client_cpu_seconds: float = Field(
        default=0, ge=0, description="CPU time the benchmark process used during the stage (all threads)."
    )


class BenchmarkResults(CamelModel):
    """The full results file (results.json): the run's settings, the warmup, and every stage in full."""

    schema_version: str = Field(default=RESULTS_SCHEMA_VERSION)
    protocol: str = Field(default=JETSTREAM, description="jetstream (gRPC) or openai (HTTP/SSE).")
    target: str
    started_at: str = Field(description="UTC, ISO 8601.")
    finished_at: str = Field(description="UTC, ISO 8601.")
    settings: dict[str, object] = Field(default_factory=dict, description="The command's options.")
    warmup: StageReport | None = Field(default=None, description="Warmup requests, never mixed into stages.")
    stages: list[StageReport] = Field(default_factory=list)
    message: str | None = None
