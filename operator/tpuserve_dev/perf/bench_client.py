"""Client performance: tpuserve's `bench run` vs JetStream 0.2.2's benchmark_serving.py, same server, same data.

Both clients run against the same local test server (tests/jetstream/delay_server.py on uvloop), each pinned
to one CPU core (the server to the other), on the same ShareGPT file and tokenizer (made here). JetStream's
client is the google-jetstream 0.2.2 wheel's own benchmarks/benchmark_serving.py, run from its venv
(tests/jetstream/setup-venv.sh) with a stand-in for its unused `eval_accuracy` import (nltk/evaluate).
Each figure is read from the client's own summary (same definitions: duration = first send to last answer).
Ours runs with each engine (`--engine cq`, the default, and `aio`). Clients take turns, round by round, so a slow
spell of this shared machine hits them alike; ratios are taken within a round and their median is reported.

The TTFT scenarios (50 ms TTFT, 10 ms per token) need `--server go`: the server then readies each first token on
time (`-spin-us`) and stamps how late it still was into that token's id (`-stamp-lateness`), so each request's
TTFT splits exactly into the injected 50 ms, the server's own lateness, and what is left: the client and the
loopback transport. The same binary's native Go client (`-client`, one connection, same arrival process) runs
alongside as the reference for what any client on this machine sees; JetStream's client (which decodes every id
and so cannot take stamped ids) runs against an unstamped twin of the server.

    .venv/bin/python -m tpuserve_dev.perf.bench_client [--server go|python] [--runs N] [--quick]

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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tpuserve_dev import REPO, corpus, tools_cache
from tpuserve_dev.jetstream_server import jetstream_python

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
    split: Split | None = None  # TTFT scenarios against a stamping server

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
    sources = [*sorted(FASTSERVER.glob("*.go")), FASTSERVER / "go.mod", FASTSERVER / "go.sum"]
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in sources))
    cache = tools_cache()
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


@dataclass
class Split:
    """Per-request TTFT minus the injected TTFT (ms), whole and with the server's own lateness taken out."""

    total_p50: float
    total_p99: float
    server_p99: float
    client_p50: float  # client + loopback transport
    client_p99: float


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def split_from_outputs(path: Path, injected_ms: float) -> Split:
    """From our request-outputs file, against a -stamp-lateness server (first token id = its lateness in µs)."""
    rows = [r for r in json.loads(path.read_text()) if r["success"]]
    total = [r["ttft_sec"] * 1000 - injected_ms for r in rows]
    server = [r["output_token_ids"][0] / 1000 for r in rows]
    client = [t - s for t, s in zip(total, server, strict=True)]
    return Split(_pct(total, 0.5), _pct(total, 0.99), _pct(server, 0.99), _pct(client, 0.5), _pct(client, 0.99))


