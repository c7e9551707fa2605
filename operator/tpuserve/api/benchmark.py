"""BenchmarkRun: one benchmark of one server. The spec is immutable (a re-run is a new object); the results
land in status (the benchmark's own summary, copied verbatim) and in Prometheus."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from tpuserve import images
from tpuserve.api.columns import PrinterColumn, phase_column
from tpuserve.api.conventions import (
    DURATION_PATTERN,
    MAX_LIST_ITEMS,
    AnnotationMap,
    ApiModel,
    CelRule,
    Condition,
    FilePath,
    ImageName,
    LabelMap,
    ObjectRef,
    Resource,
    ResourceRequirements,
    ServiceAccountName,
    Toleration,
    annotations_field,
    choice,
    conditions_field,
    exactly_one_of,
    immutable,
    labels_field,
    model_rules,
    nested_default,
    optional,
    parse_duration,
)
from tpuserve.api.workload import (
    INFINITE_RATE,
    DatasetSpec,
    OpenAISpec,
    Protocol,
    RequestRate,
    SloSpec,
    SweepSpec,
    TargetSpec,
    Warmup,
    rate_per_second,
)
from tpuserve.gs_uri import GsUri
from tpuserve.results import BenchmarkSummary

LOAD_FIELDS = ("requestRate", "sweep", "concurrency")
# Default resources of the benchmark container: ShareGPT's ~640 MB JSON is parsed whole, so memory is generous;
# no CPU limit, because throttling the client would show up as server latency in the results.
BENCH_DEFAULT_REQUESTS = {"cpu": "2", "memory": "4Gi"}
BENCH_DEFAULT_LIMITS = {"memory": "8Gi"}


InFlight = Annotated[int, Field(ge=1, le=100000)]  # requests in flight at once


class BenchmarkRunSpec(ApiModel):
    server_ref: ObjectRef | None = optional("InferenceServer in this namespace to benchmark.")
    target: TargetSpec | None = optional("An endpoint to benchmark instead of serverRef (its protocol, host and port).")
    openai: OpenAISpec | None = optional("OpenAI-protocol options (a vllm-tpu server or an openai target).")
    dataset: DatasetSpec = Field(
        default_factory=DatasetSpec, description="Prompts to send.", json_schema_extra=nested_default(DatasetSpec)
    )
    tokenizer_path: FilePath | None = optional("Tokenizer for prompts and outputs; default the server's.")
    num_prompts: int = Field(default=1000, ge=1, le=1_000_000, description="Prompts sampled from the dataset.")
    max_output_length: int = Field(
        default=1024,
        ge=1,
        le=131072,
        description="max_tokens of every request (JetStream's --max-output-length: each request asks for this many "
        "tokens, whatever the dataset's reference output length).",
    )
    max_input_length: int = Field(
        default=1024,
        ge=1,
        le=131072,
        description="Drop prompts longer than this many tokens (openorca and sharegpt: JetStream's length filter, "
        "which also drops very short prompts and answers; `tpuserve bench run --help` lists its bounds).",
    )
    request_rate: RequestRate | None = optional(
        'Constant Poisson request rate (req/s): an integer, a quoted decimal ("2.5") or "inf"; '
        'default "inf" when no load shape is set.'
    )
    sweep: SweepSpec | None = optional("A stage per request rate, instead of requestRate.")
    concurrency: InFlight | None = optional("Closed loop with this many requests in flight, instead of a rate.")
    burstiness: float | None = optional(
        "Gamma arrivals as vllm bench serve draws them (1 = Poisson, below 1 burstier); default "
        "JetStream's Poisson draw. With a rate only.",
        gt=0,
        le=1000,
    )
    max_concurrency: InFlight | None = optional("With a rate: at most this many requests in flight (later wait).")
    warmup: Warmup = choice(Warmup.SAMPLED, "Warm-up before measuring: none, sampled or full.")
    seed: int = Field(default=0, ge=0, description="Random seed for prompt sampling and arrival times.")
    slo: SloSpec | None = optional("SLOs for goodput.")
    output: GsUri | None = optional(
        "gs:// prefix for the full results (and request outputs); status keeps the summary."
    )
    save_request_outputs: bool = Field(default=False, description="Also write every request's output (needs output).")
    timeout: str = Field(
        default="2h",
        min_length=2,
        max_length=32,
        pattern=DURATION_PATTERN,
        description="Give up after this long (e.g. 30m, 2h, 1h30m); the run fails with what it measured.",
    )
    image: ImageName | None = optional(
        f"Benchmark image; default the operator's setting (out of the box {images.BENCH_IMAGE})."
    )
    resources: ResourceRequirements | None = optional(
        "Benchmark container resources; replace the default as a whole (requests cpu "
        f"{BENCH_DEFAULT_REQUESTS['cpu']}, memory {BENCH_DEFAULT_REQUESTS['memory']}; limits memory "
        f"{BENCH_DEFAULT_LIMITS['memory']}; no CPU limit, so that throttling never shows up as server latency)."
    )
    node_selector: LabelMap = labels_field("spec.nodeSelector", "Node labels the benchmark pod must match.")
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=MAX_LIST_ITEMS, description="Tolerations for the benchmark pod."
    )
    service_account_name: ServiceAccountName | None = optional(
        "ServiceAccount of the benchmark pod (Workload Identity for gs://)."
    )
    pod_annotations: AnnotationMap = annotations_field("spec.podAnnotations", "Annotations on the benchmark pod.")

    model_config = model_rules(
        immutable("spec", "create a new BenchmarkRun to run again"),
        exactly_one_of("serverRef", "target", "spec"),
        CelRule(
            rule="[" + ", ".join(f"has(self.{f})" for f in LOAD_FIELDS) + "].filter(x, x).size() <= 1",
            message="spec: set at most one of requestRate, sweep or concurrency",
        ),
        CelRule(
            rule="!has(self.concurrency) || (!has(self.burstiness) && !has(self.maxConcurrency))",
            message="spec: burstiness and maxConcurrency shape a request rate; concurrency is a closed loop",
        ),
        CelRule(
            rule="!has(self.openai) || !has(self.target) || self.target.protocol == 'openai'",
            message="spec.openai applies to the openai protocol: set spec.target.protocol to openai",
            field_path=".openai",
        ),
        CelRule(
            rule="!self.saveRequestOutputs || has(self.output)",
            message="spec.saveRequestOutputs needs spec.output (a gs:// prefix to write them to)",
            field_path=".saveRequestOutputs",
        ),
    )

    @field_validator("request_rate")
    @classmethod
    def _rate(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            rate_per_second(value)
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BenchmarkRunSpec:
        if (self.server_ref is None) == (self.target is None):
            raise ValueError("set exactly one of serverRef or target")
        if sum(x is not None for x in (self.request_rate, self.sweep, self.concurrency)) > 1:
            raise ValueError("set at most one of requestRate, sweep or concurrency")
        if self.save_request_outputs and self.output is None:
            raise ValueError("saveRequestOutputs needs output")
        if self.concurrency is not None and (self.burstiness is not None or self.max_concurrency is not None):
            raise ValueError("burstiness and maxConcurrency shape a request rate; concurrency is a closed loop")
        if self.openai is not None and self.target is not None and self.target.protocol != Protocol.OPENAI:
            raise ValueError("spec.openai applies to the openai protocol: set spec.target.protocol to openai")
        for rate in self.sweep.rates if self.sweep else []:
            rate_per_second(rate)
        return self

    def effective_image(self, default: str = images.BENCH_IMAGE) -> str:
        """The benchmark image: the spec's, else the operator's configured default."""
        return self.image or default

    def bench_resources(self) -> ResourceRequirements:
        """The user's resources, or the default."""
        if self.resources is not None:
            return self.resources
        return ResourceRequirements(requests=dict(BENCH_DEFAULT_REQUESTS), limits=dict(BENCH_DEFAULT_LIMITS))

    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout)

    def request_rates(self) -> list[float] | None:
        """The Poisson rates of each stage, or None for a concurrency run (math.inf = all at once)."""
        if self.concurrency is not None:
            return None
        if self.sweep is not None:
            return [rate_per_second(r) for r in self.sweep.rates]
        return [rate_per_second(self.request_rate if self.request_rate is not None else INFINITE_RATE)]


