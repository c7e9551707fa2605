"""The `jetstream-maxtext` runtime's part of InferenceServer: the MaxText settings users tune (`spec.engine`), the
keys the operator renders itself, and the rules that keep credentials out of plain arguments."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import Field, model_validator

from tpuserve.api.checkpoint import Quantization, WeightDtype
from tpuserve.api.conventions import (
    ApiModel,
    CelRule,
    SecretName,
    cel_rules,
    cel_string_list,
    choice,
    model_rules,
    optional,
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

    name: SecretName = Field(description="Name of the Secret.")
    key: str = Field(
        min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key of the value in the Secret."
    )


class ArgValueSource(ApiModel):
    """Where a setting's value comes from (a Kubernetes EnvVarSource limited to Secrets)."""

    secret_key_ref: SecretKeySelector = Field(
        description="The Secret key holding the value; the kubelet reads it when the pod starts (the operator "
        "never does)."
    )


class Attention(StrEnum):
    AUTOSELECTED = "autoselected"
    DOT_PRODUCT = "dot_product"
    FLASH = "flash"


PARALLELISM_FIELDS = ("iciFsdpParallelism", "iciAutoregressiveParallelism", "iciTensorParallelism")


def _setting_key_rules(field: str, managed_list: str = "") -> tuple[CelRule, CelRule]:
    """The keys of spec.engine.<field> are MaxText setting names, none of them one the typed fields or the operator
    set (`managed_list`: how the message lists those)."""
    return (
        CelRule(
            rule=f"self.all(k, k.matches('{SERVER_ARG_KEY_PATTERN}'))",
            message=f"spec.engine.{field} keys must be MaxText setting names (lower_snake_case)",
        ),
        CelRule(
            rule=f"self.all(k, !(k in {cel_string_list(MANAGED_SERVER_ARGS)}))",
            message=f"spec.engine.{field} may not set a key the typed engine fields or the operator set{managed_list}",
        ),
    )


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
    weight_dtype: WeightDtype = choice(WeightDtype.BFLOAT16, "Dtype of the weights in HBM.")
    attention: Attention = choice(Attention.AUTOSELECTED, "MaxText attention kernel.")
    quantization: Quantization | None = optional("MaxText AQT quantization; default none.")
    quantize_kvcache: bool = Field(default=False, description="Quantize the KV cache (int8).")
    extra_args: dict[str, Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=dict,
        max_length=64,
        description="Further MaxText key=value settings, e.g. {ragged_attention: 'true'}; keys the typed "
        "fields above set are refused.",
        json_schema_extra=cel_rules(
            *_setting_key_rules("extraArgs", " (" + ", ".join(MANAGED_SERVER_ARGS) + ")"),
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
        json_schema_extra=cel_rules(*_setting_key_rules("extraArgsFrom")),
    )

    model_config = model_rules(
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
