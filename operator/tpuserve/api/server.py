"""InferenceServer: a model server on one TPU host per replica: JetStream/MaxText (plus its HTTP sidecar) or vLLM's
TPU backend (`spec.runtime`)."""

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
    DNS1123_SUBDOMAIN_PATTERN,
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
    nested_default,
)
from tpuserve.api.vllm import HubModel, VllmSpec

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
# A setting whose name contains one of these words (any case) carries a credential: its value would be readable
# by anyone who can read the InferenceServer, its Deployment or the pod spec, so `extraArgs` refuses it and
# `extraArgsFrom` takes it from a Secret instead.
CREDENTIAL_WORDS: tuple[str, ...] = ("token", "secret", "key", "password")
CREDENTIAL_KEY_REGEX = "(?i)(" + "|".join(CREDENTIAL_WORDS) + ")"
# MaxText serving settings whose names contain one of those words but whose values are no secret (the KV-cache
# layouts MaxText's inference tuning sets, the tokenizer kind): allowed in extraArgs.
NOT_CREDENTIALS: tuple[str, ...] = ("ar_key_axis_order", "prefill_key_axis_order", "tokenizer_type")
_LOOKS_LIKE_CREDENTIAL_CEL = f"!(k in {cel_string_list(NOT_CREDENTIALS)}) && k.matches('{CREDENTIAL_KEY_REGEX}')"


def looks_like_credential(key: str) -> bool:
    return key not in NOT_CREDENTIALS and re.search(CREDENTIAL_KEY_REGEX, key) is not None


# extraArgsFrom values reach the container as environment variables with this prefix, expanded by the kubelet
# in the argument (`key=$(VAR)`). Not MaxText's own `M_` prefix, which would set the key a second time.
SECRET_ARG_ENV_PREFIX = "TPUSERVE_ARG_"


def secret_arg_env_name(key: str) -> str:
    """The environment variable carrying the value of extraArgsFrom[key]."""
    return SECRET_ARG_ENV_PREFIX + key.upper()


