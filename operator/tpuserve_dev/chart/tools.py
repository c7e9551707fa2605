"""Helpers shared by the chart generator and the chart tests: the pinned helm binary and chart rendering."""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tpuserve_dev import REPO

CHART = REPO / "charts" / "tpuserve"
# The Kubernetes version the chart is rendered for (the test cluster's version; Chart.yaml's kubeVersion floor
# is lower).
KUBE_VERSION = "1.35.4"
# The release name and namespace manifests/install.yaml is rendered with.
INSTALL_RELEASE = "tpuserve"
INSTALL_NAMESPACE = "tpuserve-system"


@functools.cache
def tools_bin_dir() -> Path:
    """The test-cluster binaries directory (helm, kubectl, ...): TPUSERVE_TOOLS_BIN, else the cached build
    (`make tools`); a clear error when they are missing (the test-cluster harness decides)."""
    from localcluster.harness import tools_bin_dir as cluster_tools_bin_dir

    return cluster_tools_bin_dir()


def helm_binary() -> Path:
    return tools_bin_dir() / "helm"


def helm(*args: str, check: bool = True, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the pinned helm with its own config/cache dirs under /tmp (never the user's ~/.config/helm)."""
    helm_home = Path(os.environ.get("TMPDIR", "/tmp")) / "tpuserve-chart-helm"
    full_env = {
        **os.environ,
        "HELM_CONFIG_HOME": str(helm_home / "config"),
        "HELM_CACHE_HOME": str(helm_home / "cache"),
        "HELM_DATA_HOME": str(helm_home / "data"),
        **(env or {}),
    }
    result = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, env=full_env)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def set_args(values: Mapping[str, Any] | None) -> list[str]:
    """`--set-json key=json` arguments for a flat mapping of dotted keys to values."""
    args: list[str] = []
    for key, value in (values or {}).items():
        args += ["--set-json", f"{key}={_json(value)}"]
    return args


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def render(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = INSTALL_RELEASE,
    namespace: str = INSTALL_NAMESPACE,
    include_crds: bool = False,
    values_files: Iterable[Path] = (),
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart with dotted-key overrides; returns the process (stdout = the manifests)."""
    args = ["template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    if include_crds:
        args.append("--include-crds")
    for path in values_files:
        args += ["--values", str(path)]
    return helm(*args, *set_args(values), check=check)


def render_objects(values: Mapping[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """The rendered objects (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(render(values, **kwargs).stdout) if doc]
