"""The fidelity experiment of tpuserve_dev.perf.openai_bench: tpuserve and `vllm bench serve` against one real vLLM
CPU server, the same prompts (vLLM's random dataset, which tpuserve draws exactly as vLLM does: the same seed gives
the same token ids; every prompt --input-tokens long, so the order of a pair's work cannot differ), the same
max_tokens with ignore_eos and the same arrivals (all at t = 0 behind the same --max-concurrency cap, or with --rate
the same Poisson arrival times); figures from each client's vllm-format JSON.

Two ways to pair the clients:
- interleaved (default): the clients take turns, alternating who goes first; each round compares two runs made
  seconds apart, so a change in the server's speed between them (this 2-core machine is shared) is a difference;
- --paired: both clients run at the same time with the same load, their measured parts released together by a start
  barrier (tpuserve_barrier.py, vllm_bench_serve.py); both see the same server at the same moment, so what differs
  is the clients. Use it with --rate: behind a cap at t = 0 the server runs the requests in waves, and whichever
  client's requests reach it first in a wave keep being prefilled first (lower TTFT, then a decode stalled by the
  other client's prefills: higher TPOT) -- a real difference in the server's order, not in the measurement. With the
  same Poisson times each pair of requests (one per client) reaches the server together.

--layers/--hidden serve a larger random-weight model of the same architecture (tests/vllm/model.sh): on the default
small model a decode step takes 2-4 ms and the API server, sharing a core with the clients, often sends several
tokens in one read, which no client can time apart; on 12 layers of 768 a step takes ~16 ms and every token
streams on its own.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tpuserve_dev import REPO
from tpuserve_dev.perf.openai_bench import (
    FIGURES,
    tpuserve_command,
    tpuserve_result,
    vllm_command,
    vllm_result,
)

BARRIER_MODULE = "tpuserve_dev.perf.tpuserve_barrier"
# Both clients send the same prompts: with prefix caching, whichever sends a prompt second (the next client in an
# interleaved round, the later request of a pair) finds its KV cached and gets a shorter prefill.
SERVER_ARGS = ["--no-enable-prefix-caching", "--max-model-len", "512"]  # the model's positions: prompts up to ~470


def _commands(
    base_url: str, model: str, args: argparse.Namespace, outs: dict[str, Path], paired: bool
) -> dict[str, tuple[list[str], dict[str, str] | None]]:
    poisson = args.rate != float("inf")
    load = ["--request-rate", str(args.rate), "--ignore-eos"]
    if poisson:  # the same gamma (burstiness 1: Poisson) arrival times in both clients (vllm_bench_serve.py's reseed)
        load += ["--burstiness", "1"]
    else:
        load += ["--max-concurrency", str(args.concurrency)]
    data = ["--seed", "0", "--num-prompts", str(args.requests), "--random-input-len", str(args.input_tokens)]
    data += ["--random-output-len", str(args.tokens), "--random-range-ratio", "0"]
    tpuserve = tpuserve_command(
        base_url, outs["tpuserve"], "--dataset", "random", "--tokenizer", model, *data, *load,
        "--save-request-outputs",  # per-request lists in its vllm-format JSON too, for the pooled medians
        module=BARRIER_MODULE if paired else "tpuserve.bench.cli",
    )  # fmt: skip
    vllm, env = vllm_command(
        base_url, outs["vllm"], "--model", model, "--dataset-name", "random", *data, *load, "--num-warmups", "0",
        "--save-detailed",  # per-request ttfts, itls, latencies for the pooled medians
        # Paired: no single-request readiness probe inside the measured part (the other client's would not have one).
        *(["--ready-check-timeout-sec", "0"] if paired else []),
    )  # fmt: skip
    if poisson:
        env["TPUSERVE_NUMPY_SEED"] = "0"
    return {"tpuserve": (tpuserve, None), "vllm": (vllm, env)}


def _run_paired(commands: dict[str, tuple[list[str], dict[str, str] | None]], barrier: Path) -> None:
    """Start both clients, wait until both are ready to measure, then release them together."""
    processes = {}
    for name, (command, env) in commands.items():
        env = dict(env or os.environ, TPUSERVE_START_BARRIER=str(barrier))
        processes[name] = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not all(Path(f"{barrier}.{name}.ready").exists() for name in processes):
        if time.monotonic() > deadline or any(p.poll() is not None for p in processes.values()):
            for p in processes.values():
                p.kill()
            raise SystemExit("a client ended or took over 300 s before its measured part")
        time.sleep(0.01)
    barrier.touch()
    for name, process in processes.items():
        if process.wait() != 0:
            raise SystemExit(f"{name} exited with {process.returncode}")


def fidelity(args: argparse.Namespace) -> None:
    from tpuserve_dev.vllm_server import larger_model_dir, start_vllm_server

    model = larger_model_dir(args.layers, args.hidden) if args.layers else None
    with (
        tempfile.TemporaryDirectory() as tmp,
        start_vllm_server(log_path=Path(tmp) / "vllm.log", model=model, extra_args=SERVER_ARGS) as server,
    ):
        rows: dict[str, list[dict[str, Any]]] = {"tpuserve": [], "vllm": []}
        print(f"{'paired' if args.paired else 'interleaved'} rounds, model {server.model_dir}", flush=True)
        for r in range(args.rounds):
            with tempfile.TemporaryDirectory() as out:
                outs = {"tpuserve": Path(out) / "t", "vllm": Path(out) / "v"}
                for directory in outs.values():
                    directory.mkdir()
                commands = _commands(server.base_url, server.model_dir, args, outs, args.paired)
                if args.paired:
                    _run_paired(commands, Path(out) / "go")
                else:
                    order = ("tpuserve", "vllm") if r % 2 == 0 else ("vllm", "tpuserve")
                    for name in order:
                        command, env = commands[name]
                        subprocess.run(command, check=True, capture_output=True, cwd=REPO, env=env)
                rows["tpuserve"].append(tpuserve_result(outs["tpuserve"]))
                rows["vllm"].append(vllm_result(outs["vllm"]))
            t, v = rows["tpuserve"][-1], rows["vllm"][-1]
            print(
                f"round {r}: "
                + "  ".join(f"{f} {t[f]:.3f}/{v[f]:.3f} ({100 * (t[f] / v[f] - 1):+.1f}%)" for f in FIGURES),
                flush=True,
            )
            if not t["completed"] == v["completed"] == args.requests:
                errors = sorted({e for e in v.get("errors", []) if e})[:3]
                sys.exit(f"not every request completed: tpuserve {t['completed']}, vllm {v['completed']} {errors}")
    print(f"\nmedian over {args.rounds} rounds, tpuserve vs vllm bench serve (difference of the medians):")
    for f in FIGURES:
        a = statistics.median(x[f] for x in rows["tpuserve"])
        b = statistics.median(x[f] for x in rows["vllm"])
        per_round = [100 * (x[f] / y[f] - 1) for x, y in zip(rows["tpuserve"], rows["vllm"], strict=True)]
        print(f"{f:22} {a:10.3f} {b:10.3f} {100 * (a / b - 1):+6.2f}%   per round: "
              + ", ".join(f"{p:+.1f}%" for p in per_round))  # fmt: skip
    print("\nmedians over every request of every round (pooled), tpuserve vs vllm bench serve:")
    pooled = {name: pooled_medians(results) for name, results in rows.items()}
    for f, a in pooled["tpuserve"].items():
        b = pooled["vllm"][f]
        print(f"{f:22} {a:10.3f} {b:10.3f} {100 * (a / b - 1):+6.2f}%")


def pooled_medians(results: list[dict[str, Any]]) -> dict[str, float]:
    """Median TTFT, TPOT and ITL (ms) over all requests of all rounds, from the per-request lists of the
    vllm-format JSON, with vLLM's definitions (TPOT: (E2EL - TTFT) / (output tokens - 1), requests of 2+ tokens).
    A round's median of a TTFT distribution with two modes (a request's prefill lands in the step it arrives in,
    or in the next) flips between the modes; the pooled median does not."""
    ttft, tpot, itl = [], [], []
    for result in results:
        for first, latency, tokens, gaps in zip(
            result["ttfts"], result["latencies"], result["output_lens"], result["itls"], strict=True
        ):
            ttft.append(first)
            if tokens > 1:
                tpot.append((latency - first) / (tokens - 1))
            itl.extend(gaps)
    return {name: 1000 * statistics.median(values) for name, values in (("ttft", ttft), ("tpot", tpot), ("itl", itl))}
