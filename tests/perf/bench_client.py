"""Client performance: tpuserve's `bench run` vs JetStream 0.2.2's benchmark_serving.py, same server, same data.

Both clients run against the same local test server (tests/jetstream/delay_server.py on uvloop), each pinned
to one CPU core (the server to the other), on the same ShareGPT file and tokenizer (made here). JetStream's
client is the google-jetstream 0.2.2 wheel's own benchmarks/benchmark_serving.py, run from its venv
(tests/jetstream/setup-venv.sh) with a stand-in for its unused `eval_accuracy` import (nltk/evaluate).
Each figure is read from the client's own summary (same definitions: duration = first send to last answer).

    .venv/bin/python -m tests.perf.bench_client [--server go|python] [--runs N] [--quick]

`--server go` uses tests/jetstream/fastserver (built once with `go build` into ~/.cache/tpuserve-tools), fast
enough that the clients, not the server, are measured; `python` (default) needs nothing but this venv.
Prints one line per scenario: req/s, output tok/s, TTFT p50/p99, successes, the client's CPU seconds during
its measured window (read from /proc for JetStream's client, from our results.json for ours) and requests per
CPU-second, then the ratios. Figures depend on the machine and its load: run on a quiet box.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.bench import corpus
from tests.jetstream.server import jetstream_python

REPO = Path(__file__).resolve().parents[2]
SERVER_CPU = "0"
CLIENT_CPU = "1"

_JETSTREAM_LAUNCH = """
import runpy, sys, types
stub = types.ModuleType("eval_accuracy"); stub.eval_accuracy = lambda *a, **k: {}
sys.modules["eval_accuracy"] = stub
import benchmarks, os
script = os.path.join(os.path.dirname(benchmarks.__file__), "benchmark_serving.py")
sys.argv = [script, *sys.argv[1:]]
runpy.run_path(script, run_name="__main__")
"""


@dataclass
class Figures:
    req_s: float
    out_tok_s: float
    ttft_median_ms: float
    ttft_p99_ms: float
    ok: int
    cpu_s: float  # client CPU time during the measured window (all threads)
    duration_s: float

    @property
    def capacity(self) -> float:
        """Requests per CPU-second: the rate this client could sustain on one otherwise idle core."""
        return self.ok / self.cpu_s if self.cpu_s else float("nan")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


FASTSERVER = REPO / "tests" / "jetstream" / "fastserver"


def go_server_binary() -> Path:
    """Build tests/jetstream/fastserver (Go) once into the tools cache, keyed by its sources."""
    digest = hashlib.sha256(b"".join((FASTSERVER / n).read_bytes() for n in ("main.go", "go.mod", "go.sum")))
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tpuserve-tools"
    binary = cache / f"fastserver-{digest.hexdigest()[:12]}"
    if not binary.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["go", "build", "-o", str(binary), "."], cwd=FASTSERVER, check=True)
    return binary


SERVER_KIND = {"kind": "python"}


@contextlib.contextmanager
def server(*args: str) -> Iterator[str]:
    if SERVER_KIND["kind"] == "go":
        command = [str(go_server_binary()), *(a for a in args)]
    else:
        command = [sys.executable, "-m", "tests.jetstream.delay_server", "--uvloop", *args]
    process = subprocess.Popen(["taskset", "-c", SERVER_CPU, *command], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert process.stdout is not None
    line = process.stdout.readline()
    try:
        yield f"127.0.0.1:{line.split()[1]}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def ours(target: str, data: dict[str, Path], n: int, tokens: int, rate: str, work: Path) -> Figures:
    out = work / f"ours-{time.monotonic_ns()}"
    cmd = [
        "taskset", "-c", CLIENT_CPU, sys.executable, "-m", "tpuserve.bench.cli", "run", "--target", target,
        "--dataset", "sharegpt", "--dataset-path", str(data["sharegpt"]), "--tokenizer", str(data["tokenizer"]),
        "--num-prompts", str(n), "--max-output-length", str(tokens), "--request-rate", rate, "--warmup", "none",
        "--output", str(out), "--termination-message-path", str(work / "tm.json"),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
    stage = json.loads((out / "results.json").read_text())["stages"][0]
    return Figures(
        stage["requestThroughput"], stage["outputThroughput"], stage["ttftMs"]["median"], stage["ttftMs"]["p99"],
        stage["successfulRequests"], stage["clientCpuSeconds"], stage["durationSeconds"],
    )  # fmt: skip


def jetstream(python: str, target: str, data: dict[str, Path], n: int, tokens: int, rate: str) -> Figures:
    host, port = target.rsplit(":", 1)
    cmd = [
        "taskset", "-c", CLIENT_CPU, python, "-c", _JETSTREAM_LAUNCH, "--server", host, "--port", port,
        "--dataset", "sharegpt", "--dataset-path", str(data["sharegpt"]), "--tokenizer", str(data["tokenizer"]),
        "--num-prompts", str(n), "--max-output-length", str(tokens), "--request-rate", rate, "--disable-tqdm",
    ]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    # Its CPU time is read from /proc when it announces the run ("Traffic request rate", printed just before
    # the first request) and when it prints its summary: start-up (TensorFlow imports) and its 5 s sleep excluded.
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None and process.stderr is not None
    lines = []
    cpu_start = cpu_end = 0.0
    for line in process.stdout:
        if line.startswith("Traffic request rate"):
            cpu_start = _cpu_seconds(process.pid)
        elif line.startswith("Successful requests") and not cpu_end:
            cpu_end = _cpu_seconds(process.pid)
        lines.append(line)
    stderr = process.stderr.read()
    process.wait(timeout=60)
    text = "".join(lines)
    if process.returncode != 0:
        raise RuntimeError(f"JetStream's client failed ({process.returncode}):\n{stderr[-2000:]}")

    def grab(label: str) -> float:
        match = re.search(rf"^{re.escape(label)}: ([0-9.]+)", text, re.M)
        if not match:
            raise RuntimeError(f"no {label!r} in JetStream's output:\n{text[-2000:]}")
        return float(match.group(1))

    return Figures(
        grab("Request throughput"), grab("Output token throughput"), grab("Median TTFT"), grab("P99 TTFT"),
        int(grab("Successful requests")), cpu_end - cpu_start, grab("Benchmark duration"),
    )  # fmt: skip


def make_data(work: Path) -> dict[str, Path]:
    """Short prompts so that prompt handling is not what is measured; enough rows for every scenario."""
    tokenizer = corpus.train_tokenizer(work / "tok")
    return {"tokenizer": tokenizer, "sharegpt": corpus.write_sharegpt(work / "sharegpt.json", 6000, max_words=20)}


def best(runs: int, fn: object, *args: object) -> Figures | None:
    """The best of `runs` runs; None when every run failed (JetStream 0.2.2 aborts on its first RPC error)."""
    results = []
    for _ in range(runs):
        try:
            results.append(fn(*args))  # type: ignore[operator]
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"run failed: {str(exc).strip().splitlines()[-1][:200]}", file=sys.stderr)
    return max(results, key=lambda f: f.req_s) if results else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test of the script)")
    parser.add_argument("--runs", type=int, default=2, help="repetitions per scenario (best is kept)")
    parser.add_argument(
        "--server", choices=["python", "go"], default="python",
        help="test server: tests/jetstream/delay_server.py, or tests/jetstream/fastserver (Go, needs `go`)",
    )  # fmt: skip
    args = parser.parse_args()
    SERVER_KIND["kind"] = args.server
    scale = 0.2 if args.quick else 1.0
    python = jetstream_python()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = make_data(work)
        rows: list[tuple[str, Figures | None, Figures | None]] = []
        with server("--vocab-size", "200") as target:
            for label, n, tokens in (("instant, 4-token answers, all at once", 1500, 4),
                                     ("instant, 64-token answers, all at once", 1000, 64),
                                     ("instant, 500 requests at once, 16 tokens", 500, 16)):  # fmt: skip
                n = max(50, int(n * scale))
                o = best(args.runs, ours, target, data, n, tokens, "inf", work)
                j = best(args.runs, jetstream, python, target, data, n, tokens, "inf")
                rows.append((f"{label} (n={n})", o, j))
        with server("--vocab-size", "200", "--ttft-ms", "50", "--itl-ms", "10") as target:
            for rate, seconds in ((100, 5), (400, 5), (1000, 3)):
                n = max(50, int(rate * seconds * scale))
                tokens = 16
                o = best(args.runs, ours, target, data, n, tokens, str(rate), work)
                j = None if rate > 400 else best(args.runs, jetstream, python, target, data, n, tokens, str(rate))
                rows.append((f"TTFT 50 ms + 10 ms/token, {rate} req/s, 16 tokens (n={n})", o, j))
    print(f"load average before the last scenario: {os.getloadavg()[0]:.1f} (2 cores: figures are noisy above ~2)")
    head = f"{'scenario':62} {'client':10} {'req/s':>9} {'out tok/s':>10} {'TTFT p50':>9} {'TTFT p99':>9} {'ok':>5}"
    print(head + f" {'cpu s':>7} {'req/cpu-s':>10}")
    for label, o, j in rows:
        for name, f in (("tpuserve", o), ("jetstream", j)):
            if f is None:
                print(f"{label:62} {name:10} {'failed or not run':>9}")
                continue
            print(f"{label:62} {name:10} {f.req_s:9.1f} {f.out_tok_s:10.1f} {f.ttft_median_ms:9.2f} "
                  f"{f.ttft_p99_ms:9.2f} {f.ok:5d} {f.cpu_s:7.2f} {f.capacity:10.1f}")  # fmt: skip
        if o is not None and j is not None:
            print(f"{'':62} {'ratio':10} {o.req_s / j.req_s:9.2f} {o.out_tok_s / j.out_tok_s:10.2f}"
                  f"{'':37} {o.capacity / j.capacity:10.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
