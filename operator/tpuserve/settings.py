"""The operator's one settings object (pydantic-settings, env prefix TPUSERVE_).

Loaded once at start-up (`tpuserve operator`) and kept in kopf's memo; nothing reads the environment at import
time. Dicts and lists are given as JSON in the environment, e.g.
`TPUSERVE_TPU_PRICES='{"v5e": 1.2}'`, `TPUSERVE_NAMESPACES='["team-a","team-b"]'`.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tpuserve import images, tpu
from tpuserve.api import ConverterPreset, Toleration
from tpuserve.logs import LogFormat


class OperatorSettings(BaseSettings):
    """Every knob of the operator. Environment variable = `TPUSERVE_` + the field name in upper case."""

    model_config = SettingsConfigDict(env_prefix="TPUSERVE_", extra="ignore")

    # --- scope and endpoints --------------------------------------------------------------------------
    namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces to watch (JSON list). Empty = cluster-wide. `--namespace` flags override.",
    )
    log_format: LogFormat = Field(
        default="text",
        description="Log lines: `text`, or `json` (one object per line with the fields Cloud Logging reads: severity, "
        "message, time, sourceLocation, labels; operator/tpuserve/logs.py).",
    )
    metrics_host: str = Field(default="0.0.0.0", description="Listen address of the Prometheus endpoint.")
    metrics_port: int = Field(default=9090, ge=0, le=65535, description="Port of /metrics; 0 disables it.")
    liveness: str | None = Field(
        default="http://0.0.0.0:8080/healthz",
        description="kopf liveness endpoint URL (`--liveness`); empty/None disables it.",
    )

    # --- workload images (spec fields override them per object) --------------------------------------
    server_image: str = Field(default=images.GOOGLE_SERVER_IMAGE, description="JetStream/MaxText server image.")
    http_image: str = Field(default=images.GOOGLE_HTTP_IMAGE, description="jetstream-http sidecar image.")
    vllm_image: str = Field(default=images.VLLM_TPU_IMAGE, description="vLLM TPU server image (runtime vllm-tpu).")
    converter_image: str = Field(
        default=images.CONVERTER_IMAGE, description="Converter image for preset `tpuserve` (`tpuserve convert run`)."
    )
    checkpoint_image: str = Field(
        default=images.GOOGLE_CHECKPOINT_IMAGE,
        description="Google's inference-checkpoint image for preset `inference-checkpoint`.",
    )
    bench_image: str = Field(default=images.BENCH_IMAGE, description="Benchmark image (`tpuserve bench run`).")
    image_pull_policy: str = Field(default="IfNotPresent", description="imagePullPolicy of every workload container.")

    # --- prices -----------------------------------------------------------------------------------------
    tpu_prices: dict[str, float] = Field(
        default_factory=dict,
        description="USD per chip-hour by TPU generation (v4, v5e, v5p, v6e), JSON dict; missing generations "
        "use the catalog's on-demand list price (us-central).",
    )

    # --- workload placement and identity ------------------------------------------------------------
    workload_service_account: str | None = Field(
        default=None,
        description="Default serviceAccountName of converter, server and benchmark pods (Workload Identity); "
        "each spec's serviceAccountName wins.",
    )
    benchmark_node_selector: dict[str, str] = Field(
        default_factory=dict, description="Default nodeSelector of benchmark pods when the spec sets none (JSON)."
    )
    benchmark_tolerations: list[Toleration] = Field(
        default_factory=list, description="Default tolerations of benchmark pods when the spec sets none (JSON)."
    )
    converter_env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment of converter pods (JSON), e.g. TPUSERVE_CONVERT_STEP=synthetic in tests.",
    )
    bench_env: dict[str, str] = Field(default_factory=dict, description="Extra environment of benchmark pods (JSON).")

    # --- Jobs and probes -------------------------------------------------------------------------------
    converter_backoff_limit: int = Field(default=1, ge=0, description="backoffLimit of conversion Jobs.")
    converter_deadline_seconds: int = Field(
        default=6 * 3600, ge=60, description="activeDeadlineSeconds of conversion Jobs."
    )
    job_ttl_seconds: int | None = Field(
        default=None,
        ge=0,
        description="ttlSecondsAfterFinished of Jobs; None keeps them (the owner's GC removes them).",
    )
    server_startup_seconds: int = Field(
        default=1800,
        ge=60,
        description="Budget of the server's startupProbe (model load + XLA compile take minutes).",
    )
    server_privileged: bool = Field(
        default=False,
        description="Run the JetStream server container privileged (securityContext.privileged). Only GKE "
        "versions before 1.28 need it to reach the TPU devices; off, the server runs with no capabilities, no "
        "privilege escalation and the RuntimeDefault seccomp profile (docs/security.md).",
    )

    # --- GCS ----------------------------------------------------------------------------------------------
    check_gcs: bool = Field(
        default=True,
        description="Check a LlamaCheckpoint's source and existing output in GCS from the operator before "
        "starting a Job (needs storage.objects.list/get for the operator's identity).",
    )
    gcs_project: str | None = Field(default=None, description="GCP project for the storage client (None = ambient).")
    gcs_timeout_seconds: float = Field(
        default=15.0, gt=0, description="Deadline of one GCS check; past it GCS counts as unavailable (retried)."
    )
    gcs_retry_seconds: float = Field(
        default=5.0, gt=0, description="Delay before retrying after GCS was unavailable (not Failed at once)."
    )
    retry_budget_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="How long a handler retries a temporary problem (GCS unavailable, a name conflict) before the "
        "object is marked Failed with reason RetriesExhausted.",
    )

    def converter_images(self) -> dict[ConverterPreset, str]:
        return {
            ConverterPreset.TPUSERVE: self.converter_image,
            ConverterPreset.INFERENCE_CHECKPOINT: self.checkpoint_image,
        }

    def usd_per_chip_hour(self, generation: tpu.TpuGeneration) -> float:
        return self.tpu_prices.get(generation.name, generation.chip.on_demand_usd_per_hour)
