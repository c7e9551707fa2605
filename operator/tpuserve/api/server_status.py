"""InferenceServer's status: phase, conditions, endpoints and the resolved slice, written by the operator."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from tpuserve.api.conventions import ApiModel, Condition, conditions_field


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
