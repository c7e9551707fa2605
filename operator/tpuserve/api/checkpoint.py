"""LlamaCheckpoint: a Meta-format Llama checkpoint in GCS, converted by a Job into MaxText checkpoints in GCS."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from tpuserve import images, llama
from tpuserve.api import catalog
from tpuserve.api.conventions import (
    AGE_COLUMN,
    GCS_URI_PATTERN,
    ApiModel,
    CelRule,
    Condition,
    KindInfo,
    PrinterColumn,
    Quantity,
    ResourceRequirements,
    Toleration,
    cel_rules,
    conditions_field,
    nested_default,
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


def default_converter_memory_gib(model: str) -> int:
    needed_gib = llama.arch(model).num_parameters * CONVERTER_BYTES_PER_PARAMETER / 2**30
    return math.ceil(needed_gib / CONVERTER_MEMORY_STEP_GIB) * CONVERTER_MEMORY_STEP_GIB


class ConverterSpec(ApiModel):
    """How the conversion Job runs (it needs no TPU: put it on a CPU pool with enough memory)."""

    preset: ConverterPreset = Field(
        default=ConverterPreset.TPUSERVE,
        description="Conversion image family: `tpuserve` (this project's converter, verifies its output) or "
        "`inference-checkpoint` (Google's GKE-tutorial image).",
    )
    image: str | None = Field(
        default=None,
        min_length=1,
        description="Container image; default the operator's setting for the preset (out of the box: tpuserve → "
        f"{images.CONVERTER_IMAGE}, inference-checkpoint → {images.GOOGLE_CHECKPOINT_IMAGE}).",
    )
    resources: ResourceRequirements | None = Field(
        default=None,
        description="Container resources; default requests and limits memory sized from the model "
        "(80Gi for llama2-7b) and 4 CPUs.",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the Job's pod must match (e.g. a high-memory CPU pool)."
    )
    tolerations: list[Toleration] = Field(default_factory=list, description="Tolerations for the Job's pod.")
    service_account_name: str | None = Field(
        default=None,
        min_length=1,
        description="ServiceAccount of the Job's pod (Workload Identity: it needs read access to `source` "
        "and write access to `output`).",
    )
    work_dir_size_limit: Quantity | None = Field(
        default=None,
        description="Size limit of the Job's scratch volume (staged source and both checkpoints before upload); "
        "default sized from the model (about 2.2 times the weights).",
    )
    pod_annotations: dict[str, str] = Field(default_factory=dict, description="Annotations on the Job's pod.")

    def effective_image(self, preset_images: Mapping[ConverterPreset, str] = PRESET_IMAGES) -> str:
        """The converter image: the spec's, else the (operator-configured) default for the preset."""
        return self.image or preset_images[self.preset]


# CEL: a gs:// URI without one trailing slash, so gs://b/x and gs://b/x/ compare equal.
_CEL_WITHOUT_SLASH = "({f}.endsWith('/') ? {f}.substring(0, {f}.size() - 1) : {f})"


class LlamaCheckpointSpec(ApiModel):
    model: str = Field(
        default=catalog.DEFAULT_MODEL,
        description="Llama model (MaxText model_name); decides the architecture the converter expects.",
        json_schema_extra=catalog.model_schema(),
    )
    source: str = Field(
        pattern=GCS_URI_PATTERN,
        max_length=1024,
        description="gs:// URI of the Meta checkpoint directory (consolidated.NN.pth, params.json, tokenizer.model).",
    )
    output: str = Field(
        pattern=GCS_URI_PATTERN,
        max_length=1024,
        description="gs:// base directory for the MaxText checkpoints (scanned and unscanned are written below it).",
    )
    weight_dtype: WeightDtype = Field(default=WeightDtype.BFLOAT16, description="Dtype of the converted weights.")
    quantization: Quantization | None = Field(
        default=None, description="Quantize the weights while converting (MaxText AQT mode); default none."
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

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            CelRule(
                rule=f"{_CEL_WITHOUT_SLASH.format(f='self.output')} != {_CEL_WITHOUT_SLASH.format(f='self.source')}",
                message="spec.output must differ from spec.source (the converter writes scanned/ and unscanned/ "
                "below output and clears them after an interrupted run)",
                field_path=".output",
            )
        )
    }

    @model_validator(mode="after")
    def _output_is_not_source(self) -> LlamaCheckpointSpec:
        if self.output.rstrip("/") == self.source.rstrip("/"):
            raise ValueError("output must differ from source")
        return self

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
    observed_generation: int | None = Field(default=None, ge=0, description="Generation last reconciled.")
    phase: CheckpointPhase | None = Field(default=None, description="Pending, Converting, Ready or Failed.")
    conditions: list[Condition] = conditions_field()
    scanned_path: str | None = Field(default=None, description="gs:// path of the scanned (training) checkpoint.")
    unscanned_path: str | None = Field(
        default=None,
        description="gs:// path of the unscanned checkpoint (…/checkpoints/0/items), what a server loads.",
    )
    manifest_path: str | None = Field(
        default=None, description="gs:// path of the converter's manifest (written last, after verification)."
    )
    parameter_count: int | None = Field(default=None, ge=0, description="Parameters in the converted checkpoint.")
    job_name: str | None = Field(default=None, description="Name of the conversion Job.")
    start_time: datetime | None = Field(default=None, description="When conversion started.")
    completion_time: datetime | None = Field(default=None, description="When conversion finished.")
    message: str | None = Field(default=None, description="Human-readable state, or why conversion failed.")


class LlamaCheckpoint(ApiModel, KindInfo):
    """A Meta-format Llama checkpoint in GCS, converted once into MaxText checkpoints in GCS."""

    KIND: ClassVar[str] = "LlamaCheckpoint"
    PLURAL: ClassVar[str] = "llamacheckpoints"
    SINGULAR: ClassVar[str] = "llamacheckpoint"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("lckpt",)
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn("Model", "string", ".spec.model", "Llama model."),
        PrinterColumn("Phase", "string", ".status.phase", "Pending, Converting, Ready or Failed."),
        PrinterColumn(
            "Checkpoint", "string", ".status.unscannedPath", "Unscanned checkpoint a server loads.", priority=1
        ),
        PrinterColumn("Job", "string", ".status.jobName", "Conversion Job.", priority=1),
        AGE_COLUMN,
    )

    api_version: Literal["tpuserve.dev/v1alpha1"] = "tpuserve.dev/v1alpha1"
    kind: Literal["LlamaCheckpoint"] = "LlamaCheckpoint"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: LlamaCheckpointSpec
    status: LlamaCheckpointStatus | None = None
