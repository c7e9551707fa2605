"""InferenceServer's status: phase, conditions, endpoints and the resolved slice, written by the operator."""

from __future__ import annotations

from enum import StrEnum

from tpuserve.api.conventions import ApiModel, Condition, conditions_field, optional


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
    grpc: str | None = optional("JetStream gRPC endpoint, host:port.")
    http: str | None = optional("HTTP sidecar base URL.")
    openai: str | None = optional("OpenAI-compatible API base URL (runtime vllm-tpu), …/v1.")


class TpuStatus(ApiModel):
    """The slice as resolved from the catalog."""

    accelerator: str | None = optional("GKE accelerator node-label value selected.")
    topology: str | None = optional("Slice topology.")
    chips: int | None = optional("TPU chips per replica (google.com/tpu request).", ge=0)
    machine_type: str | None = optional("GKE machine type of the host.")


class InferenceServerStatus(ApiModel):
    observed_generation: int | None = optional("Generation last reconciled.", ge=0)
    phase: ServerPhase | None = optional("Pending, WaitingForCheckpoint, Deploying, Ready or Failed.")
    conditions: list[Condition] = conditions_field()
    endpoints: Endpoints | None = optional("Where to reach the server in the cluster.")
    replicas: int | None = optional("Replicas of the Deployment.", ge=0)
    ready_replicas: int | None = optional("Replicas ready to serve.", ge=0)
    tpu: TpuStatus | None = optional("Resolved TPU slice.")
    checkpoint_path: str | None = optional("The checkpoint the server loads (resolved).")
    deployment_name: str | None = optional("Name of the server Deployment.")
    service_name: str | None = optional("Name of the server Service.")
    message: str | None = optional("Human-readable state, or why the server failed.")
