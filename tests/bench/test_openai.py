"""`tpuserve bench run` over the OpenAI-compatible protocol against real servers started here: the scripted
fault server (tests/bench/openai_server.py) for each stream shape a real vLLM does not produce on demand, the Go
test server's -openai mode for load shapes, and vLLM's own random-dataset draws."""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.bench.conftest import REPO, BenchRun
from tests.bench.openai_server import SHAPES
from tpuserve.bench.runner import arrival_offsets

OpenAIServer = Callable[..., str]


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """Factory: openai_server("--script", "ok,multi") -> base URL of a running scripted server."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> str:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.openai_server", *args], stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        started.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("PORT "), line
        return f"http://127.0.0.1:{line.split()[1]}"

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=10)


def rows(run: BenchRun) -> list[dict[str, object]]:
    data: list[dict[str, object]] = json.loads((run.output / "stage-00.request-outputs.json").read_text())
    return data


def results(run: BenchRun) -> dict[str, object]:
    data: dict[str, object] = json.loads((run.output / "results.json").read_text())
    return data


def sharegpt_args(bench_data: dict[str, Path], n: int) -> list[str]:
    return [
        "--dataset", "sharegpt", "--dataset-path", str(bench_data["sharegpt"]),
        "--tokenizer", str(bench_data["tokenizer"]), "--num-prompts", str(n), "--max-output-length", "7",
    ]  # fmt: skip


def test_every_stream_shape_ends_its_own_request_only(
    openai_server: OpenAIServer, run_bench: Callable[..., BenchRun], bench_data: dict[str, Path]
) -> None:
    """One request per shape, in order (concurrency 1): tokens come from usage, faults fail only their request
    with the server's reason, and the run still reports the good ones."""
    url = openai_server("--script", ",".join(SHAPES))
    run = run_bench(
        "--target", url, *sharegpt_args(bench_data, len(SHAPES)), "--concurrency", "1", "--warmup", "none",
        "--request-timeout", "2", "--save-request-outputs",
    )  # fmt: skip
    assert run.code == 0, run.stdout
    by_shape = dict(zip(SHAPES, rows(run), strict=True))
    for shape in ("ok", "multi", "empty"):
        assert by_shape[shape]["success"], (shape, by_shape[shape])
        assert by_shape[shape]["output_len"] == 7, (shape, by_shape[shape])
    # three tokens a chunk: 3 chunks, 7 tokens by usage; per-chunk token counts unknown
    assert len(by_shape["multi"]["arrivals_ms"]) == 3  # type: ignore[arg-type]
    assert by_shape["multi"]["tokens_per_message"] == []
    assert by_shape["ok"]["tokens_per_message"] == [1] * 7
    assert by_shape["empty"]["generated_text"] == ""
    assert by_shape["ok"]["generated_text"] == " w" * 7
    assert by_shape["nousage"]["success"]  # counted from the text with the tokenizer, and reported apart
    expected = {
        "error_event": "STREAM_ERROR: engine died",
        "http400": "HTTP_400: This model's maximum context length is 256 tokens.",
        "http503": "HTTP_503: server overloaded",
        "hang": "DEADLINE_EXCEEDED: request timeout reached (--request-timeout)",
        "nodone": "MALFORMED_STREAM: the stream ended without data: [DONE]",
    }
    for shape, error in expected.items():
        assert by_shape[shape]["error"] == error, shape
    assert str(by_shape["reset"]["error"]).startswith("CONNECTION_ERROR: connection closed by the server")
    assert str(by_shape["malformed"]["error"]).startswith("MALFORMED_STREAM: data is not JSON")
    stage = results(run)["stages"][0]  # type: ignore[index]
    assert stage["successfulRequests"] == 4
    assert stage["failedRequests"] == 7
    assert stage["requestsWithoutUsage"] == 1
    assert stage["errors"] == {
        "CONNECTION_ERROR": 1, "DEADLINE_EXCEEDED": 1, "HTTP_400": 1, "HTTP_503": 1, "MALFORMED_STREAM": 2,
        "STREAM_ERROR": 1,
    }  # fmt: skip
    vllm = json.loads((run.output / "stage-00.vllm.json").read_text())
    assert vllm["completed"] == 4
    assert vllm["failed"] == 7
    assert vllm["backend"] == "openai"
    assert vllm["errors"][SHAPES.index("http503")] == "HTTP_503: server overloaded"


