"""Fixtures for the bench tests: a tokenizer trained here, datasets in the real formats, our delay server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localcluster.wait import WaitTimeout, wait_for
from tpuserve_dev import corpus
from tpuserve_dev.jetstream_server import health

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def bench_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tokenizer (a SentencePiece model trained on a word corpus), sharegpt JSON, openorca pickle."""
    d = tmp_path_factory.mktemp("bench-data")
    return {
        "tokenizer": corpus.train_tokenizer(d),
        "sharegpt": corpus.write_sharegpt(d / "sharegpt.json", 300, max_words=150),
        "openorca": corpus.write_openorca(d / "openorca.pkl", 200, max_words=150),
    }


@dataclass
class ServerProcess:
    target: str
    process: subprocess.Popen[str]

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def start_delay_server(*args: str) -> ServerProcess:
    """tests/jetstream/delay_server.py in its own process (a real gRPC server on loopback)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.jetstream.delay_server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"delay server did not start: {line!r}")
    target = f"127.0.0.1:{line.split()[1]}"
    ready = (lambda: _answers(target)) if "--not-live" in args else (lambda: health(target))
    try:
        wait_for(ready, timeout=20, interval=0.1, description="the delay server live")
    except WaitTimeout:
        process.kill()
        raise
    return ServerProcess(target, process)


def _answers(target: str) -> bool:
    import grpc

    with grpc.insecure_channel(target) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=1)
            return True
        except grpc.FutureTimeoutError:
            return False


@pytest.fixture
def delay_server() -> Iterator[Callable[..., ServerProcess]]:
    """Factory: delay_server("--ttft-ms", "100", ...) -> a running server, stopped after the test."""
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        server = start_delay_server(*args)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.terminate()
            try:
                server.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


@dataclass
class BenchRun:
    code: int
    stdout: str
    summary: dict[str, Any]
    output: Path


@pytest.fixture
def run_bench(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., BenchRun]:
    """Run `tpuserve bench run ...` in-process; returns exit code, console, termination message, output dir."""
    from tpuserve.bench.cli import main

    counter = iter(range(1000))

    def run(*args: str, output: bool = True) -> BenchRun:
        n = next(counter)
        tm = tmp_path / f"termination-{n}.json"
        out = tmp_path / f"out-{n}"
        argv = ["run", *args, "--termination-message-path", str(tm)]
        if output and "--output" not in args:
            argv += ["--output", str(out)]
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        summary = json.loads(tm.read_text()) if tm.exists() else {}
        return BenchRun(code, captured.out + captured.err, summary, out)

    return run