class BenchmarkPhase(StrEnum):
    PENDING = "Pending"  # accepted, nothing created yet
    WAITING_FOR_SERVER = "WaitingForServer"  # the InferenceServer is not Ready yet
    RUNNING = "Running"  # the benchmark Job is running
    SUCCEEDED = "Succeeded"  # results are in status
    FAILED = "Failed"  # `message` says why; partial results may be in status


class BenchmarkConditionType(StrEnum):
    SERVER_READY = "ServerReady"  # the server to measure answered ready
    COMPLETE = "Complete"  # the benchmark Job finished and its results were recorded
    FAILED = "Failed"  # the run failed (Job failed, timed out, or the server never became ready)


class MeasuredServer(ApiModel):
    """What was measured, recorded when the run starts so that results stay comparable later."""

    name: str | None = optional("InferenceServer name, or the address of a target.")
    protocol: Protocol | None = optional("jetstream (gRPC) or openai (HTTP/SSE).")
    endpoint: str | None = optional("What the benchmark dialled: gRPC host:port, or the OpenAI base URL.")
    model: str | None = optional("Llama model served.")
    accelerator: str | None = optional("GKE accelerator label value.")
    topology: str | None = optional("TPU slice topology.")
    chips: int | None = optional("TPU chips serving (per replica).", ge=0)
    machine_type: str | None = optional("GKE machine type.")
    replicas: int | None = optional("Server replicas behind the endpoint.", ge=0)
    image: str | None = optional("Server image.")
    engine_args: list[str] = Field(
        default_factory=list,
        description="Arguments of the server as rendered: MaxText key=value (jetstream-maxtext) or vLLM --flag=value.",
    )
    weight_dtype: str | None = optional("Dtype of the weights before quantization (bfloat16, float32).")
    quantization: str | None = optional("Weight quantization (int8, int4, fp8); null: none.")
    decode_batch: int | None = optional(
        "Sequences decoded together per replica: MaxText slots (perDeviceBatchSize x chips) or vLLM maxNumSeqs.", ge=1
    )


