"""Faults produced for real by a gRPC server process: death mid-run, deadlines, RESOURCE_EXHAUSTED, bad ids;
and bad input, which must end with a clear message, a non-zero exit and the reason in the termination message."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from localcluster.ports import free_port

Run = Callable[..., Any]


def synthetic(target: str, n: int, out_len: int = 8) -> list[str]:
    return [
        "--target", target, "--dataset", "synthetic", "--synthetic-input-length", "16",
        "--synthetic-output-length", str(out_len), "--num-prompts", str(n), "--warmup", "none",
    ]  # fmt: skip


@pytest.mark.parametrize("engine", ["cq", "aio"])
def test_server_killed_mid_run_gives_partial_results(
    engine: str, delay_server: Callable[..., Any], run_bench: Run
) -> None:
    server = delay_server("--ttft-ms", "20", "--itl-ms", "20")
    killer = threading.Timer(1.0, server.kill)  # SIGKILL: no goodbye on the connection
    killer.start()
    try:
        run = run_bench(
            *synthetic(server.target, 60, out_len=10), "--request-rate", "20", "--seed", "1", "--engine", engine
        )
    finally:
        killer.cancel()
    assert run.code == 1, run.stdout
    assert "unavailable" in run.summary["message"]
    assert "partial" in run.summary["message"]
    assert 0 < run.summary["successfulRequests"] < 60
    results = json.loads((run.output / "results.json").read_text())
    stage = results["stages"][0]
    assert stage["unsentRequests"] > 0
    assert stage["successfulRequests"] + stage["failedRequests"] + stage["unsentRequests"] == 60
    assert results["message"] == run.summary["message"]


def test_deadline_exceeded_is_counted_by_code(delay_server: Callable[..., Any], run_bench: Run) -> None:
    server = delay_server("--hang")
    run = run_bench(*synthetic(server.target, 3), "--request-timeout", "0.5")
    assert run.code == 1  # nothing succeeded
    assert run.summary["errors"] == {"DEADLINE_EXCEEDED": 3}
    assert run.summary["failedRequests"] == 3
    assert "no request succeeded" in run.summary["message"]


def test_resource_exhausted_is_counted_not_retried(delay_server: Callable[..., Any], run_bench: Run) -> None:
    server = delay_server("--max-inflight", "2", "--ttft-ms", "300", "--itl-ms", "10")
    run = run_bench(*synthetic(server.target, 10, out_len=2))  # all at once: 2 admitted, 8 refused
    assert run.code == 0, run.stdout
    assert run.summary["successfulRequests"] == 2
    assert run.summary["errors"] == {"RESOURCE_EXHAUSTED": 8}
    assert "RESOURCE_EXHAUSTED" in run.stdout


def test_token_ids_beyond_the_vocabulary_do_not_crash(
    delay_server: Callable[..., Any], run_bench: Run, bench_data: dict[str, Path]
) -> None:
    server = delay_server("--out-of-vocab", "--vocab-size", "200")
    run = run_bench(
        *synthetic(server.target, 4, out_len=5), "--tokenizer", str(bench_data["tokenizer"]), "--save-request-outputs"
    )
    assert run.code == 0, run.stdout
    assert "Undecodable output token ids (outside the tokenizer): 20" in run.stdout
    rows = json.loads((run.output / "stage-00.request-outputs.json").read_text())
    assert all(r["success"] and r["output_len"] == 5 for r in rows)


BAD_STREAMS = [
    ("garbage", "malformed stream message 1 (not a DecodeResponse)"),
    ("oversized", "oversized stream message (limit 1048576 bytes)"),
    ("overlong", "stream cut after 24 messages (max_tokens + 16)"),
]


@pytest.mark.parametrize("engine", ["cq", "aio"])
@pytest.mark.parametrize(("kind", "reason"), BAD_STREAMS, ids=[k for k, _ in BAD_STREAMS])
def test_bad_stream_fails_that_request_not_the_run(
    engine: str, kind: str, reason: str, delay_server: Callable[..., Any], run_bench: Run
) -> None:
    """Every 3rd Decode of a real gRPC server sends a stream the client must refuse: that request is a client
    error with its reason (in the request outputs), the other requests and the run go on."""
    server = delay_server("--bad-stream", kind, "--bad-every", "3", "--tokens-per-message", "1")
    run = run_bench(
        *synthetic(server.target, 9), "--engine", engine, "--save-request-outputs", "--request-timeout", "30"
    )
    assert run.code == 0, run.stdout
    assert run.summary["errors"] == {"CLIENT_ERROR": 3}, run.summary
    assert run.summary["successfulRequests"] == 6
    rows = json.loads((run.output / "stage-00.request-outputs.json").read_text())
    failed = [r for r in rows if not r["success"]]
    assert len(failed) == 3
    assert all(r["error"].startswith(f"CLIENT_ERROR: {reason}") for r in failed), [r["error"] for r in failed]
    # What a failed request kept is bounded by the cut: never more than max_tokens + 16 messages.
    assert all(len(r["tokens_per_message"]) <= 8 + 16 for r in rows)
    assert all(r["output_len"] == 8 for r in rows if r["success"])


def test_unreachable_server_fails_after_bounded_wait(run_bench: Run) -> None:
    run = run_bench(*synthetic(f"127.0.0.1:{free_port()}", 2), "--server-wait", "1")
    assert run.code == 1
    assert "not live after 1 s" in run.summary["message"]


def test_not_live_server_fails(delay_server: Callable[..., Any], run_bench: Run) -> None:
    server = delay_server("--not-live")
    run = run_bench(*synthetic(server.target, 2), "--server-wait", "1")
    assert run.code == 1
    assert "is_live=false" in run.summary["message"]


def test_bad_input_is_refused_with_reason(run_bench: Run, tmp_path: Path, bench_data: dict[str, Path]) -> None:
    target = "127.0.0.1:1"
    tok = str(bench_data["tokenizer"])
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('[{"no_conversations": 1}]')
    not_a_model = tmp_path / "not-a-model"
    not_a_model.write_text("hello")
    cases: list[tuple[list[str], str]] = [
        (["--target", target, "--dataset", "sharegpt", "--dataset-path", str(tmp_path / "missing.json"),
          "--tokenizer", tok], "does not exist"),
        (["--target", target, "--dataset", "sharegpt", "--dataset-path", str(bad_json), "--tokenizer", tok],
         "has no 'conversations'"),
        (["--target", target, "--dataset", "openorca", "--dataset-path", str(bad_json), "--tokenizer", tok],
         "not a readable pandas pickle"),
        (["--target", target, "--dataset", "sharegpt", "--dataset-path", str(bench_data["sharegpt"]),
          "--tokenizer", str(not_a_model)], "not a readable SentencePiece model"),
        (["--target", target, "--dataset", "sharegpt", "--dataset-path", str(bench_data["sharegpt"])],
         "needs --tokenizer"),
        ([*synthetic(target, 2), "--request-rate", "2", "--concurrency", "3"], "choose one load shape"),
        (["--target", "nohostport", "--dataset", "synthetic", "--synthetic-input-length", "4",
          "--synthetic-output-length", "4"], "must be HOST:PORT"),
        ([*synthetic(target, 2), "--save-request-outputs"], "needs --output"),
        (["--target", target, "--dataset", "synthetic", "--synthetic-input-length", "9:3",
          "--synthetic-output-length", "4"], "LO:HI"),
        ([*synthetic(target, 2), "--request-rate", "0"], "must be positive"),
        ([*synthetic(target, 2), "--engine", "grpc"], "invalid choice: 'grpc'"),
    ]  # fmt: skip
    for args, reason in cases:
        run = run_bench(*args, output=False)
        assert run.code == 2, (args, run.stdout)
        assert reason in run.summary.get("message", ""), (args, run.summary)
        assert reason in run.stdout


@pytest.mark.parametrize("engine", ["cq", "aio"])
def test_run_timeout_cancels_in_flight_and_reports(
    engine: str, delay_server: Callable[..., Any], run_bench: Run
) -> None:
    server = delay_server("--ttft-ms", "10", "--itl-ms", "200")
    run = run_bench(*synthetic(server.target, 5, out_len=20), "--timeout", "0.6", "--engine", engine)
    assert run.code == 1
    assert "run timeout" in run.summary["message"]
    assert run.summary["errors"] == {"CANCELLED": 5}


def test_tokenizer_assets_path_and_termination_env(
    delay_server: Callable[..., Any], bench_data: dict[str, Path], tmp_path: Path, monkeypatch: Any
) -> None:
    """`assets/...` resolves against TPUSERVE_MAXTEXT_DIR; the summary goes to TPUSERVE_TERMINATION_MESSAGE_PATH."""
    from tpuserve.bench.cli import main

    (tmp_path / "maxtext" / "assets").mkdir(parents=True)
    (tmp_path / "maxtext" / "assets" / "tokenizer.tiny").write_bytes(bench_data["tokenizer"].read_bytes())
    monkeypatch.setenv("TPUSERVE_MAXTEXT_DIR", str(tmp_path / "maxtext"))
    monkeypatch.setenv("TPUSERVE_TERMINATION_MESSAGE_PATH", str(tmp_path / "tm"))
    server = delay_server("--vocab-size", "200")
    code = main([*("run", *synthetic(server.target, 3)), "--tokenizer", "assets/tokenizer.tiny"])
    assert code == 0
    assert json.loads((tmp_path / "tm").read_text())["successfulRequests"] == 3
    monkeypatch.setenv("TPUSERVE_MAXTEXT_DIR", str(tmp_path / "elsewhere"))
    assert main(["run", *synthetic(server.target, 3), "--tokenizer", "assets/tokenizer.tiny"]) == 2
    assert "elsewhere/assets/tokenizer.tiny" in json.loads((tmp_path / "tm").read_text())["message"]


def test_transient_unavailable_does_not_stop_the_run(delay_server: Callable[..., Any], run_bench: Run) -> None:
    """UNAVAILABLE from a server that still answers HealthCheck is counted; the run goes on."""
    server = delay_server("--unavailable-every", "5", "--ttft-ms", "5", "--itl-ms", "2")
    run = run_bench(*synthetic(server.target, 40, out_len=3), "--request-rate", "200")
    assert run.code == 0, run.stdout
    assert run.summary["errors"] == {"UNAVAILABLE": 8}
    assert run.summary["successfulRequests"] == 32


def test_sigterm_ends_with_partial_results(delay_server: Callable[..., Any], tmp_path: Path) -> None:
    """Kubernetes stops a pod with SIGTERM: the run stops, writes what it measured and says why."""
    import signal
    import subprocess
    import sys
    import time

    server = delay_server("--ttft-ms", "10", "--itl-ms", "20")
    tm, out = tmp_path / "tm.json", tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "tpuserve.bench.cli", "run", *synthetic(server.target, 200, out_len=5),
         "--request-rate", "20", "--termination-message-path", str(tm), "--output", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:  # "Prepared 200 requests ..." comes just before the server wait and the stage
        if line.startswith("Prepared"):
            break
    time.sleep(2.0)  # ~40 requests sent at 20 req/s, 160 still to send
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    summary = json.loads(tm.read_text())
    assert "terminated by SIGTERM" in summary["message"]
    assert 0 < summary["successfulRequests"] < 200
    stage = json.loads((out / "results.json").read_text())["stages"][0]
    assert stage["unsentRequests"] > 0
    assert "SIGTERM" in stage["message"]
