"""The two stream engines' contract: which one runs, and failures that come back as records, never hangs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from localcluster.ports import free_port
from tpuserve.bench import streams
from tpuserve.bench.client import Record, encode_request


def test_the_installed_grpcio_has_the_completion_queue_api() -> None:
    """Guards the default: if a grpcio upgrade dropped these calls, every run would silently use the slow engine."""
    assert streams.available()

    async def scenario() -> object:
        engine = streams.open_streams("127.0.0.1:1")  # the default engine
        await engine.close()
        return engine

    assert isinstance(asyncio.run(scenario()), streams.CompletionQueueStreams)


def test_cq_falls_back_to_aio_when_grpcio_lacks_the_api(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A grpcio without the Cython calls cannot be installed next to the real one: simulated by patching the check.
    monkeypatch.setattr(streams, "available", lambda: False)

    async def scenario() -> object:
        engine = streams.open_streams("127.0.0.1:1", engine="cq")
        await engine.close()
        return engine

    assert isinstance(asyncio.run(scenario()), streams.AioStreams)
    assert "using the asyncio engine" in capsys.readouterr().err


@pytest.mark.parametrize("engine", ["cq", "aio"])
def test_nothing_listening_is_a_failed_record_not_a_hang(engine: str) -> None:
    async def scenario() -> Record:
        opened = streams.open_streams(f"127.0.0.1:{free_port()}", engine=engine)
        try:
            return await asyncio.wait_for(
                streams.decode_one(opened, Record(0), encode_request([1, 2], 4), timeout=5), timeout=30
            )
        finally:
            await opened.close()

    record = asyncio.run(scenario())
    assert record.code == "UNAVAILABLE"
    assert record.end >= record.send > 0
    assert not record.messages


@pytest.mark.parametrize("engine", ["cq", "aio"])
def test_a_pool_of_channels_shares_the_requests(engine: str, delay_server: Callable[..., Any]) -> None:
    """--channels 2: requests alternate between two connections (cq: one receiver thread each), all answered."""
    import threading

    server = delay_server("--ttft-ms", "5", "--itl-ms", "1", "--vocab-size", "200")
    seen_threads: set[str] = set()

    async def scenario() -> list[Record]:
        opened = streams.open_streams(server.target, channels=2, engine=engine)
        try:
            seen_threads.update(t.name for t in threading.enumerate() if t.name.startswith("tpuserve-cq"))
            return await asyncio.gather(
                *(streams.decode_one(opened, Record(i), encode_request([1, 2, 3], 3), timeout=30) for i in range(10))
            )
        finally:
            await opened.close()

    records = asyncio.run(scenario())
    assert {r.code for r in records} == {"OK"}
    assert all(len(r.messages) == 3 and len(r.arrivals) == 3 for r in records)
    if engine == "cq":
        assert seen_threads == {"tpuserve-cq-0", "tpuserve-cq-1"}
