"""API conventions shared by every kind: identity constants, the camelCase base model, Kubernetes shapes
(conditions, tolerations, resources, object references) and the helpers that attach CEL rules and printer
columns to the models. The CRD generator (`tpuserve.api.generate`) reads what these helpers record."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from tpuserve.api.columns import PrinterColumn

GROUP = "tpuserve.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "tpuserve"

# Kubernetes-style duration (metav1.Duration spelling without sub-second units): 90s, 30m, 2h, 1h30m.
DURATION_PATTERN = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
# DNS-1123 subdomain, the names of objects a spec refers to.
DNS1123_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# DNS-1035 label: what a Service name must be (the cluster DNS name of an InferenceServer).
DNS1035_LABEL_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
# Child names (controllers/naming.py): `<owner><suffix>`, at most 63 characters (a Service name is a DNS label;
# a Job's name becomes the job-name label of its pods). An owner name that fits keeps its child names readable.
MAX_CHILD_NAME = 63
JOB_NAME_SUFFIXES = {"LlamaCheckpoint": "-convert", "BenchmarkRun": "-bench"}
# Label and annotation keys (Kubernetes qualified names: an optional DNS-subdomain prefix and `/`, then a name of
# at most 63 characters) and label values (at most 63 characters, possibly empty).
QUALIFIED_NAME_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
MAX_KEY_PREFIX = 253
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
MAX_LABEL_VALUE = 63
# Bounds of what a spec passes through to children (keeps objects and CEL costs small).
MAX_MAP_ENTRIES = 64
MAX_ANNOTATION_VALUE = 4096  # 64 x 4 KiB stays under Kubernetes' 256 KiB for all annotations of an object
MAX_LIST_ITEMS = 64
MAX_IMAGE = 1024
MAX_PATH = 1024
MAX_SHORT_STRING = 253


# Bounded strings the specs share: an image reference, a ServiceAccount name, a file path in an image.
ImageName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_IMAGE)]
ServiceAccountName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SHORT_STRING)]
FilePath = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATH)]
SecretName = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN)]


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are errors (the API server prunes or
    rejects them anyway, so an unknown field here is a typo in our own code or tests)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass(frozen=True)
class CelRule:
    """One `x-kubernetes-validations` entry. `message` names the field; `message_expression`, when set, is
    the dynamic message the API server prefers (it falls back to `message` if the expression fails)."""

    rule: str
    message: str
    field_path: str | None = None
    message_expression: str | None = None
    reason: Literal["FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"] = (
        "FieldValueInvalid"
    )

    def to_schema(self) -> dict[str, str]:
        entry = {"rule": self.rule, "message": self.message}
        if self.message_expression:
            entry["messageExpression"] = self.message_expression
        if self.field_path:
            entry["fieldPath"] = self.field_path
        entry["reason"] = self.reason
        return entry


CEL_KEY = "x-kubernetes-validations"


def cel_rules(*rules: CelRule) -> dict[str, Any]:
    """`json_schema_extra` for a model or field carrying CEL rules."""
    return {CEL_KEY: [r.to_schema() for r in rules]}


def cel_string_list(values: list[str] | tuple[str, ...]) -> str:
    """A CEL list literal of strings."""
    return "[" + ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values) + "]"


def exactly_one_of(first: str, second: str, where: str) -> CelRule:
    return CelRule(
        rule=f"has(self.{first}) != has(self.{second})",
        message=f"{where}: set exactly one of {first} or {second}",
    )


def forbidden_unless(unless: str, field: str, message: str) -> CelRule:
    """self.<field> may be set only where the CEL condition `unless` holds."""
    return _presence_rule(unless, f"!has(self.{field})", field, message, "FieldValueForbidden")


def required_unless(unless: str, field: str, message: str) -> CelRule:
    """self.<field> must be set except where the CEL condition `unless` holds."""
    return _presence_rule(unless, f"has(self.{field})", field, message, "FieldValueRequired")


def _presence_rule(
    unless: str, presence: str, field: str, message: str, reason: Literal["FieldValueForbidden", "FieldValueRequired"]
) -> CelRule:
    return CelRule(rule=f"{unless} || {presence}", message=message, field_path=f".{field}", reason=reason)


def immutable(where: str, hint: str) -> CelRule:
    return CelRule(rule="self == oldSelf", message=f"{where} is immutable: {hint}")


# --- Kubernetes shapes -------------------------------------------------------------------------------------

# A resource quantity ("64Gi", "500m", 8): Kubernetes' int-or-string with the quantity pattern.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


MAX_QUANTITY = 64


def _check_quantity(value: int | str) -> int | str:
    if isinstance(value, str) and (len(value) > MAX_QUANTITY or not re.match(QUANTITY_PATTERN, value)):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 64Gi, 500m, 8)")
    return value


Quantity = Annotated[
    int | str,
    AfterValidator(_check_quantity),
    WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN, "maxLength": MAX_QUANTITY}),
]


def choice(default: StrEnum, description: str) -> Any:
    """A field holding one of an enum's values: `default` unless set."""
    return Field(default=default, description=description)


