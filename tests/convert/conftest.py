"""Fixtures for the converter tests: a tiny Llama architecture, fake Meta sources, real tiny Orbax checkpoints.

The checkpoints are written by orbax-checkpoint itself (tpuserve.convert.synthetic), the same handler and
options MaxText uses; only the weights are random. Nothing here is mocked.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tpuserve import llama
from tpuserve_dev.tiny_checkpoint import TINY


@pytest.fixture(scope="session")
def tiny_arch() -> llama.LlamaArch:
    return TINY


@pytest.fixture(scope="session")
def tiny_arch_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("arch") / "tiny.json"
    path.write_text(json.dumps(dataclasses.asdict(TINY)))
    return path


def run_synthetic(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "tpuserve.convert.synthetic", *args], check=True, capture_output=True)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory, tiny_arch_json: Path) -> dict[str, Path]:
    """Real scanned and unscanned Orbax checkpoints of TINY (4 simulated CPU devices, like MaxText's sharded save)."""
    root = tmp_path_factory.mktemp("ckpt")
    run_synthetic("scanned", "--model", "llama2-7b", "--arch-json", str(tiny_arch_json), "--output", str(root / "s"))
    run_synthetic(
        "unscanned",
        "--model",
        "llama2-7b",
        "--arch-json",
        str(tiny_arch_json),
        "--output",
        str(root / "u"),
        "--scanned-items",
        str(root / "s/0/items"),
    )
    return {"scanned": root / "s/0/items", "unscanned": root / "u/0/items"}


@pytest.fixture
def checkpoint_copy(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> Callable[[str], Path]:
    """A private copy of a session checkpoint (tests that break files must not touch the shared one)."""

    def copy(which: str) -> Path:
        step_dir = tiny_checkpoints[which].parent
        dest = tmp_path / which / "0"
        shutil.copytree(step_dir, dest)
        return dest / "items"

    return copy


@pytest.fixture
def write_params(tmp_path: Path) -> Callable[[dict[str, Any], str], Path]:
    """Save an arbitrary flat param dict as a MaxText-style TrainState with orbax (in-process, one CPU device)."""
    from tpuserve.convert import synthetic

    def write(params: dict[str, Any], name: str) -> Path:
        return synthetic.save_train_state(tmp_path / name, params)

    return write
