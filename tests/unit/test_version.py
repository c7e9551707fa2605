"""One version string: tpuserve.__version__. pyproject.toml reads it (a dynamic version); the chart, the image
tags and the docs' install examples repeat it for people and tools that cannot import Python, and must equal it."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib

import pytest
import yaml

import tpuserve
from tpuserve import images
from tpuserve_dev import REPO

VERSION = tpuserve.__version__
# Where the version is written out, and how: each pattern's group 1 is a version.
MENTIONS = {
    "charts/tpuserve/Chart.yaml": [r"(?m)^version: (\S+)$", r'(?m)^appVersion: "([^"]+)"$'],
    "images/cloudbuild.yaml": [r"_VERSION=([0-9][^ ,]*)", r"(?m)^  _VERSION: (\S+)$"],
    "images/operator.Dockerfile": [r"REGISTRY/operator:(\S+) "],
    "images/bench.Dockerfile": [r"REGISTRY/bench:(\S+) "],
    "images/converter.Dockerfile": [r"REGISTRY/converter:(\S+) "],
    "images/server.Dockerfile": [r"REGISTRY/maxengine-server:(\S+) "],
    "README.md": [r"_VERSION=([0-9][^ ,]*)", r"REGISTRY/(?:converter|bench):(\S+)"],
    "docs/install.md": [r"export VERSION=(\S+)"],
    "docs/images.md": [r"ghcr\.io/tpuserve/[a-z-]+:([0-9][^`\s]*)", r"package version \(`([^`]+)` now\)"],
}


def test_the_package_metadata_reads_the_version_from_the_package() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "tpuserve.__version__"}
    assert importlib.metadata.version("tpuserve") == VERSION  # as installed (make setup)


def test_the_chart_moves_with_the_operator() -> None:
    chart = yaml.safe_load((REPO / "charts/tpuserve/Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == VERSION
    assert images.OPERATOR_IMAGE.endswith(f":{VERSION}")


@pytest.mark.parametrize("path", sorted(MENTIONS))
def test_every_written_out_version_is_the_package_version(path: str) -> None:
    text = (REPO / path).read_text()
    for pattern in MENTIONS[path]:
        found = re.findall(pattern, text)
        assert found, f"{path}: no match for {pattern} (update MENTIONS when the text moves)"
        assert set(found) == {VERSION}, f"{path}: {pattern} finds {sorted(set(found))}, the package is {VERSION}"