def optional(description: str, **constraints: Any) -> Any:
    """A field that may be left out (null, no default of its own), with its description and constraints."""
    return Field(default=None, description=description, **constraints)


def model_rules(*rules: CelRule) -> ConfigDict:
    """The model_config of an ApiModel whose object as a whole carries CEL rules."""
    config: ConfigDict = ApiModel.model_config | {"json_schema_extra": cel_rules(*rules)}
    return config


class ResourceRequirements(ApiModel):
    """Container resource requests and limits (the Kubernetes shape, quantities as int or string)."""

    requests: dict[str, Quantity] | None = optional("Minimum resources, e.g. memory: 64Gi.", max_length=16)
    limits: dict[str, Quantity] | None = optional("Maximum resources.", max_length=16)


class TolerationOperator(StrEnum):
    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Toleration(ApiModel):
    """A pod toleration (the Kubernetes shape)."""

    key: str | None = optional(
        "Taint key; empty with operator Exists matches every taint.", max_length=MAX_KEY_PREFIX + 1 + MAX_LABEL_VALUE
    )
    operator: TolerationOperator | None = optional("Exists or Equal (Kubernetes default).")
    value: str | None = optional("Taint value, for operator Equal.", max_length=MAX_LABEL_VALUE)
    effect: TaintEffect | None = optional("Taint effect to match; empty matches all.")
    toleration_seconds: int | None = optional("For NoExecute: how long the pod stays bound after the taint appears.")


class ObjectRef(ApiModel):
    """A reference to another object of this API in the same namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN, description="Object name.")


def _qualified_name_ok(key: str) -> bool:
    prefix, _, _ = key.rpartition("/")
    return bool(re.match(QUALIFIED_NAME_PATTERN, key)) and len(prefix) <= MAX_KEY_PREFIX


def _check_keys(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        if not _qualified_name_ok(key):
            raise ValueError(f"{key!r} is not a Kubernetes label/annotation key ({QUALIFIED_KEY_HINT})")
    return value


def _check_label_values(value: dict[str, str]) -> dict[str, str]:
    for key, item in value.items():
        if not re.match(LABEL_VALUE_PATTERN, item):
            raise ValueError(f"label value {item!r} of {key!r} is not a Kubernetes label value ({LABEL_VALUE_HINT})")
    return value


QUALIFIED_KEY_HINT = (
    "an optional DNS-subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.', "
    "starting and ending with a letter or digit"
)
LABEL_VALUE_HINT = "at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"


def _keys_rule(where: str) -> CelRule:
    return CelRule(
        rule=f"self.all(k, k.matches('{QUALIFIED_NAME_PATTERN}') && "
        f"(k.indexOf('/') < 0 || k.indexOf('/') <= {MAX_KEY_PREFIX}))",
        message=f"{where} keys must be Kubernetes label/annotation keys ({QUALIFIED_KEY_HINT})",
    )


AnnotationMap = Annotated[
    dict[str, Annotated[str, Field(max_length=MAX_ANNOTATION_VALUE)]], AfterValidator(_check_keys)
]
LabelMap = Annotated[
    dict[str, Annotated[str, Field(max_length=MAX_LABEL_VALUE, pattern=LABEL_VALUE_PATTERN)]],
    AfterValidator(_check_keys),
    AfterValidator(_check_label_values),
]


def annotations_field(where: str, description: str) -> Any:
    """A map passed through as pod annotations: bounded, keys Kubernetes accepts."""
    return Field(
        default_factory=dict,
        max_length=MAX_MAP_ENTRIES,
        description=description,
        json_schema_extra=cel_rules(_keys_rule(where)),
    )


def labels_field(where: str, description: str) -> Any:
    """A map passed through as labels (a nodeSelector): bounded, keys and values Kubernetes accepts."""
    return annotations_field(where, description)


def name_rules(kind: str) -> tuple[CelRule, ...]:
    """CEL rules on metadata.name so that every child name derived from it is valid and readable."""
    if kind == "InferenceServer":
        return (
            CelRule(
                rule=f"self.metadata.name.size() <= {MAX_CHILD_NAME} && "
                f"self.metadata.name.matches('{DNS1035_LABEL_PATTERN}')",
                # No fieldPath: the API server allows none into metadata; the message starts with the field instead.
                message=f"metadata.name: an InferenceServer's name is the name of its Service (a DNS-1035 label): "
                f"at most {MAX_CHILD_NAME} lowercase letters, digits and '-', starting with a letter, no '.'",
            ),
        )
    limit = MAX_CHILD_NAME - len(JOB_NAME_SUFFIXES[kind])
    return (
        CelRule(
            rule=f"self.metadata.name.size() <= {limit}",
            message=f"metadata.name: a {kind}'s name may have at most {limit} characters (its Job is "
            f"<name>{JOB_NAME_SUFFIXES[kind]}, at most {MAX_CHILD_NAME})",
        ),
    )


def check_name(kind: str, metadata: dict[str, Any]) -> None:
    """What name_rules(kind) says, for the models."""
    name = str(metadata.get("name") or "")
    if not name:
        return  # generateName or an object not yet named (tests, rendering)
    if kind == "InferenceServer":
        if len(name) > MAX_CHILD_NAME or not re.match(DNS1035_LABEL_PATTERN, name):
            raise ValueError(name_rules(kind)[0].message)
    elif len(name) > MAX_CHILD_NAME - len(JOB_NAME_SUFFIXES[kind]):
        raise ValueError(name_rules(kind)[0].message)


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """One observation of the object's state (Kubernetes metav1.Condition)."""

    type: str = Field(min_length=1, max_length=316, description="CamelCase condition type, e.g. Ready.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="CamelCase machine-readable reason for the last transition.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable detail.")
    last_transition_time: datetime = Field(description="When status last changed.")
    observed_generation: int | None = optional("metadata.generation the condition was computed from.", ge=0)


# The list-map markers that let server-side apply and strategic merges key conditions by type.
CONDITIONS_LIST_MAP: dict[str, Any] = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}


