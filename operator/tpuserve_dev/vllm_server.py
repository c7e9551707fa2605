"""Start a real vLLM OpenAI-compatible server (vLLM's CPU build) on the small Llama-3-architecture model.

Used by the `vllm_server` fixture (tests/vllm/fixtures.py), perf scripts and the demo:

    with start_vllm_server() as server:   # live: GET /health answered 200
        server.base_url                   # "http://127.0.0.1:PORT"
        server.model_dir                  # the served model (its tokenizer.json), also the model name

The venv comes from tests/vllm/setup-venv.sh and the model from tests/vllm/model.sh (`make vllm`; both cached).
Flags as /work/shared/facts/vllm-cpu-local.md found them to work on a 2-core, 24 GiB machine: the CPU backend
reads --gpu-memory-utilization as the share of host memory and refuses the default 0.92.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from localcluster.ports import free_port
from tpuserve_dev import REPO
from tpuserve_dev.server_process import running_server

HERE = REPO / "tests" / "vllm"  # the vLLM venv and model scripts, the chat template
PYTHON_ENV = "TPUSERVE_VLLM_PYTHON"  # an existing vLLM python, skipping the setup script
MODEL_ENV = "TPUSERVE_VLLM_MODEL"  # an existing model directory, skipping the model script
START_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class VLLMServer:
    base_url: str  # http://127.0.0.1:PORT (no trailing slash, no /v1)
    model_dir: str  # the model directory: vLLM's served model name and where tokenizer.json is
    python: str  # the vLLM venv's python (for `python -m vllm.entrypoints.cli.main bench serve`)


def _script_output(script: str, *args: str) -> str:
    done = subprocess.run(["bash", str(HERE / script), *args], check=True, capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


def vllm_python() -> str:
    """The vLLM venv's python (installed on first use: minutes, about 5 GB)."""
    return os.environ.get(PYTHON_ENV) or _script_output("setup-venv.sh")


def model_dir() -> str:
    """The small random-weight model (made on first use with the vLLM venv)."""
    return os.environ.get(MODEL_ENV) or _script_output("model.sh")


def larger_model_dir(layers: int, hidden: int) -> str:
    """A larger random-weight model of the same architecture and tokenizer (made on first use, cached)."""
    return _script_output("model.sh", str(layers), str(hidden))


def healthy(base_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def server_command(python: str, model: str, port: int, extra: list[str] | None = None) -> list[str]:
    return [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        "256",
        "--dtype",
        "bfloat16",
        "--max-num-seqs",
        "16",
        "--gpu-memory-utilization",
        "0.1",
        "--enforce-eager",
        # The small model's tokenizer has no chat template; /v1/chat/completions needs one (Llama 3's layout).
        "--chat-template",
        str(HERE / "chat_template.jinja"),
        *(extra or []),
    ]


@contextlib.contextmanager
def start_vllm_server(
    port: int | None = None,
    log_path: Path | None = None,
    extra_args: list[str] | None = None,
    model: str | None = None,
) -> Iterator[VLLMServer]:
    """Run the server until the block ends (serving `model`, by default the small test model); yield once /health
    answers 200."""
    python = vllm_python()
    model = model or model_dir()
    port = port or free_port()
    with running_vllm(server_command(python, model, port, extra_args), port, log_path) as base_url:
        yield VLLMServer(base_url, model, python)


@contextlib.contextmanager
def running_vllm(argv: list[str], port: int, log_path: Path | None) -> Iterator[str]:
    """vLLM's OpenAI API server started as `argv` (listening on `port`) until the block ends; yields its base URL
    once /health answers 200."""
    base_url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1")
    name = f"vLLM server on {base_url}"
    with running_server(name, argv, env, ready=lambda: healthy(base_url), timeout=START_TIMEOUT_S, log_path=log_path):
        yield base_url
