"""OpenAI-protocol client measurements for docs/bench.md (a script, not a test). Three experiments:

    python -m tpuserve_dev.perf.openai_bench truth      # TTFT/TPOT/ITL against the Go server's injected delays
    python -m tpuserve_dev.perf.openai_bench speed      # vs `vllm bench serve` against an instant Go server, pinned
    python -m tpuserve_dev.perf.openai_bench fidelity   # vs `vllm bench serve` on the real vLLM CPU server

truth: tests/jetstream/fastserver -openai with -ttft-ms/-itl-ms, -spin-us 300 and -stamp-lateness (the first
chunk's text starts with how late the server itself was, in µs) at --rate req/s; each request's TTFT minus the
injected TTFT, with and without the server's own lateness, and decode TPOT / ITL minus the injected ITL (p50, p99).

speed: the Go server with no delay on core 1 (with --batch-writes it does not flush per chunk: an instant server whose
tokens are all ready at once); each client pinned to core 0 sends --requests requests of --tokens tokens, all at
once or behind --concurrency; with --peers inference-perf and guidellm run the same load (openai_peers.py). Each
client leads a round in turn; tpuserve's ratio to each, per round and their median.

fidelity: tpuserve and `vllm bench serve` against one real vLLM CPU server, interleaved or --paired
(openai_fidelity.py).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tpuserve_dev import REPO
from tpuserve_dev.perf.bench_client import go_server_binary

CLIENT_CPU, SERVER_CPU = "0", "1"
FIGURES = ("request_throughput", "output_throughput", "median_ttft_ms", "median_tpot_ms", "median_itl_ms")


def vllm_python() -> str:
    from tpuserve_dev.vllm_server import vllm_python as find

    return find()


def model_dir() -> str:
    from tpuserve_dev.vllm_server import model_dir as find

    return find()


@contextlib.contextmanager
def go_server(*args: str) -> Iterator[str]:
    command = ["taskset", "-c", SERVER_CPU, str(go_server_binary()), "-openai", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    try:
        yield f"http://127.0.0.1:{process.stdout.readline().split()[1]}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def tpuserve_command(target: str, out: Path, *args: str, module: str = "tpuserve.bench.cli") -> list[str]:
    quiet = ["--warmup", "none", "--progress", "never", "--termination-message-path", str(out / "tm.json")]
    return [sys.executable, "-m", module, "run", "--target", target, "--output", str(out), *quiet, *args]


def tpuserve_result(out: Path) -> dict[str, Any]:
    """tpuserve's figures from its vllm-bench-serve-format JSON, plus its client CPU seconds."""
    result: dict[str, Any] = json.loads((out / "stage-00.vllm.json").read_text())
    stage = json.loads((out / "results.json").read_text())["stages"][0]
    result["client_cpu_seconds"] = stage["clientCpuSeconds"]
    return result


def tpuserve(target: str, out: Path, *args: str, pin: bool = True) -> dict[str, Any]:
    command = tpuserve_command(target, out, *args)
    subprocess.run((["taskset", "-c", CLIENT_CPU] if pin else []) + command, check=True, capture_output=True, cwd=REPO)
    return tpuserve_result(out)