def conditions_field() -> Any:
    return Field(
        default_factory=list,
        description="Current state, one entry per condition type (Kubernetes conventions).",
        json_schema_extra=CONDITIONS_LIST_MAP,
    )


def nested_default(model: type[ApiModel]) -> dict[str, Any]:
    """`json_schema_extra` for a nested object whose fields all have defaults: the API server fills the whole
    object in when the user omits it. The default is written out in full (not `{}`) because the API server
    checks a default against the object's CEL rules without defaulting inside it first."""

    def without_empty(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: without_empty(v) for k, v in value.items() if v not in ({}, [])}
        if isinstance(value, float) and value.is_integer():
            return int(value)  # 11, as a user writes it, not 11.0
        return value

    return {"default": without_empty(model().to_wire())}


def parse_duration(text: str) -> float:
    """Seconds in a duration written as in the API (`2h`, `1h30m`, `90s`)."""
    match = re.fullmatch(DURATION_PATTERN, text)
    if not text or not match:
        raise ValueError(f"{text!r} is not a duration like 90s, 30m, 2h or 1h30m")
    hours, minutes, seconds = (int(g[:-1]) if g else 0 for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


class KindInfo:
    """A kind's names: what the CRD generator needs beyond the schema and what every caller of the API server
    uses (kube.py, handlers.py, metrics, tests) instead of retyping them. Each resource model sets KIND (PLURAL and
    SINGULAR follow from it), SHORT_NAMES and PRINTER_COLUMNS (the CRD adds Age last); the group and version are
    the API's."""

    GROUP: ClassVar[str] = GROUP
    VERSION: ClassVar[str] = VERSION
    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str]
    PLURAL: ClassVar[str]  # derived from KIND: the lowercase kind plus "s", as Kubernetes spells it for these kinds
    SINGULAR: ClassVar[str]  # derived from KIND: the lowercase kind
    SHORT_NAMES: ClassVar[tuple[str, ...]]
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "KIND" in vars(cls):
            cls.SINGULAR = cls.KIND.lower()
            cls.PLURAL = cls.SINGULAR + "s"


class Resource(ApiModel, KindInfo):
    """A kind of this API: apiVersion and metadata, and a metadata.name every child name derived from fits (the
    CRD checks the same with name_rules). Each kind adds `kind`, `spec` and `status`."""

    api_version: Literal["tpuserve.dev/v1alpha1"] = "tpuserve.dev/v1alpha1"
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _child_names_fit(self) -> Self:
        check_name(self.KIND, self.metadata)
        return self
