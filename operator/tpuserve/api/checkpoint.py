"""LlamaCheckpoint: a Meta-format Llama checkpoint in GCS, converted by a Job into MaxText checkpoints in GCS; or
(format huggingface) a Hugging Face model, mirrored by a Job into GCS and verified against the catalog."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from tpuserve import images, llama
from tpuserve.api import catalog
from tpuserve.api.columns import MODEL_COLUMN, PrinterColumn, phase_column
from tpuserve.api.conventions import (
    MAX_LIST_ITEMS,
    AnnotationMap,
    ApiModel,
    CelRule,
    Condition,
    ImageName,
    LabelMap,
    Quantity,
    Resource,
    ResourceRequirements,
    ServiceAccountName,
    Toleration,
    annotations_field,
    cel_string_list,
    choice,
    conditions_field,
    forbidden_unless,
    labels_field,
    model_rules,
    nested_default,
    optional,
    required_unless,
)
from tpuserve.api.vllm import HF_REPO_ID_PATTERN, SecretKeyRef
from tpuserve.gs_uri import GsUri


class CheckpointFormat(StrEnum):
    """What the checkpoint is made from, and so what the Job does."""

    META = "meta"  # Meta's consolidated.NN.pth checkpoint, converted into MaxText checkpoints (JetStream)
    HUGGING_FACE = "huggingface"  # a Hugging Face model (safetensors), mirrored into spec.output (vLLM)


class HuggingFaceSource(ApiModel):
    """A model repository on the Hugging Face hub."""

    repo_id: str = Field(
        pattern=HF_REPO_ID_PATTERN,
        max_length=96,
        description="Repo id, e.g. `meta-llama/Llama-3.1-8B-Instruct`.",
    )
    revision: str = Field(
        default="main",
        min_length=1,
        max_length=255,
        description="Branch, tag or commit; default `main`. The mirror records the commit it resolved to.",
    )
    token_secret_ref: SecretKeyRef | None = optional(
        "Secret key holding a hub read token (gated repos such as meta-llama's need one; the token's "
        "account must have accepted the model's license); the Job gets it as `HF_TOKEN`."
    )


class WeightDtype(StrEnum):
    BFLOAT16 = "bfloat16"
    FLOAT32 = "float32"


class Quantization(StrEnum):
    """MaxText `quantization` modes (AQT) that both the pinned converter's MaxText (maxtext-v0.2.3) and the
    server accept: int8 and int4 weights, fp8."""

    INT8 = "int8"
    INT4 = "int4"
    FP8 = "fp8"


class ConverterPreset(StrEnum):
    """Which conversion image (and argument convention) the Job runs."""

    TPUSERVE = "tpuserve"  # this project's converter image: `tpuserve convert run ...`
    INFERENCE_CHECKPOINT = "inference-checkpoint"  # Google's GKE-tutorial image


PRESET_IMAGES: dict[ConverterPreset, str] = {
    ConverterPreset.TPUSERVE: images.CONVERTER_IMAGE,
    ConverterPreset.INFERENCE_CHECKPOINT: images.GOOGLE_CHECKPOINT_IMAGE,
}

# Measured (docs/images.md, "Measured"): MaxText's unscanned step (generate_param_only_checkpoint, which builds a
# training state before it saves the parameters) peaks at ~1.9 GiB + 10-13 bytes per parameter, the scanned step at
# ~1.5 GiB + 5.6: extrapolated, 64-70 GiB for Llama2-7B, which GKE tutorials' 64 GiB would not hold. 12 bytes per
# parameter, rounded up to 16 GiB steps: 80 GiB for 7B, 160 GiB for 13B, 784 GiB for 70B.
CONVERTER_BYTES_PER_PARAMETER = 12
CONVERTER_MEMORY_STEP_GIB = 16
CONVERTER_DEFAULT_CPU = "4"
# The Hugging Face mirror copies file by file (checksums and headers are streamed or read in ranges).
MIRROR_DEFAULT_MEMORY = "4Gi"
MIRROR_DEFAULT_CPU = "2"


def default_converter_memory_gib(model: str) -> int:
    needed_gib = llama.arch(model).num_parameters * CONVERTER_BYTES_PER_PARAMETER / 2**30
    return math.ceil(needed_gib / CONVERTER_MEMORY_STEP_GIB) * CONVERTER_MEMORY_STEP_GIB


class ConverterSpec(ApiModel):
    """How the conversion Job runs (it needs no TPU: put it on a CPU pool with enough memory)."""

    preset: ConverterPreset = choice(
        ConverterPreset.TPUSERVE,
        "Conversion image family: `tpuserve` (this project's converter, verifies its output) or "
        "`inference-checkpoint` (Google's GKE-tutorial image).",
    )
    image: ImageName | None = optional(
        "Container image; default the operator's setting for the preset (out of the box: tpuserve → "
        f"{images.CONVERTER_IMAGE}, inference-checkpoint → {images.GOOGLE_CHECKPOINT_IMAGE})."
    )
    resources: ResourceRequirements | None = optional(
        "Container resources; default requests and limits memory sized from the model (80Gi for llama2-7b) and 4 CPUs."
    )
    node_selector: LabelMap = labels_field(
        "spec.converter.nodeSelector", "Node labels the Job's pod must match (e.g. a high-memory CPU pool)."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=MAX_LIST_ITEMS, description="Tolerations for the Job's pod."
    )
    service_account_name: ServiceAccountName | None = optional(
        "ServiceAccount of the Job's pod (Workload Identity: it needs read access to `source` "
        "and write access to `output`)."
    )
    work_dir_size_limit: Quantity | None = optional(
        "Size limit of the Job's scratch volume (staged source and both checkpoints before upload); "
        "default sized from the model (about 2.2 times the weights)."
    )
    pod_annotations: AnnotationMap = annotations_field("spec.converter.podAnnotations", "Annotations on the Job's pod.")

    def effective_image(self, preset_images: Mapping[ConverterPreset, str] = PRESET_IMAGES) -> str:
        """The converter image: the spec's, else the (operator-configured) default for the preset."""
        return self.image or preset_images[self.preset]