class BenchmarkRunStatus(ApiModel):
    observed_generation: int | None = optional("Generation last reconciled.", ge=0)
    phase: BenchmarkPhase | None = optional("Pending, WaitingForServer, Running, Succeeded or Failed.")
    conditions: list[Condition] = conditions_field()
    job_name: str | None = optional("Name of the benchmark Job.")
    start_time: datetime | None = optional("When the benchmark Job started.")
    completion_time: datetime | None = optional("When the benchmark finished.")
    server: MeasuredServer | None = optional("The server measured.")
    results: BenchmarkSummary | None = optional(
        "The benchmark's summary: the headline stage in full, sweep stages in brief."
    )
    results_uri: str | None = optional("Where the full results were written (gs://).", alias="resultsURI")
    cost_per_million_output_tokens: float | None = optional(
        "USD per million output tokens at the measured throughput (on-demand price).", ge=0
    )
    roofline_efficiency: float | None = optional(
        "Output throughput / memory-bound decode ceiling for this slice and batch.", ge=0
    )
    message: str | None = optional("Human-readable state, or why the run failed.")


class BenchmarkRun(Resource):
    """One benchmark of one JetStream or vLLM server; immutable, so a re-run is a new object."""

    KIND: ClassVar[str] = "BenchmarkRun"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("bench",)
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        phase_column(BenchmarkPhase),
        PrinterColumn("Server", "string", ".status.server.name", "Server measured."),
        PrinterColumn("Req/s", "number", ".status.results.requestThroughput", "Successful requests per second."),
        PrinterColumn("Output tok/s", "number", ".status.results.outputThroughput", "Output tokens per second."),
        PrinterColumn("TTFT p50 ms", "number", ".status.results.ttftMs.median", "Median time to first token."),
        PrinterColumn(
            "TPOT p50 ms", "number", ".status.results.tpotMs.median", "Median JetStream TPOT (latency / tokens)."
        ),
        PrinterColumn("Protocol", "string", ".status.server.protocol", "jetstream or openai.", priority=1),
        PrinterColumn(
            "Decode TPOT p50 ms",
            "number",
            ".status.results.decodeTpotMs.median",
            "Median decode time per output token.",
            priority=1,
        ),
        PrinterColumn(
            "$/M tok", "number", ".status.costPerMillionOutputTokens", "USD per million output tokens.", priority=1
        ),
        PrinterColumn("Roofline", "number", ".status.rooflineEfficiency", "Share of the decode ceiling.", priority=1),
    )

    kind: Literal["BenchmarkRun"] = "BenchmarkRun"
    spec: BenchmarkRunSpec
    status: BenchmarkRunStatus | None = None
