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
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from localcluster.ports import free_port
from localcluster.wait import wait_for
from tpuserve_dev import REPO

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
    """JetStream's own HealthCheck rpc (not grpc.health.v1), through our generated stub."""
    import grpc

    from tpuserve.proto import jetstream_pb2, jetstream_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        try:
            response = jetstream_pb2_grpc.OrchestratorStub(channel).HealthCheck(
                jetstream_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError:
            return False
        return bool(response.is_live)


@contextlib.contextmanager
def start_mock_server(port: int | None = None, log_path: Path | None = None) -> Iterator[str]:
    """Run the mock server until the block ends; yield "127.0.0.1:PORT" once HealthCheck says live."""
    python = jetstream_python()
    port = port or free_port()
    target = f"127.0.0.1:{port}"
    log = log_path.open("wb") if log_path else tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        [python, "-c", _LAUNCH, f"--port={port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:

        def live() -> bool:
            if process.poll() is not None:
                log.seek(0)
                tail = log.read()[-3000:].decode(errors="replace")
                raise RuntimeError(f"JetStream mock server exited with {process.returncode}:\n{tail}")
            return health(target)

        wait_for(live, timeout=START_TIMEOUT_S, interval=0.5, description=f"JetStream mock server live on {target}")
        yield target
    finally:
        stop(process)
        log.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (its orchestrator threads ignore plain SIGINT), then SIGKILL."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