# CEL: a gs:// URI without one trailing slash, so gs://b/x and gs://b/x/ compare equal.
_CEL_WITHOUT_SLASH = "({f}.endsWith('/') ? {f}.substring(0, {f}.size() - 1) : {f})"
_OUT = _CEL_WITHOUT_SLASH.format(f="self.output")
_SRC = _CEL_WITHOUT_SLASH.format(f="self.source")


_HF = CheckpointFormat.HUGGING_FACE.value
_META = CheckpointFormat.META.value
# The models the Meta → MaxText conversion (JetStream) handles; the rest of the catalog is vLLM's.
_META_MODELS = llama.models_for(llama.Runtime.JETSTREAM_MAXTEXT)


class LlamaCheckpointSpec(ApiModel):
    model: str = Field(
        default=catalog.DEFAULT_MODEL,
        description="Llama model (catalog name); decides the architecture the converter or mirror verifies against.",
        json_schema_extra=catalog.model_schema(),
    )
    format: CheckpointFormat = choice(
        CheckpointFormat.META,
        "`meta` (default): convert Meta's checkpoint at `source` into MaxText checkpoints (JetStream). "
        "`huggingface`: mirror a Hugging Face model (`huggingFace` repo, or a gs:// directory in `source`) into "
        "`output`, verified against the catalog (vLLM).",
    )
    source: GsUri | None = optional(
        "gs:// URI of the Meta checkpoint directory (consolidated.NN.pth, params.json, tokenizer.model); "
        "with format huggingface, of a Hugging Face model directory (config.json, tokenizer.json, *.safetensors) "
        "instead of `huggingFace`."
    )
    hugging_face: HuggingFaceSource | None = optional(
        "Format huggingface: the hub repo to mirror (instead of `source`)."
    )
    output: GsUri = Field(
        description="gs:// base directory for the MaxText checkpoints (scanned and unscanned are written below it); "
        "with format huggingface, the mirror goes to `<output>/hf`.",
    )
    weight_dtype: WeightDtype = choice(
        WeightDtype.BFLOAT16,
        "Dtype of the converted weights (format meta; a mirror keeps the published dtype, which it "
        "checks against the catalog).",
    )
    quantization: Quantization | None = optional(
        "Quantize the weights while converting (MaxText AQT mode; format meta); default none."
    )
    converter: ConverterSpec = Field(
        default_factory=ConverterSpec,
        description="How the conversion Job runs.",
        json_schema_extra=nested_default(ConverterSpec),
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        return catalog.check_model(value)

    model_config = model_rules(
        CelRule(
            rule=f"!has(self.source) || ({_OUT} != {_SRC} && !{_OUT}.startsWith({_SRC} + '/') && "
            f"!{_SRC}.startsWith({_OUT} + '/'))",
            message="spec.output must differ from spec.source, and neither may lie inside the other (the "
            "converter writes scanned/ and unscanned/ below output and clears them after an interrupted run)",
            field_path=".output",
        ),
        CelRule(
            rule=f"self.format != '{_META}' || self.model in {cel_string_list(_META_MODELS)}",
            message=f"spec.model: format meta converts Meta checkpoints of {', '.join(_META_MODELS)} for "
            "JetStream; mirror other models from Hugging Face with spec.format: huggingface",
            message_expression=f"'spec.model ' + self.model + ': format meta converts Meta checkpoints of "
            f"{', '.join(_META_MODELS)} for JetStream; mirror other models from Hugging Face with "
            "spec.format: huggingface'",
            field_path=".model",
        ),
        required_unless(
            f"self.format != '{_META}'",
            "source",
            "spec.source is required with format meta: the gs:// Meta checkpoint directory",
        ),
        forbidden_unless(
            f"self.format != '{_META}'",
            "huggingFace",
            "spec.huggingFace applies to format huggingface only: set spec.format: huggingface",
        ),
        CelRule(
            rule=f"self.format != '{_HF}' || has(self.source) != has(self.huggingFace)",
            message="spec: format huggingface needs exactly one of source (a gs:// Hugging Face model "
            "directory) or huggingFace (a hub repo)",
        ),
        forbidden_unless(
            f"self.format != '{_HF}'",
            "quantization",
            "spec.quantization applies to format meta only: a Hugging Face mirror keeps the published weights",
        ),
        CelRule(
            rule=f"self.format != '{_HF}' || !has(self.converter) || !has(self.converter.preset) || "
            f"self.converter.preset == '{ConverterPreset.TPUSERVE.value}'",
            message="spec.converter.preset inference-checkpoint converts Meta checkpoints only; format "
            "huggingface runs tpuserve's mirror (preset tpuserve)",
            field_path=".converter.preset",
        ),
    )

    @model_validator(mode="after")
    def _output_is_not_source(self) -> LlamaCheckpointSpec:
        if self.source is not None:
            output, source = self.output.rstrip("/"), self.source.rstrip("/")
            if output == source or output.startswith(source + "/") or source.startswith(output + "/"):
                raise ValueError("output must differ from source, and neither may lie inside the other")
        return self

    @model_validator(mode="after")
    def _format_matches_source(self) -> LlamaCheckpointSpec:
        if self.format == CheckpointFormat.META:
            if self.model not in _META_MODELS:
                raise ValueError(f"spec.model {self.model}: format meta converts {', '.join(_META_MODELS)} only")
            if self.source is None:
                raise ValueError("spec.source is required with format meta")
            if self.hugging_face is not None:
                raise ValueError("spec.huggingFace applies to format huggingface only")
            return self
        if (self.source is None) == (self.hugging_face is None):
            raise ValueError("format huggingface needs exactly one of source or huggingFace")
        if self.quantization is not None:
            raise ValueError("spec.quantization applies to format meta only")
        if self.converter.preset != ConverterPreset.TPUSERVE:
            raise ValueError("spec.converter.preset inference-checkpoint converts Meta checkpoints only")
        return self

    @property
    def meta_source(self) -> str:
        """spec.source of a format-meta checkpoint (required there by the rules above)."""
        if self.source is None:
            raise ValueError("spec.source is required with format meta")
        return self.source

    def mirror_resources(self) -> ResourceRequirements:
        """The user's resources, or the mirror's default: it streams one file at a time, so a little memory."""
        if self.converter.resources is not None:
            return self.converter.resources
        memory: Quantity = MIRROR_DEFAULT_MEMORY
        return ResourceRequirements(requests={"memory": memory, "cpu": MIRROR_DEFAULT_CPU}, limits={"memory": memory})

    def converter_resources(self) -> ResourceRequirements:
        """The user's resources, or the default sized from the model."""
        if self.converter.resources is not None:
            return self.converter.resources
        memory: Quantity = f"{default_converter_memory_gib(self.model)}Gi"
        return ResourceRequirements(
            requests={"memory": memory, "cpu": CONVERTER_DEFAULT_CPU}, limits={"memory": memory}
        )


class CheckpointPhase(StrEnum):
    PENDING = "Pending"  # accepted, conversion Job not started yet
    CONVERTING = "Converting"  # the conversion Job is running
    READY = "Ready"  # the unscanned checkpoint exists and can be served
    FAILED = "Failed"  # conversion failed; `message` says why (a spec change retries)


class CheckpointConditionType(StrEnum):
    CONVERTED = "Converted"  # the conversion Job finished (True) or failed (False)
    READY = "Ready"  # unscannedPath holds a loadable checkpoint


class LlamaCheckpointStatus(ApiModel):
    observed_generation: int | None = optional("Generation last reconciled.", ge=0)
    phase: CheckpointPhase | None = optional("Pending, Converting, Ready or Failed.")
    conditions: list[Condition] = conditions_field()
    scanned_path: str | None = optional("gs:// path of the scanned (training) checkpoint.")
    unscanned_path: str | None = optional(
        "gs:// path of the unscanned checkpoint (…/checkpoints/0/items), what a server loads."
    )
    hugging_face_path: str | None = optional(
        "Format huggingface: gs:// path of the mirrored, verified Hugging Face model directory "
        "(config.json, tokenizer.json, *.safetensors), what a vLLM server loads."
    )
    manifest_path: str | None = optional("gs:// path of the converter's manifest (written last, after verification).")
    parameter_count: int | None = optional("Parameters in the converted checkpoint.", ge=0)
    job_name: str | None = optional("Name of the conversion Job.")
    start_time: datetime | None = optional("When conversion started.")
    completion_time: datetime | None = optional("When conversion finished.")
    message: str | None = optional("Human-readable state, or why conversion failed.")


class LlamaCheckpoint(Resource):
    """A Llama checkpoint made once in GCS: Meta's converted to MaxText, or a Hugging Face model mirrored, verified."""

    KIND: ClassVar[str] = "LlamaCheckpoint"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("lckpt",)
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        MODEL_COLUMN,
        PrinterColumn(
            "Format", "string", ".spec.format", "meta (MaxText conversion) or huggingface (mirror).", priority=1
        ),
        phase_column(CheckpointPhase),
        PrinterColumn(
            "Checkpoint", "string", ".status.unscannedPath", "Unscanned checkpoint a server loads.", priority=1
        ),
        PrinterColumn("HF-Model", "string", ".status.huggingFacePath", "Mirrored Hugging Face directory.", priority=1),
        PrinterColumn("Job", "string", ".status.jobName", "Conversion or mirror Job.", priority=1),
    )

    kind: Literal["LlamaCheckpoint"] = "LlamaCheckpoint"
    spec: LlamaCheckpointSpec
    status: LlamaCheckpointStatus | None = None
