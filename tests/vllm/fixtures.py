"""Pytest fixtures for a real vLLM OpenAI-compatible server (vLLM's CPU build, operator/tpuserve_dev/vllm_server.py).

`vllm_server` (session) -> VLLMServer(base_url="http://127.0.0.1:PORT", model_dir=..., python=...): one server
for the whole session, live (GET /health answered 200). Tests using it are marked `vllm`; the venv and the
model come from `make vllm` (made on first use otherwise: minutes).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tpuserve_dev.vllm_server import VLLMServer, start_vllm_server


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    with start_vllm_server(log_path=log) as server:
        yield server
