"""`tpuserve bench run` against the real vLLM OpenAI server: every request answered, tokens from usage."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.bench.conftest import BenchRun
from tpuserve_dev.vllm_server import VLLMServer

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.mark.parametrize("endpoint", ["/v1/completions", "/v1/chat/completions"])
def test_bench_against_real_vllm(vllm_server: VLLMServer, run_bench: Callable[..., BenchRun], endpoint: str) -> None:
    run = run_bench(
        "--target", vllm_server.base_url, "--endpoint", endpoint, "--dataset", "random",
        "--tokenizer", vllm_server.model_dir, "--random-input-len", "24", "--random-output-len", "6",
        "--random-range-ratio", "0.5", "--num-prompts", "12", "--ignore-eos", "--request-rate", "20",
        "--burstiness", "0.5", "--max-concurrency", "4", "--warmup", "none", "--save-request-outputs",
    )  # fmt: skip
    assert run.code == 0, run.stdout
    rows = json.loads((run.output / "stage-00.request-outputs.json").read_text())
    assert all(r["success"] for r in rows)
    # --ignore-eos: the server generates every token asked for, and usage says so
    assert [r["output_len"] for r in rows] == [r["max_tokens"] for r in rows]
    assert len({r["max_tokens"] for r in rows}) > 1  # lengths drawn from the range
    vllm = json.loads((run.output / "stage-00.vllm.json").read_text())
    assert vllm["completed"] == 12
    assert vllm["failed"] == 0
    assert vllm["model_id"] == vllm_server.model_dir
    assert vllm["total_output_tokens"] == run.summary["totalOutputTokens"]
    stage = json.loads((run.output / "results.json").read_text())["stages"][0]
    assert stage["requestsWithoutUsage"] == 0
    assert stage["e2elMs"] is not None
