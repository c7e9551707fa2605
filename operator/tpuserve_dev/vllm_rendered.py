"""Run the vLLM server the operator rendered, on this machine's CPU: the `vllm` container's own arguments, read
from the Deployment in the cluster, with the few that cannot apply on a CPU replaced or dropped (each with the
reason, printed by the demo). The server is vLLM's real OpenAI API server from its CPU build (tpuserve_dev.vllm_server
provides the venv and the small random-weight Llama-3-architecture model).

    with start_rendered_server(deployment_args, log_path) as running:
        running.base_url, running.args, running.adapted   # adapted: [(rendered arg, what ran instead, why)]
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from localcluster.ports import free_port
from tpuserve_dev.vllm_server import HERE, model_dir, running_vllm, vllm_python


@dataclass(frozen=True)
class Adaptation:
    rendered: str
    ran: str | None  # None: dropped
    why: str


@dataclass
class RunningServer:
    base_url: str
    args: list[str]
    adapted: list[Adaptation] = field(default_factory=list)


def _model_max_len(model: str) -> int:
    config = json.loads((Path(model) / "config.json").read_text())
    return int(config["max_position_embeddings"])


def cpu_args(rendered: list[str], model: str, port: int) -> tuple[list[str], list[Adaptation]]:
    """The rendered `--flag[=value]` arguments as they can run here, and what changed. Everything else (served
    model name, max sequences, batched tokens, prefix caching, extra args) runs as rendered."""
    out: list[str] = []
    adapted: list[Adaptation] = []

    def swap(arg: str, ran: str | None, why: str) -> None:
        adapted.append(Adaptation(arg, ran, why))
        if ran is not None:
            out.append(ran)

    max_len = _model_max_len(model)
    for arg in rendered:
        flag, _, value = arg.partition("=")
        if flag == "--model":
            swap(arg, f"--model={model}", "the weights: a local copy of the small random-weight Llama-3-shaped model")
        elif flag in ("--load-format", "--download-dir", "--revision"):
            swap(arg, None, "loads from GCS or the hub, which this machine cannot reach; the model is a local dir")
        elif flag == "--tensor-parallel-size":
            swap(arg, None, "shards over TPU chips; vLLM's CPU backend runs one process")
        elif flag == "--gpu-memory-utilization":
            swap(arg, "--gpu-memory-utilization=0.1", "on the CPU backend it is the share of host memory, shared here")
        elif flag == "--host":
            swap(arg, "--host=127.0.0.1", "a local process: loopback only")
        elif flag == "--port":
            swap(arg, f"--port={port}", "a local process shares the host's ports")
        elif flag == "--max-model-len" and int(value) > max_len:
            swap(arg, f"--max-model-len={max_len}", "the small model's max_position_embeddings")
        else:
            out.append(arg)
    for extra, why in (
        ("--dtype=bfloat16", "the small model's dtype (TPU serves the checkpoint's dtype too)"),
        ("--enforce-eager", "skips torch.compile: the CPU stand-in starts in seconds (TPU compiles with XLA)"),
    ):
        out.append(extra)
        adapted.append(Adaptation("", extra, why))
    return out, adapted


@contextlib.contextmanager
def start_rendered_server(
    rendered: list[str], log_path: Path | None = None, *, model: str | None = None, port: int | None = None
) -> Iterator[RunningServer]:
    """vLLM's OpenAI API server (`python -m vllm.entrypoints.openai.api_server`, the container's command) with the
    adapted arguments, until the block ends; yields once /health answers 200. `model`: a Hugging Face model
    directory to serve (default the small model from tests/vllm/model.sh)."""
    port = port or free_port()
    args, adapted = cpu_args(rendered, model or model_dir(), port)
    argv = [vllm_python(), "-m", "vllm.entrypoints.openai.api_server", *args]
    with running_vllm(argv, port, log_path) as base_url:
        yield RunningServer(base_url, args, adapted)


def parse_with_vllm(argv_lists: list[list[str]]) -> list[dict[str, object]]:
    """Each argument list through vLLM's own server parser, in the vLLM venv (tests/vllm/parse_args.py)."""
    done = subprocess.run(
        [vllm_python(), str(HERE / "parse_args.py")],
        input=json.dumps(argv_lists),
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1"),
    )
    results: list[dict[str, object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return results
