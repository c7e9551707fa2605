"""The two stream engines' contract: which one runs, and failures that come back as records, never hangs."""

from __future__ import annotations

import asyncio

import pytest
from tpuserve.bench import streams
from tpuserve.bench.client import Record, encode_request

from tests.jetstream.server import free_port


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
    assert record.end >= record.send > 0 and not record.messages
