"""Development-only code of tpuserve, not shipped in the wheel or the images: the chart and dashboard generators
(`make crds`), the demo (`make demo`), the performance scripts (`make perf-*`), the project's configuration of
the local cluster (`make cluster-up`), and launchers of the real parts those and the tests run against (GCS
emulator, JetStream and vLLM servers, a local Hugging Face hub, the operator as a process)."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the repository root (this package lives in operator/tpuserve_dev)


def tools_cache() -> Path:
    """Where heavy set-up is cached between runs (tool binaries, venvs, models, the Docker data-root): the same
    root the shell set-up scripts use, $TPUSERVE_TOOLS_CACHE, else $XDG_CACHE_HOME/tpuserve-tools."""
    explicit = os.environ.get("TPUSERVE_TOOLS_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tpuserve-tools"