def test_a_stale_keep_alive_connection_is_retried_once_and_a_fresh_one_is_not(
    openai_server: OpenAIServer, run_bench: Callable[..., BenchRun], bench_data: dict[str, Path]
) -> None:
    """The server closes a kept-alive connection as the next request arrives on it (uvicorn does after 5 s idle,
    and a stage pause is 5 s): that request is sent again on a new connection and succeeds. A new connection
    closed without an answer is a CONNECTION_ERROR (no retry)."""
    stale = openai_server("--script", "ok,drop")
    run = run_bench("--target", stale, *sharegpt_args(bench_data, 6), "--concurrency", "1", "--warmup", "none")
    assert run.code == 0, run.stdout
    assert run.summary["failedRequests"] == 0, run.stdout
    fresh = openai_server("--script", "drop")
    run = run_bench("--target", fresh, *sharegpt_args(bench_data, 3), "--concurrency", "1", "--warmup", "none")
    assert run.code == 1, run.stdout
    assert set(run.summary["errors"]) == {"CONNECTION_ERROR"}, run.stdout


def test_chat_endpoint_and_bearer_token_from_file_never_in_the_results(
    openai_server: OpenAIServer, run_bench: Callable[..., BenchRun], bench_data: dict[str, Path], tmp_path: Path
) -> None:
    url = openai_server("--script", "ok", "--require-token", "s3cret-token")
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    run = run_bench(
        "--target", url, *sharegpt_args(bench_data, 4), "--endpoint", "/v1/chat/completions",
        "--api-key-file", str(token_file), "--warmup", "none",
    )  # fmt: skip
    assert run.code == 0, run.stdout
    assert run.summary["failedRequests"] == 0, run.stdout
    written = "".join(p.read_text() for p in run.output.iterdir())
    assert "s3cret-token" not in written + json.dumps(run.summary) + run.stdout
    without = run_bench("--target", url, *sharegpt_args(bench_data, 2), "--warmup", "none")
    assert without.code == 1
    assert set(without.summary["errors"]) == {"HTTP_401"}
    assert "Unauthorized" in without.stdout


def test_a_server_that_never_answers_fails_the_run_with_the_reason(
    run_bench: Callable[..., BenchRun], bench_data: dict[str, Path]
) -> None:
    import socket

    with socket.socket() as listener:  # accepts connections (the kernel does) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        run = run_bench("--target", url, "--dataset", "synthetic", "--synthetic-input-length", "4",
                        "--synthetic-output-length", "2", "--server-wait", "1", "--num-prompts", "2", "--model", "m",
                        "--tokenizer", str(bench_data["tokenizer"]))  # fmt: skip
    assert run.code != 0
    assert "not live after 1 s" in run.summary["message"], run.summary


def test_usage_errors_for_openai_flags(run_bench: Callable[..., BenchRun], tmp_path: Path) -> None:
    base = ["--dataset", "synthetic", "--synthetic-input-length", "4", "--synthetic-output-length", "2"]
    bad_url = run_bench("--target", "http://", *base, "--tokenizer", "x")
    assert bad_url.code == 2
    assert "must be an http:// or https:// URL" in bad_url.summary["message"]
    no_tokenizer = run_bench("--target", "http://127.0.0.1:1", *base, "--endpoint", "/v1/chat/completions")
    assert no_tokenizer.code == 2
    assert "needs --tokenizer" in no_tokenizer.summary["message"]
    empty = tmp_path / "empty-token"
    empty.write_text("")
    no_key = run_bench("--target", "http://127.0.0.1:1", *base, "--tokenizer", "x", "--api-key-file", str(empty))
    assert no_key.code == 2
    assert "is empty" in no_key.summary["message"]
    closed = run_bench("--target", "http://127.0.0.1:1", *base, "--concurrency", "2", "--burstiness", "0.5")
    assert closed.code == 2
    assert "--concurrency is a closed loop" in closed.summary["message"]


def test_gamma_arrivals_follow_vllm() -> None:
    """vLLM 0.32 get_request: gamma(shape=b, scale=1/(rate*b)) gaps, cumulative, rescaled to end at n/rate."""
    n, rate = 2000, 50.0
    for burstiness in (0.25, 1.0, 4.0):
        times = np.asarray(arrival_offsets(n, rate, seed=3, burstiness=burstiness))
        assert times[-1] == pytest.approx(n / rate)
        gaps = np.diff(times)
        # coefficient of variation of gamma(k) gaps is 1/sqrt(k): burstier below 1, smoother above
        assert np.std(gaps) / np.mean(gaps) == pytest.approx(1 / math.sqrt(burstiness), rel=0.15)
    assert arrival_offsets(4, 2.0, seed=0, burstiness=math.inf) == [0.5, 1.0, 1.5, 2.0]
    assert arrival_offsets(3, 2.0, seed=5) == arrival_offsets(3, 2.0, seed=5, burstiness=None)  # JetStream's draw


