"""The `vllm-tpu` runtime's part of InferenceServer: vLLM settings users tune and where its weights come from."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import Field, model_validator

from tpuserve.api.conventions import ApiModel, CelRule, SecretName, cel_rules, cel_string_list, choice, optional

# vLLM's OpenAI API server port (GKE's samples and vLLM's default); /health, /v1 and /metrics live on it.
VLLM_PORT = 8000
# Flags the operator renders from typed fields or from the rest of the spec; `vllm.extraArgs` may not repeat them
# (argparse would take the last one silently, so a repeated flag would quietly override a typed field).
MANAGED_VLLM_FLAGS: tuple[str, ...] = (
    "model",
    "served-model-name",
    "revision",
    "tokenizer",
    "host",
    "port",
    "download-dir",
    "load-format",
    "max-model-len",
    "max-num-seqs",
    "max-num-batched-tokens",
    "tensor-parallel-size",
    "enable-prefix-caching",
    "no-enable-prefix-caching",
    "gpu-memory-utilization",
)
VLLM_FLAG_PATTERN = r"^--[a-z][a-z0-9]*(-[a-z0-9]+)*(=.*)?$"
# A flag one of whose dash-separated words names a credential (--hf-token, --api-key): its value would sit in the
# object and the Deployment in clear. Whole words only, so --tokenizer-mode or --max-num-batched-tokens pass.
VLLM_CREDENTIAL_FLAG_PATTERN = r"^--([a-z0-9]+-)*(token|secret|key|password)(-[a-z0-9]+)*(=.*)?$"
HF_REPO_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$"


class WeightLoading(StrEnum):
    """How a vLLM server reads a gs:// Hugging Face model directory (docs/install.md "vLLM on TPU" says why
    runai-streamer is the default)."""

    RUNAI_STREAMER = "runai-streamer"  # `--model gs://… --load-format runai_streamer`: streamed straight from GCS
    GCSFUSE = "gcsfuse"  # the bucket mounted by GKE's GCSFuse CSI driver; vLLM reads a local directory


class SecretKeyRef(ApiModel):
    """A key of a Secret in the object's namespace."""

    name: SecretName = Field(description="Name of the Secret.")
    key: str = Field(
        default="hf_api_token",
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key in the Secret; default `hf_api_token` (GKE's tutorials: "
        "`kubectl create secret generic hf-secret --from-literal=hf_api_token=$HF_TOKEN`).",
    )


class HubModel(ApiModel):
    """A model vLLM downloads from the Hugging Face hub at start-up (every replica, every restart)."""

    repo_id: str = Field(
        pattern=HF_REPO_ID_PATTERN, max_length=96, description="Repo id, e.g. `meta-llama/Llama-3.1-8B-Instruct`."
    )
    revision: str | None = optional("Branch, tag or commit; default the repo's main.", min_length=1, max_length=255)
    token_secret_ref: SecretKeyRef | None = optional(
        "Secret key holding a hub read token (gated repos such as meta-llama's need one); the server "
        "gets it as `HF_TOKEN`."
    )


class VllmSpec(ApiModel):
    """vLLM server settings (runtime vllm-tpu only). Defaults follow tpu-recipes' Llama 3.x settings on v6e."""

    max_model_len: int = Field(
        default=2048, ge=16, le=131072, description="Longest sequence, prompt plus output tokens (--max-model-len)."
    )
    max_num_seqs: int = Field(
        default=128, ge=1, le=4096, description="Sequences decoded together at most (--max-num-seqs)."
    )
    max_num_batched_tokens: int | None = optional(
        "Tokens per engine step, prefill chunks included (--max-num-batched-tokens); default vLLM's. "
        "tpu-recipes use 512 for decode-heavy and 2048 for prefill-heavy 70B serving.",
        ge=16,
        le=1048576,
    )
    tensor_parallel_size: int | None = optional(
        "Chips the model is sharded over; default every chip of the slice.", ge=1, le=256
    )
    enable_prefix_caching: bool = Field(
        default=True, description="Reuse the KV cache of shared prompt prefixes (--[no-]enable-prefix-caching)."
    )
    hbm_utilization: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Share of each chip's HBM vLLM may use for weights plus KV cache (--gpu-memory-utilization).",
    )
    weight_loading: WeightLoading = choice(
        WeightLoading.RUNAI_STREAMER,
        "How gs:// weights are read: `runai-streamer` (default, straight from GCS) or `gcsfuse` (a "
        "GCSFuse CSI volume; the cluster needs the GCSFuse CSI driver).",
    )
    extra_args: list[Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=list,
        max_length=64,
        description="Further vLLM flags, each `--flag` or `--flag=value`, e.g. `--async-scheduling`; flags the "
        "typed fields set are refused.",
        json_schema_extra=cel_rules(
            CelRule(
                rule=f"self.all(a, a.matches('{VLLM_FLAG_PATTERN}'))",
                message="spec.vllm.extraArgs entries must be vLLM flags: --flag or --flag=value (lower-case, dashes)",
            ),
            CelRule(
                rule=f"self.all(a, !(a.split('=')[0].substring(2) in {cel_string_list(MANAGED_VLLM_FLAGS)}))",
                message="spec.vllm.extraArgs may not set a flag the typed vllm fields or the operator set (--"
                + ", --".join(MANAGED_VLLM_FLAGS)
                + ")",
            ),
            CelRule(
                rule=f"self.all(a, !a.matches('{VLLM_CREDENTIAL_FLAG_PATTERN}'))",
                message="spec.vllm.extraArgs may not carry a credential (a flag named token, secret, key or "
                "password): give the hub token as spec.huggingFace.tokenSecretRef, a Secret the pod reads",
            ),
        ),
    )

    @model_validator(mode="after")
    def _valid_extra_args(self) -> VllmSpec:
        for arg in self.extra_args:
            if not re.fullmatch(VLLM_FLAG_PATTERN, arg):
                raise ValueError(f"vllm.extraArgs entry {arg!r} is not a vLLM flag (--flag or --flag=value)")
            if arg.split("=", 1)[0].removeprefix("--") in MANAGED_VLLM_FLAGS:
                raise ValueError(f"vllm.extraArgs may not set {arg.split('=', 1)[0]}: use the typed vllm field")
            if re.fullmatch(VLLM_CREDENTIAL_FLAG_PATTERN, arg):
                raise ValueError(
                    f"vllm.extraArgs may not carry a credential ({arg.split('=', 1)[0]}): give the hub token as "
                    "spec.huggingFace.tokenSecretRef"
                )
        return self
