"""pydantic's JSON schema as a Kubernetes structural OpenAPI v3 schema (what a CRD's `openAPIV3Schema` must be).

References inlined, `anyOf [X, null]` reduced to X (an absent field is how Kubernetes spells "unset"; nulls are
pruned by the API server), titles and `additionalProperties: false` dropped (structural schemas forbid the latter
beside `properties`; unknown fields are pruned or, with kubectl's strict validation, rejected), JSON-Schema-2020
exclusive bounds rewritten in OpenAPI v3.0 form. CEL rules, list-map markers and int-or-string come from the
models through `json_schema_extra`.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from tpuserve.api.conventions import CEL_KEY

# Order of keys in the written schema, so the YAML reads top-down: what a field is, then its limits, then children.
_KEY_ORDER = (
    "type",
    "x-kubernetes-int-or-string",
    "description",
    "default",
    "enum",
    "format",
    "pattern",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "maxProperties",
    "required",
    "properties",
    "items",
    "additionalProperties",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
)

# Keys of pydantic's JSON schema with no place in a CRD schema.
_DROPPED_KEYS = {"title", "$defs", "examples"}


class SchemaError(ValueError):
    """The models produced a schema the CRD generator cannot express structurally."""


def _resolve_ref(ref: str, defs: dict[str, Any]) -> dict[str, Any]:
    prefix = "#/$defs/"
    if not ref.startswith(prefix) or ref[len(prefix) :] not in defs:
        raise SchemaError(f"unresolvable reference {ref!r}")
    resolved: dict[str, Any] = defs[ref[len(prefix) :]]
    return resolved


def _structural(node: Any, defs: dict[str, Any], path: str) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs, path) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(_resolve_ref(node.pop("$ref"), defs))
        siblings = node
        node = {**target, **siblings}
        # A referenced model's own rules and a field's rules both apply.
        if CEL_KEY in target and CEL_KEY in siblings:
            node[CEL_KEY] = target[CEL_KEY] + siblings[CEL_KEY]
    if "anyOf" in node:
        variants = [v for v in node["anyOf"] if v != {"type": "null"}]
        if len(variants) != 1:
            raise SchemaError(f"{path}: a union of {len(variants)} types is not structural; annotate it")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        inner = _structural(variants[0], defs, path)
        node = {**inner, **rest}
        if CEL_KEY in inner and CEL_KEY in rest:
            node[CEL_KEY] = inner[CEL_KEY] + rest[CEL_KEY]
    if "default" in node and node["default"] is None:
        del node["default"]  # an optional field: absent is its Kubernetes spelling
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), int | float) and not isinstance(node.get(bound), bool):
            node[plain] = node[bound]
            node[bound] = True
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out[key] = {name: _structural(sub, defs, f"{path}.{name}") for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _structural(value, defs, f"{path}[]")
        else:
            out[key] = value
    if "type" not in out and not out.get("x-kubernetes-int-or-string"):
        if "properties" in out:
            out["type"] = "object"
        elif out.get("enum") and all(isinstance(v, str) for v in out["enum"]):
            out["type"] = "string"
        else:
            raise SchemaError(f"{path}: no type in {sorted(out)}; structural schemas need one")
    rank = {key: index for index, key in enumerate(_KEY_ORDER)}
    return dict(sorted(out.items(), key=lambda item: rank.get(item[0], len(rank))))


def structural_schema(model: type[BaseModel], path: str) -> dict[str, Any]:
    """A Kubernetes structural schema for a pydantic model (wire names, defaults, rules)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    schema: dict[str, Any] = _structural(raw, defs, path)
    _check_structural(schema, path)
    return schema


def _check_structural(node: dict[str, Any], path: str) -> None:
    for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "not", "const"):
        if forbidden in node and not (forbidden == "anyOf" and node.get("x-kubernetes-int-or-string")):
            raise SchemaError(f"{path}: {forbidden} left in the schema")
    for name, sub in node.get("properties", {}).items():
        _check_structural(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _check_structural(node[key], f"{path}[]")


def unbounded_fields(node: dict[str, Any], path: str) -> list[str]:
    """Strings without maxLength (or enum), lists without maxItems, maps without maxProperties: every spec field
    gets a bound, so objects stay small and the API server can bound the cost of CEL rules over them."""
    found: list[str] = []
    kind = node.get("type")
    if kind == "string" and "maxLength" not in node and "enum" not in node and "format" not in node:
        found.append(path)
    if node.get("x-kubernetes-int-or-string") and "maxLength" not in node:
        found.append(path)
    if kind == "array":
        if "maxItems" not in node:
            found.append(path)
        found += unbounded_fields(node.get("items", {}), f"{path}[]")
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        if "maxProperties" not in node:
            found.append(path)
        found += unbounded_fields(node["additionalProperties"], f"{path}{{}}")
    for name, sub in node.get("properties", {}).items():
        found += unbounded_fields(sub, f"{path}.{name}")
    return found
