"""Start JetStream 0.2.2's real orchestrator + gRPC server with its mock engine, from its own cached venv.

Used by the `jetstream_mock_server` fixture, the operator e2e test and the demo:

    with start_mock_server() as target:   # "127.0.0.1:PORT", live (HealthCheck answered is_live)
        ...

It runs `jetstream.core.implementations.mock.server` unchanged except that the listen address is loopback
(upstream binds [::]); the venv comes from tests/jetstream/setup-venv.sh (installed on first use).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from localcluster.ports import free_port
from tpuserve_dev import REPO
from tpuserve_dev.server_process import running_server

SETUP_SCRIPT = REPO / "tests" / "jetstream" / "setup-venv.sh"
PYTHON_ENV = "TPUSERVE_JETSTREAM_PYTHON"  # an existing JetStream 0.2.2 python, skipping the setup script
START_TIMEOUT_S = 180.0

# Upstream's server module with one change made from outside: bind 127.0.0.1 instead of [::].
_LAUNCH = (
    "import sys\n"
    "from jetstream.core import server_lib\n"
    "server_lib._HOST = '127.0.0.1'\n"
    "from absl import app\n"
    "from jetstream.core.implementations.mock import server\n"
    "app.run(server.main)\n"
)


def jetstream_python() -> str:
    """The venv's python (creating the venv on first use: minutes, TensorFlow included)."""
    if os.environ.get(PYTHON_ENV):
        return os.environ[PYTHON_ENV]
    done = subprocess.run(["bash", str(SETUP_SCRIPT)], check=True, capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


def health(target: str, timeout: float = 2.0) -> bool:
    """JetStream's own HealthCheck rpc (not grpc.health.v1)."""
    import grpc

    from tpuserve.proto import jetstream_pb2, orchestrator

    with grpc.insecure_channel(target) as channel:
        try:
            health_check = orchestrator.call(channel, orchestrator.HEALTH_CHECK)
            response = health_check(jetstream_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return False
        return bool(response.is_live)


@contextlib.contextmanager
def start_mock_server(port: int | None = None, log_path: Path | None = None) -> Iterator[str]:
    """Run the mock server until the block ends; yield "127.0.0.1:PORT" once HealthCheck says live."""
    python = jetstream_python()
    port = port or free_port()
    target = f"127.0.0.1:{port}"
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    argv = [python, "-c", _LAUNCH, f"--port={port}"]
    name = f"JetStream mock server on {target}"
    with running_server(name, argv, env, ready=lambda: health(target), timeout=START_TIMEOUT_S, log_path=log_path):
        yield target
