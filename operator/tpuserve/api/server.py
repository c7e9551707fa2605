"""InferenceServer: a model server on one TPU host per replica: JetStream/MaxText (plus its HTTP sidecar) or vLLM's
TPU backend (`spec.runtime`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from tpuserve import images, llama, tpu
from tpuserve.api import catalog
from tpuserve.api.columns import MODEL_COLUMN, PrinterColumn, phase_column
from tpuserve.api.conventions import (
    AnnotationMap,
    ApiModel,
    CelRule,
    FilePath,
    ImageName,
    ObjectRef,
    Resource,
    ResourceRequirements,
    ServiceAccountName,
    annotations_field,
    cel_string_list,
    choice,
    forbidden_unless,
    model_rules,
    nested_default,
    optional,
)
from tpuserve.api.jetstream import PARALLELISM_FIELDS, EngineSpec
from tpuserve.api.server_status import InferenceServerStatus, ServerPhase
from tpuserve.api.vllm import HubModel, VllmSpec
from tpuserve.gs_uri import GsUri


class TpuSpec(ApiModel):
    """The TPU slice each replica runs on; single-host slices only (one node per replica)."""

    accelerator: str = Field(
        max_length=32,  # bounds the cost of the CEL messages that quote it
        description="TPU generation: a friendly name (v4, v5e, v5p, v6e), an alias, or the GKE node-label "
        "value (e.g. tpu-v5-lite-podslice).",
        json_schema_extra=catalog.accelerator_schema(),
    )
    topology: str = Field(
        pattern=catalog.TOPOLOGY_PATTERN,
        max_length=16,
        description="Slice topology, the node label cloud.google.com/gke-tpu-topology (e.g. 2x4 for v5e, "
        "2x2x1 for v4); must be a single-host shape of the generation.",
    )

    model_config = model_rules(*catalog.topology_rules("spec.tpu"))

    @model_validator(mode="after")
    def _valid_slice(self) -> TpuSpec:
        if self.accelerator not in tpu.accepted_accelerator_names():
            raise ValueError(f"accelerator {self.accelerator!r} is not one of {tpu.accepted_accelerator_names()}")
        self.resolve()  # raises CatalogError (a ValueError) naming the valid topologies
        return self

    def resolve(self) -> tpu.TpuSlice:
        return tpu.resolve(self.accelerator, self.topology)


class MetricsSpec(ApiModel):
    """Server metrics (JetStream's Prometheus exporter) and how Prometheus finds them."""

    enabled: bool = Field(default=True, description="Run the server's Prometheus exporter (prometheus_port).")
    port: int = Field(default=9100, ge=1, le=65535, description="Metrics port on the server container.")
    pod_monitoring: bool = Field(
        default=False, description="Create a PodMonitoring (Google Managed Prometheus, monitoring.googleapis.com/v1)."
    )
    service_monitor: bool = Field(
        default=False, description="Create a ServiceMonitor (Prometheus Operator, monitoring.coreos.com/v1)."
    )


Runtime = llama.Runtime
_JETSTREAM = f"(self.runtime == '{Runtime.JETSTREAM_MAXTEXT}')"
_VLLM = f"(self.runtime == '{Runtime.VLLM_TPU}')"


def _engine_defaults() -> dict[str, Any]:
    """EngineSpec's defaults as the API server stores them (number fields as floats)."""
    wire = EngineSpec().to_wire()
    return {
        f.alias or name: (
            float(wire[f.alias or name]) if f.annotation in (float, "float") else wire.get(f.alias or name)
        )
        for name, f in EngineSpec.model_fields.items()
    }


def _runtime_rules() -> list[CelRule]:
    """What belongs to which runtime: each rule names the field and the runtime it needs."""
    jetstream_models = llama.models_for(Runtime.JETSTREAM_MAXTEXT)
    return [
        CelRule(
            rule=f"!{_JETSTREAM} || self.model in {cel_string_list(jetstream_models)}",
            message=f"spec.model: runtime jetstream-maxtext serves {', '.join(jetstream_models)}; "
            "serve Llama 3 models with spec.runtime: vllm-tpu",
            message_expression=(
                f"'spec.model ' + self.model + ' is not served by runtime jetstream-maxtext (it serves "
                f"{', '.join(jetstream_models)}): set spec.runtime: vllm-tpu'"
            ),
            field_path=".model",
        ),
        forbidden_unless(
            _VLLM,
            "vllm",
            "spec.vllm applies to runtime vllm-tpu only: set spec.runtime: vllm-tpu, or use spec.engine",
        ),
        forbidden_unless(
            _VLLM,
            "huggingFace",
            "spec.huggingFace applies to runtime vllm-tpu only (JetStream loads MaxText checkpoints: "
            "checkpointRef or checkpointPath)",
        ),
        forbidden_unless(
            _JETSTREAM,
            "tokenizerPath",
            "spec.tokenizerPath applies to runtime jetstream-maxtext only (vLLM reads the tokenizer from "
            "the model directory)",
        ),
        forbidden_unless(
            _JETSTREAM,
            "httpImage",
            "spec.httpImage applies to runtime jetstream-maxtext only (vLLM serves HTTP itself)",
        ),
        catalog.equals_defaults_rule(
            "engine",
            _engine_defaults(),
            "spec.engine applies to runtime jetstream-maxtext only: with runtime vllm-tpu set spec.vllm instead",
            when=_VLLM,
        ),
        CelRule(
            rule=f"!{_VLLM} || !has(self.vllm) || !has(self.vllm.tensorParallelSize) || "
            f"!self.tpu.topology.matches('{catalog.TOPOLOGY_PATTERN}') || "
            f"{catalog.chips_expression('self.tpu.topology')} % self.vllm.tensorParallelSize == 0",
            message="spec.vllm.tensorParallelSize must divide the chips of spec.tpu.topology",
            field_path=".vllm.tensorParallelSize",
        ),
        catalog.hbm_fit_rule(
            model="self.model",
            accelerator="self.tpu.accelerator",
            topology="self.tpu.topology",
            tokens=f"(has(self.vllm) ? self.vllm.maxModelLen : {VllmSpec().max_model_len})",
            utilization=f"(has(self.vllm) ? self.vllm.hbmUtilization : {VllmSpec().hbm_utilization!r})",
            when=_VLLM,
        ),
    ]


class InferenceServerSpec(ApiModel):
    runtime: Runtime = choice(
        Runtime.JETSTREAM_MAXTEXT,
        "Server runtime: `jetstream-maxtext` (default; MaxText checkpoints, Llama 2) or `vllm-tpu` "
        "(vLLM's TPU backend, Hugging Face weights, OpenAI API; Llama 2 and 3.x).",
    )
    checkpoint_ref: ObjectRef | None = optional("LlamaCheckpoint (this namespace) whose unscanned checkpoint to serve.")
    checkpoint_path: GsUri | None = optional(
        "Instead of checkpointRef: gs:// path of an unscanned MaxText checkpoint (…/checkpoints/0/items) "
        "for jetstream-maxtext, or of a Hugging Face model directory (config.json, tokenizer.json, *.safetensors) "
        "for vllm-tpu."
    )
    hugging_face: HubModel | None = optional(
        "Runtime vllm-tpu, instead of checkpointRef/checkpointPath: a hub repo every replica downloads "
        "at start-up (a LlamaCheckpoint mirror in GCS starts faster and does not depend on the hub)."
    )
    model: str = Field(
        default=catalog.DEFAULT_MODEL,
        max_length=32,  # bounds the cost of the CEL messages that quote it
        description="Llama model: the catalog's architecture (MaxText model_name for jetstream-maxtext; for vllm-tpu "
        "it sizes HBM and names the served model when the weights do not).",
        json_schema_extra=catalog.model_schema(),
    )
    tokenizer_path: FilePath | None = optional(
        "Tokenizer the server loads; default MaxText's asset for the model (assets/tokenizer.llama2)."
    )
    tpu: TpuSpec = Field(description="TPU slice of each replica.")
    engine: EngineSpec = Field(
        default_factory=EngineSpec,
        description="MaxText server settings (runtime jetstream-maxtext).",
        json_schema_extra=nested_default(EngineSpec),
    )
    vllm: VllmSpec | None = optional("vLLM server settings (runtime vllm-tpu); defaults apply.")
    image: ImageName | None = optional(
        "Server image; default the operator's setting for the runtime (out of the box "
        f"{images.GOOGLE_SERVER_IMAGE} for jetstream-maxtext, {images.VLLM_TPU_IMAGE} for vllm-tpu)."
    )
    http_image: ImageName | None = optional(
        "JetStream HTTP sidecar image (port 8000); default the operator's setting (out of the box "
        f"{images.GOOGLE_HTTP_IMAGE})."
    )
    replicas: int = Field(default=1, ge=0, le=64, description="Server replicas, one TPU host each.")
    metrics: MetricsSpec = Field(
        default_factory=MetricsSpec, description="Prometheus metrics.", json_schema_extra=nested_default(MetricsSpec)
    )
    service_account_name: ServiceAccountName | None = optional(
        "ServiceAccount of the server pods (Workload Identity for gs:// reads)."
    )
    resources: ResourceRequirements | None = optional(
        "Overrides for the server container's resources; google.com/tpu is always the host's chip count."
    )
    pod_annotations: AnnotationMap = annotations_field("spec.podAnnotations", "Annotations on the server pods.")

    model_config = model_rules(
        CelRule(
            rule="[has(self.checkpointRef), has(self.checkpointPath), has(self.huggingFace)].filter(x, x).size() == 1",
            message="spec: set exactly one of checkpointRef or checkpointPath (or huggingFace, runtime vllm-tpu)",
        ),
        catalog.parallelism_fits_rule("self.tpu.topology", "self.engine", PARALLELISM_FIELDS),
        *_runtime_rules(),
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        return catalog.check_model(value)

    @model_validator(mode="after")
    def _one_checkpoint(self) -> InferenceServerSpec:
        sources = (self.checkpoint_ref, self.checkpoint_path, self.hugging_face)
        if sum(s is not None for s in sources) != 1:
            raise ValueError("set exactly one of checkpointRef or checkpointPath (or huggingFace, runtime vllm-tpu)")
        return self

    @model_validator(mode="after")
    def _runtime_fields(self) -> InferenceServerSpec:
        if self.runtime == Runtime.JETSTREAM_MAXTEXT:
            if self.runtime not in llama.arch(self.model).runtimes:
                raise ValueError(f"model {self.model} is not served by runtime jetstream-maxtext: set runtime vllm-tpu")
            for name, section in (("vllm", self.vllm), ("huggingFace", self.hugging_face)):
                if section is not None:
                    raise ValueError(f"{name} applies to runtime vllm-tpu only")
            return self
        for name, value in (("tokenizerPath", self.tokenizer_path), ("httpImage", self.http_image)):
            if value is not None:
                raise ValueError(f"{name} applies to runtime jetstream-maxtext only")
        if self.engine != EngineSpec():
            raise ValueError("engine applies to runtime jetstream-maxtext only: with runtime vllm-tpu set vllm")
        settings, chips = self.vllm_settings(), self.tpu.resolve().chips
        if settings.tensor_parallel_size is not None and chips % settings.tensor_parallel_size:
            raise ValueError(f"vllm.tensorParallelSize {settings.tensor_parallel_size} must divide the {chips} chips")
        shortfall = self.hbm_shortfall()
        if shortfall:
            raise ValueError(shortfall)
        return self

    def vllm_settings(self) -> VllmSpec:
        return self.vllm or VllmSpec()

    def jetstream_hbm_shortfall(self) -> str | None:
        """Runtime jetstream-maxtext: MaxText allocates the KV cache of every decode slot (perDeviceBatchSize per
        chip) at maxTargetLength up front, so weights plus all of it must fit in HBM; why not (None if it fits).
        Checked by the operator, not at admission, so that objects written before the check still validate."""
        e = self.engine
        weights_dtype = llama.stored_weight_dtype(str(e.weight_dtype), str(e.quantization) if e.quantization else None)
        tpu_slice = self.tpu.resolve()
        slots = max(int(e.per_device_batch_size * tpu_slice.chips), 1)
        return llama.hbm_shortfall(
            llama.arch(self.model),
            tpu_slice,
            sequences=slots,
            tokens_per_sequence=e.max_target_length,
            dtype=weights_dtype,
            kv_dtype="int8" if e.quantize_kvcache else "bfloat16",
        )

    def kv_capacity_note(self) -> str:
        """Runtime vllm-tpu: how many full-length sequences the KV cache holds beside the weights, when fewer than
        maxNumSeqs (vLLM then preempts; an estimate, vLLM also reserves activation memory)."""
        settings, arch, tpu_slice = self.vllm_settings(), llama.arch(self.model), self.tpu.resolve()
        free = tpu_slice.hbm_bytes * settings.hbm_utilization - arch.weight_bytes()
        full_length = int(free // (arch.kv_bytes_per_token() * settings.max_model_len))
        if full_length >= settings.max_num_seqs:
            return ""
        return (
            f"; the KV cache holds about {full_length} sequences of maxModelLen {settings.max_model_len} beside the "
            f"weights, fewer than maxNumSeqs {settings.max_num_seqs}: longer batches are preempted"
        )

    def hbm_shortfall(self) -> str | None:
        """Runtime vllm-tpu: why the weights plus one full-length sequence's KV cache cannot fit (None if they do).
        The same bound as the CRD's rule, in words and GiB."""
        settings = self.vllm_settings()
        return llama.hbm_shortfall(
            llama.arch(self.model),
            self.tpu.resolve(),
            sequences=1,
            tokens_per_sequence=settings.max_model_len,
            usable_fraction=settings.hbm_utilization,
        )

    @model_validator(mode="after")
    def _parallelism_fits(self) -> InferenceServerSpec:
        engine = self.engine
        axes = (engine.ici_fsdp_parallelism, engine.ici_autoregressive_parallelism, engine.ici_tensor_parallelism)
        message = catalog.parallelism_mismatch(axes, self.tpu.resolve().chips)
        if message:
            raise ValueError(message)
        return self

    def effective_image(self, default: str = images.GOOGLE_SERVER_IMAGE) -> str:
        """The server image: the spec's, else the operator's configured default (for the runtime)."""
        return self.image or default

    def effective_http_image(self, default: str = images.GOOGLE_HTTP_IMAGE) -> str:
        return self.http_image or default

    def effective_tokenizer_path(self) -> str:
        return self.tokenizer_path or llama.arch(self.model).maxtext_tokenizer


class InferenceServer(Resource):
    """A JetStream/MaxText or vLLM TPU server for one Llama model on single-host TPU slices."""

    KIND: ClassVar[str] = "InferenceServer"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("infsrv",)
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        MODEL_COLUMN,
        PrinterColumn("Runtime", "string", ".spec.runtime", "Server runtime: jetstream-maxtext or vllm-tpu."),
        PrinterColumn("Accelerator", "string", ".spec.tpu.accelerator", "TPU generation."),
        PrinterColumn("Topology", "string", ".spec.tpu.topology", "TPU slice topology."),
        PrinterColumn("Ready", "integer", ".status.readyReplicas", "Replicas ready to serve."),
        phase_column(ServerPhase),
        PrinterColumn("Endpoint", "string", ".status.endpoints.grpc", "JetStream gRPC endpoint."),
        PrinterColumn("Chips", "integer", ".status.tpu.chips", "TPU chips per replica.", priority=1),
        PrinterColumn("Checkpoint", "string", ".status.checkpointPath", "Checkpoint loaded.", priority=1),
        PrinterColumn("OpenAI", "string", ".status.endpoints.openai", "OpenAI API base URL (vllm-tpu).", priority=1),
    )

    kind: Literal["InferenceServer"] = "InferenceServer"
    spec: InferenceServerSpec
    status: InferenceServerStatus | None = None
