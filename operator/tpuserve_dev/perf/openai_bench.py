"""OpenAI-protocol client measurements for docs/bench.md (a script, not a test). Three experiments:

    python -m tpuserve_dev.perf.openai_bench truth      # TTFT/TPOT/ITL against the Go server's injected delays
    python -m tpuserve_dev.perf.openai_bench speed      # vs `vllm bench serve` against an instant Go server, pinned
    python -m tpuserve_dev.perf.openai_bench fidelity   # vs `vllm bench serve` on the real vLLM CPU server

truth: tests/jetstream/fastserver -openai with -ttft-ms/-itl-ms, -spin-us 300 and -stamp-lateness (the first
chunk's text starts with how late the server itself was, in µs) at --rate req/s; each request's TTFT minus the
injected TTFT, with and without the server's own lateness, and decode TPOT / ITL minus the injected ITL (p50, p99).

speed: the Go server with no delay on core 1; each client on core 0 (taskset) sends --requests requests of
--tokens tokens all at once (rate inf); the figures are each client's own request and output-token throughput.
Clients take turns within a round; ratios per round and their median.

fidelity: one real vLLM CPU server (tests/vllm); both clients send the same prompts (every row of one ShareGPT-
format file), the same max_tokens with ignore_eos, and the same arrival times (all at t=0 behind the same
--max-concurrency cap); figures are read from each client's vllm-bench-serve-format JSON.
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


def tpuserve(target: str, out: Path, *args: str, pin: bool = True) -> dict[str, Any]:
    command = [sys.executable, "-m", "tpuserve.bench.cli", "run", "--target", target, "--output", str(out)]
    command += ["--warmup", "none", "--progress", "never", "--termination-message-path", str(out / "tm.json"), *args]
    subprocess.run((["taskset", "-c", CLIENT_CPU] if pin else []) + command, check=True, capture_output=True, cwd=REPO)
    result: dict[str, Any] = json.loads((out / "stage-00.vllm.json").read_text())
    stage = json.loads((out / "results.json").read_text())["stages"][0]
    result["client_cpu_seconds"] = stage["clientCpuSeconds"]
    return result


def vllm_bench(base_url: str, out: Path, *args: str, pin: bool = True) -> dict[str, Any]:
    command = [vllm_python(), str(Path(__file__).with_name("vllm_bench_serve.py")), "--base-url", base_url]
    command += ["--save-result", "--result-dir", str(out), "--result-filename", "vllm.json", "--disable-tqdm", *args]
    env = dict(os.environ, VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1", TPUSERVE_CPU_FILE=str(out / "cpu.json"))
    subprocess.run(
        (["taskset", "-c", CLIENT_CPU] if pin else []) + command, check=True, capture_output=True, cwd=REPO, env=env
    )
    result: dict[str, Any] = json.loads((out / "vllm.json").read_text())
    result["client_cpu_seconds"] = json.loads((out / "cpu.json").read_text())["cpu_seconds"]
    return result


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


def speed(args: argparse.Namespace) -> None:
    model = model_dir()
    data = ["--random-input-len", "32", "--random-output-len", str(args.tokens), "--num-prompts", str(args.requests)]
    ratios: dict[str, list[float]] = {"requests/s": [], "output tok/s": [], "requests per CPU-s": []}
    with go_server() as url:
        for r in range(args.rounds):
            with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
                runs = {}
                order = ("tpuserve", "vllm") if r % 2 == 0 else ("vllm", "tpuserve")
                for name in order:
                    if name == "tpuserve":
                        runs[name] = tpuserve(url, Path(a), "--dataset", "random", "--tokenizer", model, *data,
                                              "--request-rate", "inf", "--model", "fastserver")  # fmt: skip
                    else:
                        runs[name] = vllm_bench(url, Path(b), "--model", "fastserver", "--tokenizer", model,
                                                "--dataset-name", "random", *data, "--request-rate", "inf",
                                                "--num-warmups", "0")  # fmt: skip
            t, v = runs["tpuserve"], runs["vllm"]
            ratios["requests/s"].append(t["request_throughput"] / v["request_throughput"])
            ratios["output tok/s"].append(t["output_throughput"] / v["output_throughput"])
            t_cpu, v_cpu = t["completed"] / t["client_cpu_seconds"], v["completed"] / v["client_cpu_seconds"]
            ratios["requests per CPU-s"].append(t_cpu / v_cpu)
            print(
                f"round {r}: tpuserve {t['request_throughput']:6.0f} req/s {t['output_throughput']:7.0f} tok/s "
                f"{t_cpu:6.0f} req/CPU-s | vllm bench serve {v['request_throughput']:5.0f} req/s "
                f"{v['output_throughput']:6.0f} tok/s {v_cpu:5.0f} req/CPU-s | ratios "
                + " / ".join(f"{x[-1]:.2f}x" for x in ratios.values()),
                flush=True,
            )
    for name, values in ratios.items():
        per_round = ", ".join(f"{x:.2f}" for x in values)
        print(f"median ratio {name}: {statistics.median(values):.2f}x  (per round: {per_round})")


def sharegpt_file(path: Path, n: int) -> Path:
    from tpuserve_dev.corpus import write_sharegpt

    return write_sharegpt(path, n, seed=3, max_words=30)


def fidelity(args: argparse.Namespace) -> None:
    from tpuserve_dev.vllm_server import start_vllm_server

    with tempfile.TemporaryDirectory() as tmp, start_vllm_server(log_path=Path(tmp) / "vllm.log") as server:
        dataset = sharegpt_file(Path(tmp) / "sharegpt.json", args.requests)
        load = ["--request-rate", "inf", "--max-concurrency", str(args.concurrency), "--ignore-eos"]
        rows: dict[str, list[dict[str, Any]]] = {"tpuserve": [], "vllm": []}
        for r in range(args.rounds):
            order = ("tpuserve", "vllm") if r % 2 == 0 else ("vllm", "tpuserve")
            for name in order:
                with tempfile.TemporaryDirectory() as out:
                    if name == "tpuserve":
                        result = tpuserve(server.base_url, Path(out), "--dataset", "sharegpt", "--dataset-path",
                                          str(dataset), "--tokenizer", server.model_dir, "--num-prompts",
                                          str(args.requests), "--max-output-length", str(args.tokens), *load,
                                          pin=False)  # fmt: skip
                    else:
                        result = vllm_bench(server.base_url, Path(out), "--model", server.model_dir,
                                            "--dataset-name", "sharegpt", "--dataset-path", str(dataset),
                                            "--num-prompts", str(args.requests), "--sharegpt-output-len",
                                            str(args.tokens), *load, "--num-warmups", "0", pin=False)  # fmt: skip
                rows[name].append(result)
            t, v = rows["tpuserve"][-1], rows["vllm"][-1]
            print(
                f"round {r}: "
                + "  ".join(f"{f} {t[f]:.3f}/{v[f]:.3f} ({100 * (t[f] / v[f] - 1):+.1f}%)" for f in FIGURES),
                flush=True,
            )
            assert t["completed"] == v["completed"] == args.requests, (t["completed"], v["completed"])
    print(f"\nmedian over {args.rounds} rounds, tpuserve vs vllm bench serve (difference of the medians):")
    for f in FIGURES:
        a = statistics.median(x[f] for x in rows["tpuserve"])
        b = statistics.median(x[f] for x in rows["vllm"])
        per_round = [100 * (x[f] / y[f] - 1) for x, y in zip(rows["tpuserve"], rows["vllm"], strict=True)]
        print(f"{f:22} {a:10.3f} {b:10.3f} {100 * (a / b - 1):+6.2f}%   per round: "
              + ", ".join(f"{p:+.1f}%" for p in per_round))  # fmt: skip


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
    f = sub.add_parser("fidelity")
    f.add_argument("--rounds", type=int, default=4)
    f.add_argument("--requests", type=int, default=100)
    f.add_argument("--tokens", type=int, default=32)
    f.add_argument("--concurrency", type=int, default=4)
    args = p.parse_args()
    {"truth": truth, "speed": speed, "fidelity": fidelity}[args.experiment](args)


if __name__ == "__main__":
    main()
