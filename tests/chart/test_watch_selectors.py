"""The operator asks the API server for its own children only: every list and watch of Pods, Jobs and Deployments
it makes carries a label selector (docs/security.md, "The operator's footprint").

Proven on the API server's audit log (requests of ServiceAccounts, with their request URIs): the chart is installed,
and the operator runs with the chart's container args and env as the chart's ServiceAccount.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest

from localcluster.wait import wait_crds_established, wait_for
from tests.chart.cluster_helpers import cluster_helm, helm_install, operator_as_installed
from tpuserve.api import KINDS
from tpuserve.api.generate import crd_name
from tpuserve_dev import REPO

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CHILDREN = {("", "pods"), ("batch", "jobs"), ("apps", "deployments")}
SELECTOR = "app.kubernetes.io/managed-by=tpuserve-operator"


def _requests(audit_log: Path, username: str) -> list[tuple[str, str, str, str]]:
    """(verb, group, resource, requestURI) of every request `username` made to a child kind."""
    found = []
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if event.get("user", {}).get("username") != username:
            continue
        if (ref.get("apiGroup", ""), ref.get("resource")) in CHILDREN:
            found.append((event["verb"], ref.get("apiGroup", ""), ref["resource"], event["requestURI"]))
    return found


def test_child_lists_and_watches_carry_the_operator_label_selector(
    kube_cluster: Any, namespace: str, tmp_path: Path
) -> None:
    audit_log = kube_cluster.audit_log
    if audit_log is None:
        pytest.skip("the cluster keeps no API audit log (an existing cluster)")
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    wait_crds_established(
        kube_cluster.kubectl,
        *(f"crd/{crd_name(kind)}" for kind in KINDS),
    )
    release = f"t{uuid.uuid4().hex[:6]}"
    helm_install(kube_cluster, release, namespace, values={"gcs.checkFromOperator": False})
    username = f"system:serviceaccount:{namespace}:{release}-tpuserve"
    try:
        with operator_as_installed(kube_cluster, release, namespace, tmp_path / "operator"):

            def watching_every_child() -> list[tuple[str, str, str, str]] | None:
                requests = _requests(audit_log, username)
                watched = {(g, r) for verb, g, r, _ in requests if verb == "watch"}
                return requests if watched == CHILDREN else None

            requests = wait_for(watching_every_child, timeout=90, interval=1, description="the operator's watches")
    finally:
        cluster_helm(kube_cluster, "uninstall", release, "--namespace", namespace, check=False)
    listings = [(verb, r, uri) for verb, _, r, uri in requests if verb in ("list", "watch")]
    assert listings
    for verb, resource, uri in listings:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
        assert "labelSelector" in query, f"{verb} {resource} without a label selector: {uri}"
        if verb == "watch":
            assert query["labelSelector"] == [SELECTOR], uri