class SecretKeySelector(ApiModel):
    """One key of a Secret in the object's namespace (the Kubernetes secretKeyRef shape)."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN, description="Name of the Secret."
    )
    key: str = Field(
        min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key of the value in the Secret."
    )


class ArgValueSource(ApiModel):
    """Where a setting's value comes from (a Kubernetes EnvVarSource limited to Secrets)."""

    secret_key_ref: SecretKeySelector = Field(
        description="The Secret key holding the value; the kubelet reads it when the pod starts (the operator "
        "never does)."
    )


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
            CelRule(
                rule=f"self.all(k, !({_LOOKS_LIKE_CREDENTIAL_CEL}))",
                message="spec.engine.extraArgs may not hold a credential (a key containing "
                + ", ".join(CREDENTIAL_WORDS)
                + "): take its value from a Secret with spec.engine.extraArgsFrom",
                message_expression="'spec.engine.extraArgs.' + "
                f"self.filter(k, {_LOOKS_LIKE_CREDENTIAL_CEL})[0] + "
                "' looks like a credential (its name contains "
                + ", ".join(CREDENTIAL_WORDS)
                + "): take its value from a Secret with spec.engine.extraArgsFrom'",
            ),
        ),
    )
    extra_args_from: dict[str, ArgValueSource] = Field(
        default_factory=dict,
        max_length=16,
        description="MaxText settings whose values come from Secrets, e.g. {hf_access_token: {secretKeyRef: "
        "{name: hf, key: token}}}: rendered as an environment variable of the server container and "
        "`key=$(TPUSERVE_ARG_<KEY>)` in its arguments, so the value appears in no tpuserve object, Deployment or "
        "pod spec.",
        json_schema_extra=cel_rules(
            CelRule(
                rule=f"self.all(k, k.matches('{SERVER_ARG_KEY_PATTERN}'))",
                message="spec.engine.extraArgsFrom keys must be MaxText setting names (lower_snake_case)",
            ),
            CelRule(
                rule=f"self.all(k, !(k in {cel_string_list(MANAGED_SERVER_ARGS)}))",
                message="spec.engine.extraArgsFrom may not set a key the typed engine fields or the operator set",
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
            CelRule(
                rule="!has(self.extraArgs) || !has(self.extraArgsFrom) || "
                "self.extraArgsFrom.all(k, !(k in self.extraArgs))",
                message="spec.engine.extraArgsFrom: a key may not also be set in spec.engine.extraArgs",
                field_path=".extraArgsFrom",
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
            if looks_like_credential(key):
                raise ValueError(f"extraArgs key {key!r} looks like a credential: use extraArgsFrom and a Secret")
        for key in self.extra_args_from:
            if not re.fullmatch(SERVER_ARG_KEY_PATTERN, key):
                raise ValueError(f"extraArgsFrom key {key!r} is not a MaxText setting name (lower_snake_case)")
            if key in MANAGED_SERVER_ARGS or key in self.extra_args:
                raise ValueError(f"extraArgsFrom may not set {key!r}: it is set by a typed field or extraArgs")
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
        CelRule(
            rule=f"{_VLLM} || !has(self.vllm)",
            message="spec.vllm applies to runtime vllm-tpu only: set spec.runtime: vllm-tpu, or use spec.engine",
            field_path=".vllm",
            reason="FieldValueForbidden",
        ),
        CelRule(
            rule=f"{_VLLM} || !has(self.huggingFace)",
            message="spec.huggingFace applies to runtime vllm-tpu only (JetStream loads MaxText checkpoints: "
            "checkpointRef or checkpointPath)",
            field_path=".huggingFace",
            reason="FieldValueForbidden",
        ),
        CelRule(
            rule=f"{_JETSTREAM} || !has(self.tokenizerPath)",
            message="spec.tokenizerPath applies to runtime jetstream-maxtext only (vLLM reads the tokenizer from "
            "the model directory)",
            field_path=".tokenizerPath",
            reason="FieldValueForbidden",
        ),
        CelRule(
            rule=f"{_JETSTREAM} || !has(self.httpImage)",
            message="spec.httpImage applies to runtime jetstream-maxtext only (vLLM serves HTTP itself)",
            field_path=".httpImage",
            reason="FieldValueForbidden",
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
    runtime: Runtime = Field(
        default=Runtime.JETSTREAM_MAXTEXT,
        description="Server runtime: `jetstream-maxtext` (default; MaxText checkpoints, Llama 2) or `vllm-tpu` "
        "(vLLM's TPU backend, Hugging Face weights, OpenAI API; Llama 2 and 3.x).",
    )
    checkpoint_ref: ObjectRef | None = Field(
        default=None, description="LlamaCheckpoint in this namespace whose unscanned checkpoint to serve."
    )
    checkpoint_path: str | None = Field(
        default=None,
        pattern=GCS_URI_PATTERN,
        max_length=1024,
        description="Instead of checkpointRef: gs:// path of an unscanned MaxText checkpoint (…/checkpoints/0/items) "
        "for jetstream-maxtext, or of a Hugging Face model directory (config.json, tokenizer.json, *.safetensors) "
        "for vllm-tpu.",
    )
    hugging_face: HubModel | None = Field(
        default=None,
        description="Runtime vllm-tpu, instead of checkpointRef/checkpointPath: a hub repo every replica downloads "
        "at start-up (a LlamaCheckpoint mirror in GCS starts faster and does not depend on the hub).",
    )
    model: str = Field(
        default=catalog.DEFAULT_MODEL,
        max_length=32,  # bounds the cost of the CEL messages that quote it
        description="Llama model: the catalog's architecture (MaxText model_name for jetstream-maxtext; for vllm-tpu "
        "it sizes HBM and names the served model when the weights do not).",
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
        default_factory=EngineSpec,
        description="MaxText server settings (runtime jetstream-maxtext).",
        json_schema_extra=nested_default(EngineSpec),
    )
    vllm: VllmSpec | None = Field(default=None, description="vLLM server settings (runtime vllm-tpu); defaults apply.")
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_IMAGE,
        description="Server image; default the operator's setting for the runtime (out of the box "
        f"{images.GOOGLE_SERVER_IMAGE} for jetstream-maxtext, {images.VLLM_TPU_IMAGE} for vllm-tpu).",
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
            CelRule(
                rule="[has(self.checkpointRef), has(self.checkpointPath), has(self.huggingFace)]"
                ".filter(x, x).size() == 1",
                message="spec: set exactly one of checkpointRef or checkpointPath (or huggingFace, runtime vllm-tpu)",
            ),
            catalog.parallelism_fits_rule("self.tpu.topology", "self.engine", PARALLELISM_FIELDS),
            *_runtime_rules(),
        )
    }

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
    openai: str | None = Field(default=None, description="OpenAI-compatible API base URL (runtime vllm-tpu), …/v1.")


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
    """A JetStream/MaxText or vLLM TPU server for one Llama model on single-host TPU slices."""

    KIND: ClassVar[str] = "InferenceServer"
    PLURAL: ClassVar[str] = "inferenceservers"
    SINGULAR: ClassVar[str] = "inferenceserver"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("infsrv",)
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn("Model", "string", ".spec.model", "Llama model."),
        PrinterColumn("Runtime", "string", ".spec.runtime", "Server runtime: jetstream-maxtext or vllm-tpu."),
        PrinterColumn("Accelerator", "string", ".spec.tpu.accelerator", "TPU generation."),
        PrinterColumn("Topology", "string", ".spec.tpu.topology", "TPU slice topology."),
        PrinterColumn("Ready", "integer", ".status.readyReplicas", "Replicas ready to serve."),
        PrinterColumn("Phase", "string", ".status.phase", "Pending, WaitingForCheckpoint, Deploying, Ready, Failed."),
        PrinterColumn("Endpoint", "string", ".status.endpoints.grpc", "JetStream gRPC endpoint."),
        PrinterColumn("Chips", "integer", ".status.tpu.chips", "TPU chips per replica.", priority=1),
        PrinterColumn("Checkpoint", "string", ".status.checkpointPath", "Checkpoint loaded.", priority=1),
        PrinterColumn("OpenAI", "string", ".status.endpoints.openai", "OpenAI API base URL (vllm-tpu).", priority=1),
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
