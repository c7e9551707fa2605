"""Which HTTP/SSE engine for the OpenAI-protocol client: the candidates measured side by side.

Each candidate streams the same requests (closed loop at --concurrency, --tokens SSE chunks each) from one core
against the Go test server in -openai mode (instant: no injected delay) on another core, and keeps what the
benchmark's engine has to keep: one perf_counter() and the raw bytes per SSE event. Figures: requests/s and SSE
events/s over the whole run, and client CPU µs per event. Rounds interleave the candidates.

    python -m tpuserve_dev.perf.openai_engines --rounds 3 --requests 3000 --concurrency 64 --tokens 16

Candidates: aiohttp ClientSession (what `vllm bench serve` uses) reading `response.content` by line, and by raw
chunk; httpx AsyncClient (aiter_raw); asyncio Protocol + httptools (llhttp, uvicorn's parser) with our own
keep-alive pool -- the engine tpuserve uses (tpuserve.bench.openai_http). All on uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from tpuserve_dev.perf.bench_client import go_server_binary

BODY: dict[str, Any] = {"model": "m", "prompt": "a b c d", "stream": True, "stream_options": {"include_usage": True}}


def body(tokens: int) -> bytes:
    return json.dumps({**BODY, "max_tokens": tokens}).encode()


async def closed_loop(n: int, concurrency: int, one: Callable[[], Coroutine[Any, Any, int]]) -> int:
    events = 0
    left = n

    async def worker() -> None:
        nonlocal events, left
        while left > 0:
            left -= 1
            got = await one()  # not `events += await one()`: that reads `events` before the await
            events += got

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return events


async def run_aiohttp(url: str, n: int, c: int, tokens: int, mode: str) -> int:
    import aiohttp

    data = body(tokens)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> int:
            arrivals: list[float] = []
            chunks: list[bytes] = []
            async with session.post(url, data=data, headers={"Content-Type": "application/json"}) as response:
                if mode == "lines":
                    async for line in response.content:
                        if line.startswith(b"data: "):
                            arrivals.append(time.perf_counter())
                            chunks.append(line)
                else:
                    async for raw in response.content.iter_any():
                        arrivals.append(time.perf_counter())
                        chunks.append(raw)
            return sum(c.count(b"data: ") for c in chunks)

        return await closed_loop(n, c, one)


async def run_httpx(url: str, n: int, c: int, tokens: int) -> int:
    import httpx

    data = body(tokens)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(limits=limits, timeout=None) as client:

        async def one() -> int:
            arrivals: list[float] = []
            chunks: list[bytes] = []
            async with client.stream("POST", url, content=data, headers={"Content-Type": "application/json"}) as r:
                async for raw in r.aiter_raw():
                    arrivals.append(time.perf_counter())
                    chunks.append(raw)
            return sum(c.count(b"data: ") for c in chunks)

        return await closed_loop(n, c, one)


async def run_tpuserve(url: str, n: int, c: int, tokens: int) -> int:
    from tpuserve.bench.client import Record
    from tpuserve.bench.openai_http import HttpStreams

    streams = HttpStreams(url.rsplit("/v1/", 1)[0], bearer=None)
    data = body(tokens)
    try:

        async def one() -> int:
            record = Record(0)
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            streams.start(record, data, None, lambda _r: done.set_result(None))
            await done
            return len(record.messages)

        return await closed_loop(n, c, one)
    finally:
        await streams.close()


CANDIDATES: dict[str, Callable[[str, int, int, int], Coroutine[Any, Any, int]]] = {
    "aiohttp-lines": lambda u, n, c, t: run_aiohttp(u, n, c, t, "lines"),
    "aiohttp-chunks": lambda u, n, c, t: run_aiohttp(u, n, c, t, "chunks"),
    "httpx": run_httpx,
    "tpuserve(httptools)": run_tpuserve,
}


def child(name: str, url: str, n: int, c: int, tokens: int) -> None:
    import uvloop

    start, cpu = time.perf_counter(), time.process_time()
    events = uvloop.run(CANDIDATES[name](url, n, c, tokens))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({"wall": wall, "cpu": cpu, "events": events}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--client-cpu", default="0")
    p.add_argument("--server-cpu", default="1")
    p.add_argument("--only", nargs="*", default=list(CANDIDATES))
    p.add_argument("--child", nargs=2, metavar=("NAME", "URL"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.requests, args.concurrency, args.tokens)
        return
    server = subprocess.Popen(
        ["taskset", "-c", args.server_cpu, str(go_server_binary()), "-openai"], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    url = f"http://127.0.0.1:{server.stdout.readline().split()[1]}/v1/completions"
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in args.only}
    try:
        for r in range(args.rounds):
            for name in args.only:
                command = [sys.executable, "-m", "tpuserve_dev.perf.openai_engines", "--child", name, url]
                command += ["--requests", str(args.requests), "--concurrency", str(args.concurrency)]
                command += ["--tokens", str(args.tokens)]
                out = subprocess.run(
                    ["taskset", "-c", args.client_cpu, *command], capture_output=True, text=True, check=True,
                    env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
                )  # fmt: skip
                row = json.loads(out.stdout.strip().splitlines()[-1])
                rows[name].append(row)
                print(
                    f"round {r} {name:22} {args.requests / row['wall']:9.0f} req/s {row['events'] / row['wall']:10.0f}"
                    f" events/s  {1e6 * row['cpu'] / max(row['events'], 1):.1f} µs CPU/event",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"\nmedian over {args.rounds} rounds ({args.requests} requests x {args.tokens} tokens, c={args.concurrency})")
    for name, rs in rows.items():
        rps = statistics.median(args.requests / x["wall"] for x in rs)
        eps = statistics.median(x["events"] / x["wall"] for x in rs)
        print(f"{name:22} {rps:9.0f} req/s {eps:10.0f} events/s")


if __name__ == "__main__":
    main()