@pytest.fixture
def go_openai_server() -> Iterator[Callable[..., str]]:
    from tpuserve_dev.perf.bench_client import go_server_binary

    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> str:
        process = subprocess.Popen([str(go_server_binary()), "-openai", *args], stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout is not None
        return f"http://127.0.0.1:{process.stdout.readline().split()[1]}"

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        process.wait(timeout=10)


def test_concurrency_cap_on_an_open_loop_rate(
    go_openai_server: Callable[..., str], run_bench: Callable[..., BenchRun], bench_data: dict[str, Path]
) -> None:
    """All at once with --max-concurrency 3: never more than 3 requests overlap (from each request's own send
    and end times), and every request is still sent."""
    url = go_openai_server("-ttft-ms", "30", "-itl-ms", "5")
    run = run_bench("--target", url, *sharegpt_args(bench_data, 12), "--max-concurrency", "3", "--warmup", "none",
                    "--save-request-outputs")  # fmt: skip
    assert run.code == 0, run.stdout
    assert run.summary["successfulRequests"] == 12, run.stdout
    spans = [(float(r["send_time_sec"]), float(r["send_time_sec"]) + float(r["latency"])) for r in rows(run)]  # type: ignore[arg-type]
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    in_flight = peak = 0
    for _, step in events:
        in_flight += step
        peak = max(peak, in_flight)
    assert peak == 3


def test_random_dataset_lengths_follow_vllm(tmp_path: Path) -> None:
    """vLLM's random dataset on a tokenizer.json: input lengths in [floor(L(1-r)), ceil(L(1+r))] less the special
    tokens the tokenizer adds, output lengths likewise (at least 1), each prompt re-encoding to its length."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    from tpuserve.bench.datasets import random_requests
    from tpuserve.bench.tokenizer import Tokenizer as BenchTokenizer
    from tpuserve_dev.corpus import pairs

    hf = Tokenizer(models.BPE(unk_token="<unk>"))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<|begin_of_text|>"])
    hf.train_from_iterator([a + " " + b for a, b in pairs(200)], trainer)
    hf.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 1)]
    )
    path = tmp_path / "tokenizer.json"
    hf.save(str(path))
    tokenizer = BenchTokenizer.load(str(tmp_path))  # a directory holding tokenizer.json
    assert tokenizer.num_special_tokens_to_add() == 1
    requests = random_requests(200, 0, 64, 20, 0.5, tokenizer)
    inputs = [r.prompt_len for r in requests]
    outputs = [r.max_tokens for r in requests]
    assert min(inputs) >= math.floor(63 * 0.5)
    assert max(inputs) <= math.ceil(63 * 1.5)
    assert min(outputs) >= 10
    assert max(outputs) <= 30
    assert len(set(outputs)) > 10
    assert sum(len(tokenizer.encode(r.prompt)) == r.prompt_len for r in requests) >= 190
    assert random_requests(200, 0, 64, 20, 0.5, tokenizer)[7].prompt == requests[7].prompt  # seeded


def test_an_instant_server_batching_its_writes_streams_the_same_tokens(
    go_openai_server: Callable[..., str], run_bench: Callable[..., BenchRun], bench_data: dict[str, Path]
) -> None:
    """The speed experiment's server (-batch-writes: no flush per chunk, so many SSE events share one read): every
    request still ends with all its tokens counted from usage and one arrival per chunk, however the reads fell."""
    url = go_openai_server("-batch-writes")
    run = run_bench("--target", url, *sharegpt_args(bench_data, 20), "--max-output-length", "64",
                    "--concurrency", "4", "--warmup", "none", "--save-request-outputs")  # fmt: skip
    assert run.code == 0, run.stdout
    assert run.summary["successfulRequests"] == 20, run.stdout
    for row in rows(run):
        assert row["output_len"] == 64
        assert len(row["arrivals_ms"]) == 64  # type: ignore[arg-type]
        assert row["generated_text"] == " tok" * 64
