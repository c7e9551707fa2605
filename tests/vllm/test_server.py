"""The vLLM fixture serves a real OpenAI-compatible stream with the shape the benchmark client relies on."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tpuserve_dev.vllm_server import VLLMServer

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def test_streamed_completion_ends_with_usage_then_done(vllm_server: VLLMServer) -> None:
    body = {
        "model": vllm_server.model_dir,
        "prompt": "the tensor processing unit",
        "max_tokens": 5,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    request = urllib.request.Request(
        f"{vllm_server.base_url}/v1/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = [line[len(b"data: ") :] for line in response.read().split(b"\n\n") if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    assert all(c["choices"] and "usage" not in c for c in chunks[:-1])
