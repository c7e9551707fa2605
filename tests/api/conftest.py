"""Fixtures for the CRD tests: the generated CRDs applied to the test cluster's real API server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from localcluster.wait import WaitTimeout, wait_crds_established, wait_for
from tpuserve.api import KINDS
from tpuserve.api.generate import crd_name

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"


@pytest.fixture(scope="session")
def crds(kube_cluster: Any) -> Any:
    """Apply crds/ (server-side, so re-applying on a shared cluster is harmless) and wait until served."""
    errors: list[str] = []

    def applied() -> bool:
        result = kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR), check=False)
        errors.append(result.stderr.strip())
        return bool(result.returncode == 0)

    # A just-started API server can refuse the first apply for a moment; an invalid CRD keeps failing, and the
    # failure then carries the API server's own words.
    try:
        wait_for(applied, timeout=30, interval=1, description="the API server to accept crds/")
    except WaitTimeout as timeout:
        raise AssertionError(f"{timeout}: {errors[-1]}") from None
    names = [f"crd/{crd_name(kind)}" for kind in KINDS]
    wait_crds_established(kube_cluster.kubectl, *names)
    return kube_cluster


def create(cluster: Any, namespace: str, obj: dict[str, Any], *, dry_run: bool = True) -> Any:
    """`kubectl create` one object (server-side dry run by default); returns the CompletedProcess."""
    args = ["create", "-n", namespace, "-o", "json", "-f", "-"]
    if dry_run:
        args.insert(1, "--dry-run=server")
    return cluster.kubectl(*args, check=False, input=json.dumps(obj))
