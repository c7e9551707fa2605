"""Pytest fixtures for a real GCS JSON-API emulator (PyPI `gcp-storage-emulator`) in a subprocess.

- `gcs_emulator` (session): starts the emulator on a free loopback port, in memory, sets
  `STORAGE_EMULATOR_HOST` (google-cloud-storage then talks to it with anonymous credentials) and yields the
  endpoint `http://127.0.0.1:PORT`; stops it and restores the environment at the end.
- `gcs_client` (function): a `google.cloud.storage.Client` for the emulator (anonymous, project `GCS_PROJECT`).
- `gcs_bucket` (function): the name of a fresh, empty bucket, emptied and deleted after the test.

What the emulator (2026.7.x) does, read from its source: simple, multipart and resumable uploads (so
`Blob.upload_from_filename` of any size works); listing with `prefix` and `delimiter` (returns `prefixes`);
`Range: bytes=a-b` downloads (206); md5/crc32c computed on upload and returned on objects. It serves one
request at a time (`http.server.HTTPServer`, not threading), so parallel clients are correct but not faster.
It does not paginate listings (no maxResults/pageToken: one page holds everything) and ignores generation
preconditions (`ifGenerationMatch`), so tests cannot observe a 412 from it.

`running_gcs_emulator()` is the same thing as a context manager for scripts (tpuserve_dev.perf, the demo).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster.ports import free_port
from localcluster.wait import wait_for

GCS_PROJECT = "tpuserve-test"
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
_START_TIMEOUT_S = 30.0


def _wait_until_serving(endpoint: str, process: subprocess.Popen[bytes]) -> None:
    def serving() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"gcp-storage-emulator exited with code {process.returncode} before serving")
        try:
            with urllib.request.urlopen(f"{endpoint}/storage/v1/b?project={GCS_PROJECT}", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    wait_for(serving, timeout=_START_TIMEOUT_S, interval=0.1, description=f"gcp-storage-emulator on {endpoint}")


@contextlib.contextmanager
def running_gcs_emulator(port: int | None = None, storage_base: Path | None = None) -> Iterator[str]:
    """Start the emulator in a subprocess, set STORAGE_EMULATOR_HOST, yield its endpoint; undo both after.

    In memory on a free port by default; with `storage_base`, stored on disk there, so that data outlives a
    restart of the emulator (an outage test restarts it on the same `port` with the same store).
    """
    port = free_port() if port is None else port
    endpoint = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port)]
    if storage_base is None:
        command.append("--in-memory")
    process = subprocess.Popen(
        [*command, "--quiet"],
        env={**os.environ, "STORAGE_BASE": str(storage_base)} if storage_base is not None else None,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    previous = os.environ.get(EMULATOR_ENV)
    try:
        _wait_until_serving(endpoint, process)
        os.environ[EMULATOR_ENV] = endpoint
        yield endpoint
    finally:
        if previous is None:
            os.environ.pop(EMULATOR_ENV, None)
        else:
            os.environ[EMULATOR_ENV] = previous
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def make_client(endpoint: str) -> Any:
    """A google-cloud-storage client for the emulator at `endpoint` (anonymous credentials)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project=GCS_PROJECT,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
    )


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    with running_gcs_emulator() as endpoint:
        yield endpoint


@pytest.fixture
def gcs_client(gcs_emulator: str) -> Any:
    return make_client(gcs_emulator)


@pytest.fixture
def gcs_bucket(gcs_client: Any) -> Iterator[str]:
    name = f"tpuserve-test-{uuid.uuid4().hex[:12]}"
    bucket = gcs_client.create_bucket(name)
    yield name
    for blob in gcs_client.list_blobs(name):
        blob.delete()
    bucket.delete()
