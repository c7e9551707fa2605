"""Generated and duplicated facts stay in sync: chart CRDs == crds/, dashboards and manifests/install.yaml ==
what the generator writes, chart defaults == tpuserve.images and the TPU catalog's prices."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest
import yaml

import tpuserve
from tpuserve import images, tpu
from tpuserve.settings import OperatorSettings
from tpuserve_dev import REPO
from tpuserve_dev.chart import dashboards, generate
from tpuserve_dev.chart.tools import CHART, render_objects

CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def test_chart_crds_are_identical_to_crds() -> None:
    top = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert top, "crds/ is empty"
    assert chart == top, "run `python -m tpuserve_dev.chart.generate`"


def test_generated_files_are_up_to_date() -> None:
    """Dashboards JSON and manifests/install.yaml equal a fresh generation (and no stale generated file is left)."""
    problems = generate.check()
    assert not problems, "\n".join(problems) + "\nrun `python -m tpuserve_dev.chart.generate`"


def test_install_yaml_holds_the_crds_and_the_operator() -> None:
    docs = [d for d in yaml.safe_load_all((REPO / "manifests" / "install.yaml").read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds[0] == "Namespace"
    assert kinds.count("CustomResourceDefinition") == len(list((REPO / "crds").glob("*.yaml")))
    assert "Deployment" in kinds
    assert "ClusterRole" in kinds
    # CRDs before anything else so that `kubectl apply -f install.yaml` works in one pass.
    last_crd = max(i for i, k in enumerate(kinds) if k == "CustomResourceDefinition")
    assert all(k == "CustomResourceDefinition" for k in kinds[1 : last_crd + 1])


def test_app_version_is_the_package_version() -> None:
    assert CHART_META["appVersion"] == tpuserve.__version__
    assert f"{VALUES['image']['repository']}:{CHART_META['appVersion']}" == images.OPERATOR_IMAGE


def test_workload_image_defaults_equal_images_py() -> None:
    assert VALUES["workloads"]["images"] == {
        "server": images.GOOGLE_SERVER_IMAGE,
        "http": images.GOOGLE_HTTP_IMAGE,
        "vllm": images.VLLM_TPU_IMAGE,
        "converter": images.CONVERTER_IMAGE,
        "googleCheckpoint": images.GOOGLE_CHECKPOINT_IMAGE,
        "benchmark": images.BENCH_IMAGE,
    }


def _operator_env(values: dict[str, Any] | None = None) -> dict[str, str]:
    deployment = next(o for o in render_objects(values) if o["kind"] == "Deployment")
    return {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_every_operator_env_var_is_an_operator_setting() -> None:
    """A misspelt TPUSERVE_* name would be ignored by pydantic-settings (extra="ignore"): catch it here."""
    fields = {f"TPUSERVE_{name.upper()}" for name in OperatorSettings.model_fields}
    all_on = {"workloads.jobTTLSecondsAfterFinished": 60, "gcs.project": "my-project", "scope": "namespaced"}
    for values in ({}, all_on):
        unknown = sorted(set(_operator_env(values)) - fields)
        assert not unknown, f"not fields of OperatorSettings: {unknown}"


def test_chart_defaults_equal_the_operator_defaults() -> None:
    """The settings the chart's default env produces equal OperatorSettings' own defaults, except where the chart
    deliberately differs (it names and creates a workload ServiceAccount)."""
    env = _operator_env()
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("TPUSERVE_")]:
            patch.delenv(key)
        defaults = OperatorSettings()
        for key, value in env.items():
            patch.setenv(key, value)
        from_chart = OperatorSettings()
    differences = {
        name for name in OperatorSettings.model_fields if getattr(from_chart, name) != getattr(defaults, name)
    }
    assert differences == {"workload_service_account", "tpu_prices"}
    assert from_chart.workload_service_account == "tpuserve-workloads"
    # The chart spells every price out; the operator's default ({}) means the same catalog prices.
    assert {g.name: from_chart.usd_per_chip_hour(g) for g in tpu.GENERATIONS} == {
        g.name: defaults.usd_per_chip_hour(g) for g in tpu.GENERATIONS
    }


def test_tpu_price_defaults_equal_the_catalog() -> None:
    catalog = {g.name: g.chip.on_demand_usd_per_hour for g in tpu.GENERATIONS}
    assert VALUES["tpuPrices"] == catalog
    prices_schema = SCHEMA["properties"]["tpuPrices"]
    assert set(prices_schema["required"]) == set(prices_schema["properties"]) == set(catalog)


def test_values_yaml_examples_match_defaults_where_they_name_images() -> None:
    """The `Example:` lines of the image values show the real default (so the docs cannot drift either)."""
    text = (CHART / "values.yaml").read_text()
    for key, default in VALUES["workloads"]["images"].items():
        assert re.search(rf"# Example: {key}: {re.escape(default)}\n", text), key


def test_dashboard_metric_names_are_documented() -> None:
    """Every tpuserve_* metric a dashboard queries is a metric named in docs/metrics.md (the operator's contract)."""
    documented = set(re.findall(r"`(tpuserve_[a-z0-9_]+)`", (REPO / "docs" / "metrics.md").read_text()))
    used = set()
    for expression in dashboards.all_expressions():
        used |= set(re.findall(r"\btpuserve_[a-z0-9_]+", expression.expr))
    # histogram series (_bucket/_sum/_count) are documented under the histogram's name
    missing = sorted(m for m in used if re.sub(r"_(bucket|sum|count)$", "", m) not in documented)
    assert used, f"not in docs/metrics.md: {missing}"
    assert not missing, f"not in docs/metrics.md: {missing}"


def test_pod_user_and_args_match_the_operator_image() -> None:
    """The chart runs the image as the user its Dockerfile declares, and its args suit the image's entrypoint."""
    dockerfile = (REPO / "images" / "operator.Dockerfile").read_text()
    user = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    assert user, "images/operator.Dockerfile declares no numeric USER"
    assert re.search(r'^ENTRYPOINT \["tpuserve"\]$', dockerfile, re.MULTILINE)
    deployment = next(o for o in render_objects() if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
        int(user.group(1)),
        int(user.group(2)),
    )
    assert pod["containers"][0]["args"][0] == "operator"
