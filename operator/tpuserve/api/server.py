"""InferenceServer: a JetStream/MaxText server (plus the HTTP sidecar) on one TPU host per replica."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from tpuserve import images, llama, tpu
from tpuserve.api import catalog
from tpuserve.api.checkpoint import Quantization, WeightDtype
from tpuserve.api.conventions import (
    AGE_COLUMN,
    GCS_URI_PATTERN,
    MAX_IMAGE,
    MAX_PATH,
    MAX_SHORT_STRING,
    AnnotationMap,
    ApiModel,
    CelRule,
    Condition,
    KindInfo,
    ObjectRef,
    PrinterColumn,
    ResourceRequirements,
    annotations_field,
    cel_rules,
    cel_string_list,
    check_name,
    conditions_field,
    exactly_one_of,
    nested_default,
)

# gRPC port MaxText hard-codes; the HTTP sidecar's port.
GRPC_PORT = 9000
HTTP_PORT = 8000

# MaxText keys the operator renders from typed fields; `engine.extraArgs` may not set them again
# (MaxText rejects a key given twice).
MANAGED_SERVER_ARGS: tuple[str, ...] = (
    "model_name",
    "tokenizer_path",
    "load_parameters_path",
    "max_prefill_predict_length",
    "max_target_length",
    "per_device_batch_size",
    "ici_fsdp_parallelism",
    "ici_autoregressive_parallelism",
    "ici_tensor_parallelism",
    "scan_layers",
    "weight_dtype",
    "attention",
    "quantization",
    "quantize_kvcache",
    "prometheus_port",
)
SERVER_ARG_KEY_PATTERN = r"^[a-z][a-z0-9_]*$"


class TpuSpec(ApiModel):
    """The TPU slice each replica runs on; single-host slices only (one node per replica)."""

    accelerator: str = Field(
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

    model_config = ApiModel.model_config | {"json_schema_extra": cel_rules(*catalog.topology_rules("spec.tpu"))}

    @model_validator(mode="after")
    def _valid_slice(self) -> TpuSpec:
        if self.accelerator not in tpu.accepted_accelerator_names():
            raise ValueError(f"accelerator {self.accelerator!r} is not one of {tpu.accepted_accelerator_names()}")
        self.resolve()  # raises CatalogError (a ValueError) naming the valid topologies
        return self

    def resolve(self) -> tpu.TpuSlice:
        return tpu.resolve(self.accelerator, self.topology)


class Attention(StrEnum):
    AUTOSELECTED = "autoselected"
    DOT_PRODUCT = "dot_product"
    FLASH = "flash"


PARALLELISM_FIELDS = ("iciFsdpParallelism", "iciAutoregressiveParallelism", "iciTensorParallelism")


class EngineSpec(ApiModel):
    """MaxText server settings (defaults: the Llama2-7B settings of the manual this replaces)."""

    max_prefill_predict_length: int = Field(
        default=1024, ge=1, le=131072, description="Longest prompt (tokens) prefilled; longer prompts are cut."
    )
    max_target_length: int = Field(
        default=2048, ge=2, le=131072, description="Longest sequence (prompt + output tokens)."
    )
    per_device_batch_size: float = Field(
        default=11, gt=0, le=1024, description="Decode slots per chip (MaxText per_device_batch_size)."
    )
    ici_fsdp_parallelism: int = Field(default=1, ge=-1, description="ICI FSDP parallelism (-1 = the remaining chips).")
    ici_autoregressive_parallelism: int = Field(
        default=1, ge=-1, description="ICI autoregressive parallelism (-1 = the remaining chips)."
    )
    ici_tensor_parallelism: int = Field(
        default=-1, ge=-1, description="ICI tensor parallelism (-1 = the remaining chips)."
    )
    scan_layers: bool = Field(default=False, description="Load a scanned checkpoint (false: unscanned, faster).")
    weight_dtype: WeightDtype = Field(default=WeightDtype.BFLOAT16, description="Dtype of the weights in HBM.")
    attention: Attention = Field(default=Attention.AUTOSELECTED, description="MaxText attention kernel.")
    quantization: Quantization | None = Field(default=None, description="MaxText AQT quantization; default none.")
    quantize_kvcache: bool = Field(default=False, description="Quantize the KV cache (int8).")
    extra_args: dict[str, Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=dict,
        max_length=64,
        description="Further MaxText key=value settings, e.g. {ragged_attention: 'true'}; keys the typed "
        "fields above set are refused.",
        json_schema_extra=cel_rules(
            CelRule(
                rule=f"self.all(k, k.matches('{SERVER_ARG_KEY_PATTERN}'))",
                message="spec.engine.extraArgs keys must be MaxText setting names (lower_snake_case)",
            ),
            CelRule(
                rule=f"self.all(k, !(k in {cel_string_list(MANAGED_SERVER_ARGS)}))",
                message="spec.engine.extraArgs may not set a key the typed engine fields or the operator set ("
                + ", ".join(MANAGED_SERVER_ARGS)
                + ")",
            ),
        ),
    )

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            CelRule(
                rule="self.maxPrefillPredictLength < self.maxTargetLength",
                message="spec.engine.maxPrefillPredictLength must be less than spec.engine.maxTargetLength",
                field_path=".maxPrefillPredictLength",
            ),
            CelRule(
                rule=" && ".join(f"self.{f} != 0" for f in PARALLELISM_FIELDS),
                message="spec.engine ICI parallelism values must be -1 (the remaining chips) or at least 1",
            ),
            CelRule(
                rule="[" + ", ".join(f"self.{f}" for f in PARALLELISM_FIELDS) + "].filter(p, p == -1).size() <= 1",
                message="spec.engine: at most one of iciFsdpParallelism, iciAutoregressiveParallelism, "
                "iciTensorParallelism may be -1",
            ),
        )
    }

    @model_validator(mode="after")
    def _consistent(self) -> EngineSpec:
        if self.max_prefill_predict_length >= self.max_target_length:
            raise ValueError("maxPrefillPredictLength must be less than maxTargetLength")
        parallelism = (self.ici_fsdp_parallelism, self.ici_autoregressive_parallelism, self.ici_tensor_parallelism)
        if 0 in parallelism:
            raise ValueError("ICI parallelism values must be -1 or at least 1")
        if parallelism.count(-1) > 1:
            raise ValueError("at most one ICI parallelism value may be -1")
        for key in self.extra_args:
            if not re.fullmatch(SERVER_ARG_KEY_PATTERN, key):
                raise ValueError(f"extraArgs key {key!r} is not a MaxText setting name (lower_snake_case)")
            if key in MANAGED_SERVER_ARGS:
                raise ValueError(f"extraArgs may not set {key!r}: use the typed engine field")
        return self


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


class InferenceServerSpec(ApiModel):
    checkpoint_ref: ObjectRef | None = Field(
        default=None, description="LlamaCheckpoint in this namespace whose unscanned checkpoint to serve."
    )
    checkpoint_path: str | None = Field(
        default=None,
        pattern=GCS_URI_PATTERN,
        max_length=1024,
        description="gs:// path of an unscanned MaxText checkpoint (…/checkpoints/0/items), instead of checkpointRef.",
    )
    model: str = Field(
        default=catalog.DEFAULT_MODEL,
        description="Llama model (MaxText model_name).",
        json_schema_extra=catalog.model_schema(),
    )
    tokenizer_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PATH,
        description="Tokenizer the server loads; default MaxText's asset for the model (assets/tokenizer.llama2).",
    )
    tpu: TpuSpec = Field(description="TPU slice of each replica.")
    engine: EngineSpec = Field(
        default_factory=EngineSpec, description="MaxText server settings.", json_schema_extra=nested_default(EngineSpec)
    )
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_IMAGE,
        description="JetStream/MaxText server image; default the operator's setting (out of the box "
        f"{images.GOOGLE_SERVER_IMAGE}).",
    )
    http_image: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_IMAGE,
        description="JetStream HTTP sidecar image (port 8000); default the operator's setting (out of the box "
        f"{images.GOOGLE_HTTP_IMAGE}).",
    )
    replicas: int = Field(default=1, ge=0, le=64, description="Server replicas, one TPU host each.")
    metrics: MetricsSpec = Field(
        default_factory=MetricsSpec, description="Prometheus metrics.", json_schema_extra=nested_default(MetricsSpec)
    )
    service_account_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SHORT_STRING,
        description="ServiceAccount of the server pods (Workload Identity for gs:// reads).",
    )
    resources: ResourceRequirements | None = Field(
        default=None,
        description="Overrides for the server container's resources; google.com/tpu is always the host's chip count.",
    )
    pod_annotations: AnnotationMap = annotations_field("spec.podAnnotations", "Annotations on the server pods.")

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            exactly_one_of("checkpointRef", "checkpointPath", "spec"),
            catalog.parallelism_fits_rule("self.tpu.topology", "self.engine", PARALLELISM_FIELDS),
        )
    }

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        return catalog.check_model(value)

    @model_validator(mode="after")
    def _one_checkpoint(self) -> InferenceServerSpec:
        if (self.checkpoint_ref is None) == (self.checkpoint_path is None):
            raise ValueError("set exactly one of checkpointRef or checkpointPath")
        return self

    @model_validator(mode="after")
    def _parallelism_fits(self) -> InferenceServerSpec:
        engine = self.engine
        axes = (engine.ici_fsdp_parallelism, engine.ici_autoregressive_parallelism, engine.ici_tensor_parallelism)
        message = catalog.parallelism_mismatch(axes, self.tpu.resolve().chips)
        if message:
            raise ValueError(message)
        return self

    def effective_image(self, default: str = images.GOOGLE_SERVER_IMAGE) -> str:
        """The server image: the spec's, else the operator's configured default."""
        return self.image or default

    def effective_http_image(self, default: str = images.GOOGLE_HTTP_IMAGE) -> str:
        return self.http_image or default

    def effective_tokenizer_path(self) -> str:
        return self.tokenizer_path or llama.arch(self.model).maxtext_tokenizer


class ServerPhase(StrEnum):
    PENDING = "Pending"  # accepted, nothing created yet
    WAITING_FOR_CHECKPOINT = "WaitingForCheckpoint"  # the referenced LlamaCheckpoint is not Ready
    DEPLOYING = "Deploying"  # Deployment created, not all replicas ready (scheduling, loading weights)
    READY = "Ready"  # every replica serves
    FAILED = "Failed"  # cannot become ready without a spec change; `message` says why


class ServerConditionType(StrEnum):
    CHECKPOINT_READY = "CheckpointReady"  # the checkpoint to load is known and ready
    SCHEDULED = "Scheduled"  # every replica's pod is bound to a TPU node
    AVAILABLE = "Available"  # at least one replica is ready to serve


class Endpoints(ApiModel):
    grpc: str | None = Field(default=None, description="JetStream gRPC endpoint, host:port.")
    http: str | None = Field(default=None, description="HTTP sidecar base URL.")


class TpuStatus(ApiModel):
    """The slice as resolved from the catalog."""

    accelerator: str | None = Field(default=None, description="GKE accelerator node-label value selected.")
    topology: str | None = Field(default=None, description="Slice topology.")
    chips: int | None = Field(default=None, ge=0, description="TPU chips per replica (google.com/tpu request).")
    machine_type: str | None = Field(default=None, description="GKE machine type of the host.")


class InferenceServerStatus(ApiModel):
    observed_generation: int | None = Field(default=None, ge=0, description="Generation last reconciled.")
    phase: ServerPhase | None = Field(
        default=None, description="Pending, WaitingForCheckpoint, Deploying, Ready or Failed."
    )
    conditions: list[Condition] = conditions_field()
    endpoints: Endpoints | None = Field(default=None, description="Where to reach the server in the cluster.")
    replicas: int | None = Field(default=None, ge=0, description="Replicas of the Deployment.")
    ready_replicas: int | None = Field(default=None, ge=0, description="Replicas ready to serve.")
    tpu: TpuStatus | None = Field(default=None, description="Resolved TPU slice.")
    checkpoint_path: str | None = Field(default=None, description="The checkpoint the server loads (resolved).")
    deployment_name: str | None = Field(default=None, description="Name of the server Deployment.")
    service_name: str | None = Field(default=None, description="Name of the server Service.")
    message: str | None = Field(default=None, description="Human-readable state, or why the server failed.")


class InferenceServer(ApiModel, KindInfo):
    """A JetStream/MaxText server for one Llama checkpoint on single-host TPU slices."""

    KIND: ClassVar[str] = "InferenceServer"
    PLURAL: ClassVar[str] = "inferenceservers"
    SINGULAR: ClassVar[str] = "inferenceserver"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("infsrv",)
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn("Model", "string", ".spec.model", "Llama model."),
        PrinterColumn("Accelerator", "string", ".spec.tpu.accelerator", "TPU generation."),
        PrinterColumn("Topology", "string", ".spec.tpu.topology", "TPU slice topology."),
        PrinterColumn("Ready", "integer", ".status.readyReplicas", "Replicas ready to serve."),
        PrinterColumn("Phase", "string", ".status.phase", "Pending, WaitingForCheckpoint, Deploying, Ready, Failed."),
        PrinterColumn("Endpoint", "string", ".status.endpoints.grpc", "JetStream gRPC endpoint."),
        PrinterColumn("Chips", "integer", ".status.tpu.chips", "TPU chips per replica.", priority=1),
        PrinterColumn("Checkpoint", "string", ".status.checkpointPath", "Checkpoint loaded.", priority=1),
        AGE_COLUMN,
    )

    api_version: Literal["tpuserve.dev/v1alpha1"] = "tpuserve.dev/v1alpha1"
    kind: Literal["InferenceServer"] = "InferenceServer"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: InferenceServerSpec
    status: InferenceServerStatus | None = None

    @model_validator(mode="after")
    def _child_names_fit(self) -> InferenceServer:
        check_name(self.KIND, self.metadata)
        return self
