"""What every child rendering shares: the template environment, the child metadata (labels, owner reference,
generation annotation) and the small conversions of typed values into what a manifest holds."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2
import yaml

from tpuserve import tpu
from tpuserve.api import ResourceRequirements, Toleration
from tpuserve.controllers import naming

ANNOTATION_OWNER = "tpuserve.dev/owner"
TPU_TOLERATION = {"key": tpu.TPU_TAINT_KEY, "operator": "Exists", "effect": tpu.TPU_TAINT_EFFECT}


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tpuserve", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


def render_template(template: str, **context: Any) -> dict[str, Any]:
    text = _environment().get_template(template).render(**context)
    # libyaml's safe loader: the pure-Python one cost 8 % of the operator's CPU creating 1,000 Jobs.
    obj: dict[str, Any] = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    obj["metadata"]["annotations"][naming.ANNOTATION_SPEC_HASH] = naming.spec_hash(obj)
    return obj


def child_meta(kind: str, owner_meta: dict[str, Any], name: str, app: str, component: str) -> dict[str, Any]:
    """Name, namespace, labels, annotations and owner reference of a child of the `kind` object `owner_meta`."""
    owner_name = owner_meta["name"]
    return {
        "name": name,
        "namespace": owner_meta.get("namespace", ""),
        "labels": dict(naming.labels(kind, owner_name, app, component)),
        "annotations": {
            ANNOTATION_OWNER: owner_name,
            naming.ANNOTATION_GENERATION: str(owner_meta.get("generation", 0)),
        },
        "owner": naming.owner_reference(kind, owner_meta),
    }


def pod_annotations(annotations: dict[str, str], owner_meta: dict[str, Any]) -> dict[str, str]:
    """The spec's pod annotations plus the owner's name (how a pod is traced back without its labels)."""
    return {**annotations, ANNOTATION_OWNER: owner_meta["name"]}


def tolerations(items: list[Toleration]) -> list[dict[str, Any]]:
    return [t.to_wire() for t in items]


def quantities(resources: dict[str, Any]) -> dict[str, Any]:
    """Quantities as strings (the API accepts int-or-string; the typed client wants strings)."""
    return {part: {k: str(v) for k, v in values.items()} for part, values in resources.items()}


def resources(requirements: ResourceRequirements | None) -> dict[str, Any]:
    return quantities(requirements.to_wire()) if requirements is not None else {}


def env_list(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in sorted(values.items())]


def number(value: float) -> str:
    """A number as an argument: 11, not 11.0; 0.5 as 0.5."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
