"""The tpuserve.dev/v1alpha1 API: pydantic models that are the single source of the CRDs and their docs.

Importable without kopf or kubernetes. `tpuserve crds` (tpuserve.api.generate) writes crds/ and docs/api.md.
"""

from __future__ import annotations

from tpuserve.api.benchmark import (
    BenchmarkConditionType,
    BenchmarkPhase,
    BenchmarkRun,
    BenchmarkRunSpec,
    BenchmarkRunStatus,
    MeasuredServer,
)
from tpuserve.api.checkpoint import (
    CheckpointConditionType,
    CheckpointFormat,
    CheckpointPhase,
    ConverterPreset,
    ConverterSpec,
    HuggingFaceSource,
    LlamaCheckpoint,
    LlamaCheckpointSpec,
    LlamaCheckpointStatus,
    Quantization,
    WeightDtype,
)
from tpuserve.api.conventions import (
    API_VERSION,
    CATEGORY,
    GROUP,
    VERSION,
    Condition,
    ConditionStatus,
    ObjectRef,
    ResourceRequirements,
    Toleration,
    parse_duration,
)
from tpuserve.api.jetstream import GRPC_PORT, HTTP_PORT, MANAGED_SERVER_ARGS, Attention, EngineSpec
from tpuserve.api.server import InferenceServer, InferenceServerSpec, MetricsSpec, Runtime, TpuSpec
from tpuserve.api.server_status import Endpoints, InferenceServerStatus, ServerConditionType, ServerPhase, TpuStatus
from tpuserve.api.vllm import VLLM_PORT, HubModel, SecretKeyRef, VllmSpec, WeightLoading
from tpuserve.api.workload import (
    ApiKeySecret,
    DatasetName,
    DatasetSpec,
    OpenAIEndpoint,
    OpenAISpec,
    Protocol,
    SloSpec,
    SweepSpec,
    SyntheticLengths,
    TargetSpec,
    Warmup,
    rate_per_second,
)

# Every kind of the API, in the order the CRDs and docs list them.
KINDS = (LlamaCheckpoint, InferenceServer, BenchmarkRun)
# The kinds' names, for code that holds a kind as a string (kube.py, metrics labels).
KIND_NAMES: tuple[str, ...] = tuple(kind.KIND for kind in KINDS)
PLURALS: dict[str, str] = {kind.KIND: kind.PLURAL for kind in KINDS}

__all__ = [
    "API_VERSION",
    "CATEGORY",
    "GROUP",
    "GRPC_PORT",
    "HTTP_PORT",
    "KINDS",
    "KIND_NAMES",
    "MANAGED_SERVER_ARGS",
    "PLURALS",
    "VERSION",
    "VLLM_PORT",
    "ApiKeySecret",
    "Attention",
    "BenchmarkConditionType",
    "BenchmarkPhase",
    "BenchmarkRun",
    "BenchmarkRunSpec",
    "BenchmarkRunStatus",
    "CheckpointConditionType",
    "CheckpointFormat",
    "CheckpointPhase",
    "Condition",
    "ConditionStatus",
    "ConverterPreset",
    "ConverterSpec",
    "DatasetName",
    "DatasetSpec",
    "Endpoints",
    "EngineSpec",
    "HubModel",
    "HuggingFaceSource",
    "InferenceServer",
    "InferenceServerSpec",
    "InferenceServerStatus",
    "LlamaCheckpoint",
    "LlamaCheckpointSpec",
    "LlamaCheckpointStatus",
    "MeasuredServer",
    "MetricsSpec",
    "ObjectRef",
    "OpenAIEndpoint",
    "OpenAISpec",
    "Protocol",
    "Quantization",
    "ResourceRequirements",
    "Runtime",
    "SecretKeyRef",
    "ServerConditionType",
    "ServerPhase",
    "SloSpec",
    "SweepSpec",
    "SyntheticLengths",
    "TargetSpec",
    "Toleration",
    "TpuSpec",
    "TpuStatus",
    "VllmSpec",
    "Warmup",
    "WeightDtype",
    "WeightLoading",
    "parse_duration",
    "rate_per_second",
]
