"""What a BenchmarkRun sends: the endpoint and protocol, OpenAI request options, the dataset, the load shape (a
request rate, a sweep of rates) and the SLOs that decide goodput."""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Annotated

from pydantic import Field, WithJsonSchema, model_validator

from tpuserve import gs_uri, results
from tpuserve.api.conventions import ApiModel, CelRule, cel_rules, choice, model_rules, optional
from tpuserve.api.jetstream import GRPC_PORT
from tpuserve.api.vllm import VLLM_PORT

INFINITE_RATE = "inf"
# A request rate written as a string: "inf" (all requests at once) or a positive decimal ("2.5").
# (the pattern refuses zero: a digit 1-9 must appear before or after the point).
RATE_STRING_PATTERN = r"^(inf|[0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]*\.[0-9]*[1-9][0-9]*)$"
_RATE_CEL = CelRule(
    rule="type(self) != int || self > 0",
    message='a request rate must be a positive number of requests per second or "inf"',
)

# Requests per second: a positive integer, a positive decimal string ("2.5"), or "inf". An untyped field that
# would also take an unquoted 2.5 is not possible: CEL cannot see untyped (preserve-unknown-fields) values, so the
# API server could not check it; int-or-string it is.
RequestRate = Annotated[
    int | str,
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "pattern": RATE_STRING_PATTERN,
            "maxLength": 32,
            "description": "Requests per second (Poisson arrivals): a positive integer, a decimal in quotes such as "
            '"2.5" (Kubernetes int-or-string: an unquoted 2.5 is refused), or "inf" to send every request at once.',
            **cel_rules(_RATE_CEL),
        }
    ),
]


def rate_per_second(rate: int | str) -> float:
    """A RequestRate as a float (math.inf for "inf")."""
    if rate == INFINITE_RATE:
        return math.inf
    if isinstance(rate, bool) or (isinstance(rate, str) and not re.fullmatch(RATE_STRING_PATTERN, rate)):
        raise ValueError(f"request rate {rate!r} is not a positive number or 'inf'")
    value = float(rate)
    if value <= 0:
        raise ValueError(f"request rate {rate!r} must be positive")
    return value


class Protocol(StrEnum):
    """The protocols `tpuserve bench` speaks (tpuserve.results names them for the benchmark side)."""

    JETSTREAM = results.JETSTREAM  # JetStream's gRPC Orchestrator/Decode (runtime jetstream-maxtext)
    OPENAI = results.OPENAI  # the OpenAI-compatible HTTP API, streamed as SSE (runtime vllm-tpu)


DEFAULT_PORTS = {Protocol.JETSTREAM: GRPC_PORT, Protocol.OPENAI: VLLM_PORT}


class TargetSpec(ApiModel):
    """An endpoint not managed by an InferenceServer: its protocol, host and port."""

    protocol: Protocol = choice(
        Protocol.JETSTREAM,
        "jetstream (gRPC, host:port) or openai (OpenAI-compatible HTTP API at http://host:port).",
    )
    host: str = Field(min_length=1, max_length=253, description="Host name or IP address.")
    port: int | None = optional("Port; default 9000 (jetstream) or 8000 (openai).", ge=1, le=65535)

    def address(self) -> str:
        """What `tpuserve bench run --target` takes: host:port (jetstream) or http://host:port (openai)."""
        port = self.port or DEFAULT_PORTS[self.protocol]
        return f"{self.host}:{port}" if self.protocol == Protocol.JETSTREAM else f"http://{self.host}:{port}"


class ApiKeySecret(ApiModel):
    """A Secret key holding the OpenAI API key (sent as a bearer token; never copied into status or args)."""

    name: str = Field(min_length=1, max_length=253, description="Secret name, in the BenchmarkRun's namespace.")
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key in the Secret.")


class OpenAIEndpoint(StrEnum):
    COMPLETIONS = "/v1/completions"
    CHAT = "/v1/chat/completions"


class OpenAISpec(ApiModel):
    """Request options of the OpenAI protocol (vLLM servers)."""

    endpoint: OpenAIEndpoint = Field(
        default=OpenAIEndpoint.COMPLETIONS, description="/v1/completions or /v1/chat/completions (streamed)."
    )
    ignore_eos: bool = Field(default=False, description="Ask the server to generate every max_tokens token.")
    api_key_secret: ApiKeySecret | None = optional("Bearer token for the server, if it needs one.")


class DatasetName(StrEnum):
    OPENORCA = "openorca"  # MLPerf's 1000-row Llama2 calibration pickle (the manual's dataset)
    SHAREGPT = "sharegpt"  # ShareGPT conversations JSON, turns 0 and 1
    SYNTHETIC = "synthetic"  # random token prompts of fixed lengths, no file needed


class SyntheticLengths(ApiModel):
    input_length: int = Field(ge=1, le=131072, description="Prompt length in tokens.")
    output_length: int = Field(ge=1, le=131072, description="Requested output length in tokens.")


class DatasetSpec(ApiModel):
    name: DatasetName = choice(DatasetName.OPENORCA, "openorca, sharegpt or synthetic.")
    path: str | None = optional(
        "Dataset file: a gs:// object or an absolute path in the benchmark image; default the "
        "image's copy of the named dataset.",
        pattern=rf"^(gs://{gs_uri.BUCKET_PATTERN}/.+|/.+)$",
        max_length=1024,
    )
    synthetic: SyntheticLengths | None = optional("Prompt and output lengths (synthetic only).")

    model_config = model_rules(
        CelRule(
            rule="self.name == 'synthetic' ? has(self.synthetic) : !has(self.synthetic)",
            message="spec.dataset.synthetic is required when spec.dataset.name is synthetic, and only then",
            field_path=".synthetic",
        ),
        CelRule(
            rule="self.name != 'synthetic' || !has(self.path)",
            message="spec.dataset.path does not apply to the synthetic dataset",
            field_path=".path",
        ),
    )

    @model_validator(mode="after")
    def _synthetic(self) -> DatasetSpec:
        if (self.name == DatasetName.SYNTHETIC) != (self.synthetic is not None):
            raise ValueError("dataset.synthetic is required when dataset.name is synthetic, and only then")
        if self.name == DatasetName.SYNTHETIC and self.path is not None:
            raise ValueError("dataset.path does not apply to the synthetic dataset")
        return self


class SweepSpec(ApiModel):
    rates: list[RequestRate] = Field(
        min_length=1, max_length=32, description="Request rates, one stage each, in order."
    )


class Warmup(StrEnum):
    NONE = "none"
    SAMPLED = "sampled"  # one prompt per length bucket, sent twice, before measuring
    FULL = "full"  # every prompt once before measuring


class SloSpec(ApiModel):
    """Service-level objectives for goodput: a request counts if it meets every one set."""

    ttft_ms: float | None = optional("Time to first token, milliseconds.", gt=0)
    tpot_ms: float | None = optional(
        "Decode time per output token, (latency - TTFT) / (tokens - 1), milliseconds.", gt=0
    )

    model_config = model_rules(
        CelRule(rule="has(self.ttftMs) || has(self.tpotMs)", message="spec.slo: set ttftMs, tpotMs or both")
    )

    @model_validator(mode="after")
    def _some_objective(self) -> SloSpec:
        if self.ttft_ms is None and self.tpot_ms is None:
            raise ValueError("slo: set ttftMs, tpotMs or both")
        return self
