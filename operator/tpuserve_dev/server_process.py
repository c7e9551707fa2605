"""A test server as a child process: started in a session of its own with its output in a log, waited for until
a readiness check passes (failing with the log's tail if it exits first), and stopped with its process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from localcluster.wait import wait_for


@contextlib.contextmanager
def running_server(
    name: str,
    argv: list[str],
    env: dict[str, str],
    *,
    ready: Callable[[], bool],
    timeout: float,
    log_path: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` until the block ends; yield its process once `ready()` is true. `name` is the server's name in
    messages ("vLLM server on http://..."); `log_path` keeps the output (default: a temporary file)."""
    log = log_path.open("w+b") if log_path else tempfile.TemporaryFile()  # noqa: SIM115 - closed below; read back on exit
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:

        def up() -> bool:
            if process.poll() is not None:
                log.seek(0)
                tail = log.read()[-3000:].decode(errors="replace")
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")
            return ready()

        wait_for(up, timeout=timeout, interval=0.5, description=f"{name} ready")
        yield process
    finally:
        stop(process)
        log.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (JetStream's orchestrator threads ignore plain SIGINT), then SIGKILL."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