def ours(
    target: str, data: dict[str, Path], n: int, tokens: int, rate: str, work: Path, engine: str = "cq",
    injected_ms: float | None = None,
) -> Figures:  # fmt: skip
    out = work / f"ours-{time.monotonic_ns()}"
    cmd = [
        "taskset", "-c", CLIENT_CPU, sys.executable, "-m", "tpuserve.bench.cli", "run", "--target", target,
        "--dataset", "sharegpt", "--dataset-path", str(data["sharegpt"]), "--tokenizer", str(data["tokenizer"]),
        "--num-prompts", str(n), "--max-output-length", str(tokens), "--request-rate", rate, "--warmup", "none",
        "--output", str(out), "--termination-message-path", str(work / "tm.json"), "--engine", engine,
        *(["--save-request-outputs"] if injected_ms is not None else []),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
    stage = json.loads((out / "results.json").read_text())["stages"][0]
    figures = Figures(
        stage["requestThroughput"], stage["outputThroughput"], stage["ttftMs"]["median"], stage["ttftMs"]["p99"],
        stage["successfulRequests"], stage["clientCpuSeconds"], stage["durationSeconds"],
    )  # fmt: skip
    if injected_ms is not None:
        figures.split = split_from_outputs(out / "stage-00.request-outputs.json", injected_ms)
    return figures


def native(target: str, n: int, tokens: int, rate: str, injected_ms: float) -> Figures:
    """The Go reference client (tests/jetstream/fastserver -client): TTFT split only, no summary figures."""
    cmd = [
        "taskset", "-c", CLIENT_CPU, str(go_server_binary()), "-client", target, "-rate", rate,
        "-requests", str(n), "-tokens", str(tokens), "-ttft-ms", str(injected_ms),
    ]  # fmt: skip
    text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    found = {
        name: dict(re.findall(r"(p50|p90|p99|max)=([0-9.]+)", line))
        for name, line in re.findall(r"^ADDED (\w+) (.*)$", text, re.M)
    }
    ok = int(re.search(r"ok=(\d+)", text).group(1))  # type: ignore[union-attr]
    req_s = float(re.search(r"rate=([0-9.]+)", text).group(1))  # type: ignore[union-attr]
    split = Split(
        float(found["total"]["p50"]), float(found["total"]["p99"]), float(found["server"]["p99"]),
        float(found["client"]["p50"]), float(found["client"]["p99"]),
    )  # fmt: skip
    figures = Figures(
        req_s, float("nan"), injected_ms + split.total_p50, injected_ms + split.total_p99, ok, float("nan"), n / req_s
    )
    figures.split = split
    return figures


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
    assert process.stdout is not None
    assert process.stderr is not None
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


def one_run(fn: Callable[..., Figures], *args: object) -> Figures | None:
    """One run; a failure is reported and gives None (JetStream 0.2.2 aborts on its first RPC error)."""
    try:
        return fn(*args)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        print(f"run failed: {str(detail).strip().splitlines()[-1][:200]}", file=sys.stderr)
        return None


def interleaved(
    scenario: str, runs: int, clients: list[tuple[str, Callable[..., Figures], tuple[object, ...]]]
) -> list[Row]:
    """`runs` rounds, each running every client once in turn, so a slow spell of the machine hits them alike.
    Each Row's list keeps one entry per round (None for a failed run), so rounds can be compared pairwise."""
    results: dict[str, list[Figures | None]] = {name: [] for name, _, _ in clients}
    for _ in range(runs):
        for name, fn, args in clients:
            results[name].append(one_run(fn, *args))
    return [(scenario, name, results[name]) for name, _, _ in clients]


Row = tuple[str, str, list[Figures | None]]  # scenario, client, its runs by round (None = failed)


def print_table(rows: list[Row]) -> None:
    head = f"{'scenario':58} {'client':16} {'req/s':>9} {'out tok/s':>10} {'TTFT p50':>9} {'TTFT p99':>9} {'ok':>5}"
    print(head + f" {'cpu s':>6} {'req/cpu-s':>10}")
    by_client: dict[tuple[str, str], list[Figures | None]] = {}
    for scenario, client, results in rows:
        by_client[(scenario, client)] = results
        if not results:
            print(f"{scenario:58} {client:16} {'not run':>9}")
        for f in results:
            if f is None:
                print(f"{scenario:58} {client:16} {'failed':>9}")
                continue
            print(f"{scenario:58} {client:16} {f.req_s:9.1f} {f.out_tok_s:10.1f} {f.ttft_median_ms:9.2f} "
                  f"{f.ttft_p99_ms:9.2f} {f.ok:5d} {f.cpu_s:6.2f} {f.capacity:10.1f}")  # fmt: skip
    print("\nratios tpuserve cq / JetStream 0.2.2, round by round (same round = same spell of the machine):")
    for scenario in dict.fromkeys(r[0] for r in rows):
        ours_runs = by_client.get((scenario, "tpuserve cq"), [])
        theirs_runs = by_client.get((scenario, "jetstream 0.2.2"), [])
        pairs = [(o, j) for o, j in zip(ours_runs, theirs_runs, strict=False) if o is not None and j is not None]
        if not pairs:
            continue
        for label, attr in (("req/s", "req_s"), ("out tok/s", "out_tok_s"), ("req per CPU-s", "capacity")):
            ratios = sorted(getattr(o, attr) / getattr(j, attr) for o, j in pairs)
            listed = " ".join(f"{r:.2f}" for r in ratios)
            print(f"  {scenario:58} {label:13} median {statistics.median(ratios):5.2f}x  (rounds: {listed})")


def print_splits(rows: list[Row], injected_ms: float) -> None:
    print(f"\nTTFT above the injected {injected_ms:g} ms, per request (ms): 'total' as any client reports it; "
          "'client+loopback' with the server's own lateness (stamped per request) taken out")  # fmt: skip
    print(f"{'scenario':58} {'client':16} {'total p50':>9} {'total p99':>9} {'server p99':>10} "
          f"{'c+l p50':>8} {'c+l p99':>8}")  # fmt: skip
    for scenario, client, results in rows:
        for f in results:
            if f is None:
                continue
            if f.split is not None:
                x = f.split
                print(f"{scenario:58} {client:16} {x.total_p50:9.3f} {x.total_p99:9.3f} {x.server_p99:10.3f} "
                      f"{x.client_p50:8.3f} {x.client_p99:8.3f}")  # fmt: skip
            else:
                print(f"{scenario:58} {client:16} {f.ttft_median_ms - injected_ms:9.3f} "
                      f"{f.ttft_p99_ms - injected_ms:9.3f} {'(unstamped server: no split)':>28}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test of the script)")
    parser.add_argument("--runs", type=int, default=3, help="rounds per scenario (all are printed)")
    parser.add_argument(
        "--server", choices=["python", "go"], default="python",
        help="test server: tests/jetstream/delay_server.py, or tests/jetstream/fastserver (Go, needs `go`)",
    )  # fmt: skip
    parser.add_argument("--only", choices=["throughput", "ttft"], help="run one group of scenarios")
    args = parser.parse_args()
    SERVER_KIND["kind"] = args.server
    scale = 0.2 if args.quick else 1.0
    python = jetstream_python()
    engines = ("cq", "aio")
    rows: list[Row] = []
    ttft_rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = make_data(work)
        if args.only != "ttft":
            with server("--vocab-size", "200") as target:
                for label, n, tokens in (("instant, 4-token answers, all at once", 1500, 4),
                                         ("instant, 64-token answers, all at once", 1000, 64),
                                         ("instant, 500 requests at once, 16 tokens", 500, 16)):  # fmt: skip
                    n = max(50, int(n * scale))
                    clients: list[tuple[str, Callable[..., Figures], tuple[object, ...]]] = [
                        (f"tpuserve {engine}", ours, (target, data, n, tokens, "inf", work, engine))
                        for engine in engines
                    ]
                    clients.append(("jetstream 0.2.2", jetstream, (python, target, data, n, tokens, "inf")))
                    rows += interleaved(f"{label} (n={n})", args.runs, clients)
        if args.only != "throughput":
            injected = 50.0
            timing = ("--vocab-size", "200", "--ttft-ms", str(injected), "--itl-ms", "10")
            go = args.server == "go"
            stamped = (*timing, "--spin-us", "300", "--stamp-lateness") if go else timing
            unstamped = (*timing, "--spin-us", "300") if go else timing
            with server(*stamped) as target, server(*unstamped) as plain_target:
                for rate, seconds in ((100, 5), (400, 5), (1000, 3)):
                    n = max(50, int(rate * seconds * scale))
                    split_ms = injected if go else None
                    clients = [
                        (f"tpuserve {engine}", ours, (target, data, n, 16, str(rate), work, engine, split_ms))
                        for engine in engines
                    ]
                    if go:
                        clients.append(("native Go", native, (target, n, 16, str(rate), injected)))
                    # JetStream 0.2.2's client aborts the whole run on its first RPC error: not run at 1000 req/s.
                    if rate <= 400:
                        clients.append(("jetstream 0.2.2", jetstream, (python, plain_target, data, n, 16, str(rate))))
                    scenario = f"TTFT {injected:g} ms + 10 ms/token, {rate} req/s, 16 tokens (n={n})"
                    ttft_rows += interleaved(scenario, args.runs, clients)
                    if rate > 400:
                        ttft_rows.append((scenario, "jetstream 0.2.2", []))
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores: figures are noisy above ~2)")
    print_table(rows + [r for r in ttft_rows if r[1] != "native Go"])
    if ttft_rows:
        print_splits(ttft_rows, 50.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
