"""The CRD and docs generator: committed files are current, schemas are structural, catalog rules come from
the catalog."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml
from tpuserve import tpu
from tpuserve.api import KINDS, PLURALS
from tpuserve.api.generate import (
    build_crd,
    crd_filename,
    register,
    render_crds,
    render_docs,
    stale_files,
    write_crds,
)
from tpuserve.api.structural import unbounded_fields

REPO = Path(__file__).resolve().parents[2]
CEL = "x-kubernetes-validations"


def test_committed_crds_and_docs_are_current(tmp_path: Path) -> None:
    """Regenerate into a temporary folder; any difference from crds/ or docs/api.md means `make crds` was not run."""
    written = write_crds(tmp_path / "crds", tmp_path / "api.md")
    assert len(written) == len(KINDS) + 1
    generated = sorted(p.name for p in (tmp_path / "crds").iterdir())
    committed = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    assert generated == committed, "crds/ holds files the generator does not write (or misses some)"
    for name in generated:
        assert (REPO / "crds" / name).read_text() == (tmp_path / "crds" / name).read_text(), (
            f"crds/{name} is stale: run `make crds`"
        )
    assert (REPO / "docs" / "api.md").read_text() == (tmp_path / "api.md").read_text(), (
        "docs/api.md is stale: run `make crds`"
    )


def test_crds_command_check_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    out, docs = tmp_path / "crds", tmp_path / "api.md"
    check = parser.parse_args(["crds", "--output", str(out), "--docs", str(docs), "--check"])
    assert check.func(check) == 1  # nothing written yet: stale
    assert "stale:" in capsys.readouterr().out
    write = parser.parse_args(["crds", "--output", str(out), "--docs", str(docs)])
    assert write.func(write) == 0
    assert check.func(check) == 0
    (out / crd_filename(KINDS[0])).write_text("edited\n")
    assert stale_files(out, docs) == [out / crd_filename(KINDS[0])]


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, sub in node.get("properties", {}).items():
            found += _walk(sub, f"{path}.{key}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                found += _walk(node[key], f"{path}[]")
    return found


@pytest.mark.parametrize("kind", KINDS, ids=[k.KIND for k in KINDS])
def test_schema_is_structural(kind: Any) -> None:
    version = build_crd(kind)["spec"]["versions"][0]
    for path, node in _walk(version["schema"]["openAPIV3Schema"]):
        for forbidden in ("$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "nullable", "const"):
            assert forbidden not in node, f"{kind.KIND}{path}: {forbidden}"
        assert node.get("additionalProperties") is not False, f"{kind.KIND}{path}"
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{kind.KIND}{path}: untyped"
        if "default" in node:
            assert node["default"] is not None, f"{kind.KIND}{path}"
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize("kind", KINDS, ids=[k.KIND for k in KINDS])
def test_every_spec_string_list_and_map_is_bounded(kind: Any) -> None:
    spec = build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert unbounded_fields(spec, "spec") == []
    # The finder itself finds what lacks a bound.
    assert unbounded_fields({"type": "object", "properties": {"s": {"type": "string"}}}, "x") == ["x.s"]
    loose_map = {"type": "object", "additionalProperties": {"type": "string", "maxLength": 1}}
    assert unbounded_fields(loose_map, "m") == ["m"]
    assert unbounded_fields({"type": "array", "maxItems": 1, "items": {"type": "string"}}, "l") == ["l[]"]


def test_metadata_name_rules_sit_at_the_root() -> None:
    rules = {
        kind.KIND: [r["rule"] for r in build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"][CEL]]
        for kind in KINDS
    }
    assert rules["LlamaCheckpoint"] == ["self.metadata.name.size() <= 55"]
    assert rules["BenchmarkRun"] == ["self.metadata.name.size() <= 57"]
    assert "self.metadata.name.size() <= 63" in rules["InferenceServer"][0]


@pytest.mark.parametrize("kind", KINDS, ids=[k.KIND for k in KINDS])
def test_conditions_are_a_list_map_keyed_by_type(kind: Any) -> None:
    status = build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) == {"type", "status", "reason", "lastTransitionTime"}
    assert {"observedGeneration", "phase"} <= set(status["properties"])


def test_names_and_printer_columns() -> None:
    crds = {kind.KIND: build_crd(kind) for kind in KINDS}
    for crd in crds.values():
        names = crd["spec"]["names"]
        assert names["categories"] == ["tpuserve"]
        assert names["shortNames"]
        assert crd["metadata"]["name"] == f"{names['plural']}.tpuserve.dev"
    bench_columns = [c["name"] for c in crds["BenchmarkRun"]["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert bench_columns[:6] == ["Phase", "Server", "Req/s", "Output tok/s", "TTFT p50 ms", "TPOT p50 ms"]
    assert bench_columns[-1] == "Age"


def _server_tpu_rules() -> list[dict[str, str]]:
    crd = build_crd(next(k for k in KINDS if k.KIND == "InferenceServer"))
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules: list[dict[str, str]] = spec["properties"]["tpu"]["x-kubernetes-validations"]
    return rules


def test_topology_rules_come_from_the_catalog() -> None:
    rules = _server_tpu_rules()
    assert len(rules) == 2 * len(tpu.GENERATIONS)
    for gen in tpu.GENERATIONS:
        mine = [r for r in rules if f" {gen.name} " in r["message"]]
        assert len(mine) == 2, gen.name
        for rule in mine:
            assert ", ".join(gen.single_host_topologies) in rule["message"]
            for spelling in gen.all_accelerator_labels + gen.aliases + (gen.name,):
                assert f"'{spelling}'" in rule["rule"]
            assert rule["fieldPath"] == ".topology"


def test_immutability_and_exclusive_rules_present() -> None:
    bench = build_crd(next(k for k in KINDS if k.KIND == "BenchmarkRun"))
    spec = bench["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = {r["rule"] for r in spec["x-kubernetes-validations"]}
    assert "self == oldSelf" in rules
    assert "has(self.serverRef) != has(self.target)" in rules
    rate = spec["properties"]["requestRate"]
    assert rate["x-kubernetes-int-or-string"] is True
    assert "inf" in rate["pattern"]


def test_rendered_files_parse_and_docs_cover_every_field() -> None:
    docs = render_docs()
    for name, text in render_crds().items():
        crd = yaml.safe_load(text)
        assert name == f"tpuserve.dev_{crd['spec']['names']['plural']}.yaml"
        root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for part in ("spec", "status"):
            for path, node in _walk(root["properties"][part], part):
                if path.endswith("[]") or path == part:
                    continue
                assert f"`{path}`" in docs, f"docs/api.md misses {path}"
                assert node.get("description"), f"{path} has no description"


def test_crds_command_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["crds", "--output", "-"])
    assert args.func(args) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["metadata"]["name"] for d in documents] == [
        "llamacheckpoints.tpuserve.dev",
        "inferenceservers.tpuserve.dev",
        "benchmarkruns.tpuserve.dev",
    ]


def test_generator_refuses_unions_it_cannot_express() -> None:
    """A plain `int | str` (not annotated as int-or-string) has no structural form: fail loudly, not silently."""
    from pydantic import BaseModel
    from tpuserve.api.structural import SchemaError, structural_schema

    class Loose(BaseModel):
        value: int | str

    with pytest.raises(SchemaError, match="union of 2 types"):
        structural_schema(Loose, "spec")


def test_generator_rewrites_optional_and_exclusive_bounds() -> None:
    from pydantic import BaseModel, Field
    from tpuserve.api.structural import structural_schema

    class Bounds(BaseModel):
        ratio: float | None = Field(default=None, gt=0, lt=1)

    schema = structural_schema(Bounds, "spec")
    ratio = schema["properties"]["ratio"]
    assert ratio == {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1, "exclusiveMaximum": True}


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.KIND)
def test_kind_constants_match_the_wire_fields(kind: Any) -> None:
    """`kind` and `apiVersion` must be Literal strings for the types; the constants code reads must agree."""
    assert kind.model_fields["kind"].default == kind.KIND
    assert kind.model_fields["api_version"].default == kind.API_VERSION == f"{kind.GROUP}/{kind.VERSION}"
    assert PLURALS[kind.KIND] == kind.PLURAL == build_crd(kind)["spec"]["names"]["plural"]
