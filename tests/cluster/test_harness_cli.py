"""The people path: `python -m tpuserve_dev.cluster up|status|down` on a state directory of its own.

Starts a second, separate cluster (about 10 s), so it is marked slow as well as cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tpuserve_dev import REPO as REPO_ROOT

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def harness(command: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TPUSERVE_CLUSTER_DIR": str(state_dir)}
    return subprocess.run(
        [sys.executable, "-m", "tpuserve_dev.cluster", command],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_up_status_down(tmp_path: Path) -> None:
    state_dir = tmp_path / "cluster"
    try:
        up = harness("up", state_dir)
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip() == f"export KUBECONFIG={state_dir / 'admin.kubeconfig'}"

        again = harness("up", state_dir)
        assert again.returncode == 1
        assert "already running" in again.stderr

        status = harness("status", state_dir)
        assert status.returncode == 0
        assert "kube-apiserver           running" in status.stdout
        assert "gke-tpuserve-tpu-v5e-2x4-0" in status.stdout
        assert "tpuserve-local" in status.stdout
    finally:
        down = harness("down", state_dir)
    assert down.returncode == 0
    assert "kube-apiserver" in down.stderr
    stopped = harness("status", state_dir)
    assert stopped.returncode == 3
    assert "running" not in stopped.stdout
