"""Pytest fixtures that start JetStream 0.2.2 (its mock-engine server) from its own venv (issue 5).

`jetstream_mock_server` (session) -> "127.0.0.1:PORT" of the real orchestrator + gRPC server with the mock
engine (CONTRACTS item 7). Tests using it are marked `jetstream`; the venv is made by tests/jetstream/setup-venv.sh
(`make jetstream`) on first use.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tpuserve_dev.jetstream_server import jetstream_python, start_mock_server


@pytest.fixture(scope="session")
def jetstream_venv_python() -> str:
    """The JetStream 0.2.2 venv's python (for running upstream code in a separate process)."""
    return jetstream_python()


@pytest.fixture(scope="session")
def jetstream_mock_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log: Path = tmp_path_factory.mktemp("jetstream") / "mock-server.log"
    with start_mock_server(log_path=log) as target:
        yield target