def vllm_command(base_url: str, out: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    command = [vllm_python(), str(Path(__file__).with_name("vllm_bench_serve.py")), "--base-url", base_url]
    command += ["--save-result", "--result-dir", str(out), "--result-filename", "vllm.json", "--disable-tqdm", *args]
    env = dict(os.environ, VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1", TPUSERVE_CPU_FILE=str(out / "cpu.json"))
    return command, env


def vllm_result(out: Path) -> dict[str, Any]:
    """`vllm bench serve`'s own result JSON, plus the client CPU seconds of its measured part."""
    result: dict[str, Any] = json.loads((out / "vllm.json").read_text())
    result["client_cpu_seconds"] = json.loads((out / "cpu.json").read_text())["cpu_seconds"]
    return result


def vllm_bench(base_url: str, out: Path, *args: str, pin: bool = True) -> dict[str, Any]:
    command, env = vllm_command(base_url, out, *args)
    subprocess.run(
        (["taskset", "-c", CLIENT_CPU] if pin else []) + command, check=True, capture_output=True, cwd=REPO, env=env
    )
    return vllm_result(out)


def truth(args: argparse.Namespace) -> None:
    timing = ["-ttft-ms", str(args.ttft_ms), "-itl-ms", str(args.itl_ms), "-spin-us", "300", "-stamp-lateness"]
    tokens = args.tokens
    with go_server(*timing) as url, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        tpuserve(
            url, out, "--dataset", "random", "--tokenizer", model_dir(), "--random-input-len", "32",
            "--random-output-len", str(tokens), "--num-prompts", str(args.requests), "--request-rate", str(args.rate),
            "--save-request-outputs", "--model", "fastserver",
        )  # fmt: skip
        rows = json.loads((out / "stage-00.request-outputs.json").read_text())
    ttft: list[float] = []
    ttft_client: list[float] = []
    tpot: list[float] = []
    itl: list[float] = []
    for row in rows:
        arrivals = row["arrivals_ms"]
        late_ms = int(row["generated_text"].split("|", 1)[0]) / 1000.0
        ttft.append(arrivals[0] - args.ttft_ms)
        ttft_client.append(arrivals[0] - args.ttft_ms - late_ms)
        tpot.append((arrivals[-1] - arrivals[0]) / (len(arrivals) - 1) - args.itl_ms)
        itl.extend(b - a - args.itl_ms for a, b in itertools.pairwise(arrivals))
    print(
        f"{len(rows)} requests at {args.rate} req/s, {tokens} tokens; "
        f"injected TTFT {args.ttft_ms}, ITL {args.itl_ms} ms"
    )
    print(f"{'measured - injected (ms)':44}{'p50':>9}{'p99':>9}")
    for label, values in (
        ("TTFT (client + loopback + server lateness)", ttft),
        ("TTFT, server's own lateness taken out", ttft_client),
        ("decode TPOT", tpot),
        ("ITL", itl),
    ):
        p50, p99 = np.percentile(values, [50, 99])
        print(f"{label:44}{p50:9.3f}{p99:9.3f}")


def _speed_run(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """One client's run of the speed load, pinned to CLIENT_CPU: its request and output-token throughput."""
    from tpuserve_dev.perf.openai_peers import PEERS

    model = model_dir()
    data = ["--random-input-len", "32", "--random-output-len", str(args.tokens), "--num-prompts", str(args.requests)]
    if args.concurrency:
        data += ["--max-concurrency", str(args.concurrency)]
    with tempfile.TemporaryDirectory() as tmp:
        if name == "tpuserve":
            return tpuserve(url, Path(tmp), "--dataset", "random", "--tokenizer", model, *data,
                            "--request-rate", "inf", "--model", "fastserver")  # fmt: skip
        if name == "vllm bench serve":
            return vllm_bench(url, Path(tmp), "--model", "fastserver", "--tokenizer", model, "--dataset-name",
                              "random", *data, "--request-rate", "inf", "--num-warmups", "0")  # fmt: skip
        return PEERS[name](url, model, args.requests, args.concurrency or args.requests, 32, args.tokens, CLIENT_CPU)


def speed(args: argparse.Namespace) -> None:
    from tpuserve_dev.perf.openai_peers import PEERS

    clients = ["tpuserve", "vllm bench serve", *(PEERS if args.peers else [])]
    ratios: dict[str, dict[str, list[float]]] = {name: {"req/s": [], "tok/s": [], "req/CPU-s": []} for name in clients}
    server = ["-batch-writes"] if args.batch_writes else []
    print(f"{args.requests} requests of 32 / {args.tokens} tokens, max concurrency {args.concurrency or 'none'}, "
          f"server {'batching writes' if args.batch_writes else 'flushing every chunk'}; clients on core "
          f"{CLIENT_CPU}, server on core {SERVER_CPU}", flush=True)  # fmt: skip
    with go_server(*server) as url:
        for r in range(args.rounds):
            order = clients[r % len(clients) :] + clients[: r % len(clients)]  # each client leads a round in turn
            runs = {name: _speed_run(name, url, args) for name in order}
            t = runs["tpuserve"]
            line = []
            for name in clients:
                run = runs[name]
                line.append(f"{name} {run['request_throughput']:6.0f} req/s {run['output_throughput']:7.0f} tok/s")
                ratios[name]["req/s"].append(t["request_throughput"] / run["request_throughput"])
                ratios[name]["tok/s"].append(t["output_throughput"] / run["output_throughput"])
                if "client_cpu_seconds" in run:  # tpuserve and vllm bench serve report it; the peers do not
                    per_cpu = run["completed"] / run["client_cpu_seconds"]
                    line[-1] += f" {per_cpu:6.0f} req/CPU-s"
                    ratios[name]["req/CPU-s"].append(t["completed"] / t["client_cpu_seconds"] / per_cpu)
            print(f"round {r}: " + " | ".join(line), flush=True)
    print("\ntpuserve / each client, median over rounds (per round):")
    for name in clients[1:]:
        for figure, values in ratios[name].items():
            if values:
                per_round = ", ".join(f"{x:.2f}" for x in values)
                print(f"  vs {name:18} {figure:10} {statistics.median(values):6.2f}x  ({per_round})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="experiment", required=True)
    t = sub.add_parser("truth")
    t.add_argument("--rate", type=float, default=100.0)
    t.add_argument("--requests", type=int, default=1000)
    t.add_argument("--tokens", type=int, default=16)
    t.add_argument("--ttft-ms", type=float, default=50.0)
    t.add_argument("--itl-ms", type=float, default=10.0)
    s = sub.add_parser("speed")
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--requests", type=int, default=2000)
    s.add_argument("--tokens", type=int, default=64)
    s.add_argument("--concurrency", type=int, default=0, help="--max-concurrency for both clients (0: none)")
    s.add_argument("--batch-writes", action="store_true", help="the server writes without a flush per chunk")
    s.add_argument(
        "--peers", action="store_true", help="also inference-perf and guidellm (tpuserve_dev.perf.openai_peers)"
    )
    f = sub.add_parser("fidelity")
    f.add_argument("--rounds", type=int, default=4)
    f.add_argument("--requests", type=int, default=100)
    f.add_argument("--tokens", type=int, default=32)
    f.add_argument("--concurrency", type=int, default=4)
    f.add_argument("--layers", type=int, default=0, help="serve a larger model: this many layers (0: the test model)")
    f.add_argument("--hidden", type=int, default=768, help="the larger model's hidden size")
    f.add_argument("--paired", action="store_true", help="both clients at once, started together (see the docstring)")
    f.add_argument("--input-tokens", type=int, default=64)
    f.add_argument("--rate", type=float, default=float("inf"), help="Poisson arrivals per second per client")
    args = p.parse_args()
    from tpuserve_dev.perf.openai_fidelity import fidelity

    {"truth": truth, "speed": speed, "fidelity": fidelity}[args.experiment](args)


if __name__ == "__main__":
    main()
