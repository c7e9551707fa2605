"""A private Docker daemon for the image tests (Debian's `docker.io`: dockerd, containerd, runc).

The daemon has its own data-root (kept under the tools cache, keyed by the dockerd version, so a second run
finds its layers and base images), and its own exec-root, pidfile and socket in a fresh directory under /tmp,
so it never collides with another daemon. No bridge and no iptables: containers run with `--network host` or
`--network none`. Storage: overlay2, else vfs (copies every layer in full: slow and disk-hungry).
A lock file keeps a second test session from starting a daemon on the same data-root at the same time.

Run by hand:  python -m tests.images.docker up   (prints DOCKER_HOST=...; Ctrl-C or SIGTERM stops it)
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from localcluster.wait import WaitTimeout, wait_for
from tpuserve_dev import tools_cache

CACHE_ROOT = tools_cache()
# Bump to start from an empty data-root. The tests prune what no tag reaches after each session
# (tests/images/build.py); a data-root grown past DATA_ROOT_LIMIT_BYTES all the same is emptied before the daemon
# starts.
DATA_ROOT_GENERATION = 1
DATA_ROOT_LIMIT_BYTES = 30 * 2**30
STORAGE_DRIVERS = ("overlay2", "vfs")
START_SECONDS = 60
LOCK_WAIT_SECONDS = 1800


class DockerUnavailable(RuntimeError):
    """dockerd is not installed or does not start here (the message says which and what to do)."""


def dockerd_version() -> str:
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise DockerUnavailable("dockerd not found: install Debian's docker.io (bash tests/system-deps.sh)")
    # "Docker version 20.10.24+dfsg1, build 5d6db84" -> "20.10.24+dfsg1"
    out = subprocess.run([dockerd, "--version"], capture_output=True, text=True, check=True).stdout
    return out.split()[2].rstrip(",")


def data_root() -> Path:
    return CACHE_ROOT / f"docker-{dockerd_version()}-g{DATA_ROOT_GENERATION}" / "data"


@dataclass
class DockerDaemon:
    host: str  # DOCKER_HOST value
    storage_driver: str
    pid: int
    log_path: Path

    def env(self) -> dict[str, str]:
        # The legacy builder: BuildKit would try to pull its frontend from Docker Hub, which is unreachable here.
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0"}

    def run(
        self, *args: str, check: bool = True, timeout: float | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`docker ARGS` against this daemon, output captured."""
        result = subprocess.run(
            ["docker", *args], env=self.env(), capture_output=True, text=True, timeout=timeout, input=input
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}")
        return result

    def stream(self, *args: str, log: IO[str], timeout: float | None = None) -> int:
        """`docker ARGS` with its output appended to `log` (builds print a lot); returns the exit code."""
        return subprocess.run(
            ["docker", *args], env=self.env(), stdout=log, stderr=subprocess.STDOUT, timeout=timeout
        ).returncode


def _disk_usage(path: Path) -> int:
    if not path.exists():
        return 0
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=False).stdout
    return int(out.split()[0]) if out else 0


def _answering(host: str) -> bool:
    env = {**os.environ, "DOCKER_HOST": host}
    result = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], env=env, capture_output=True)
    return result.returncode == 0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # dockerd stops its containers and its containerd
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def _data_root_lock(root: Path) -> Iterator[None]:
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / "daemon.lock").open("w") as lock:

        def locked() -> bool:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        try:
            wait_for(locked, timeout=LOCK_WAIT_SECONDS, interval=2, description=f"the lock of {root}")
        except WaitTimeout:
            raise DockerUnavailable(f"{root} stays locked by another test session") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def running_daemon(log_dir: Path) -> Iterator[DockerDaemon]:
    """Start dockerd on the cached data-root (overlay2, else vfs); stop it (by its pid) on exit."""
    if os.geteuid() != 0:
        raise DockerUnavailable("dockerd needs root here (no rootless set-up)")
    if shutil.which("docker") is None:
        raise DockerUnavailable("docker client not found: install Debian's docker.io (bash tests/system-deps.sh)")
    root = data_root()
    with _data_root_lock(root):
        if _disk_usage(root) > DATA_ROOT_LIMIT_BYTES:
            shutil.rmtree(root)
        runtime = Path(tempfile.mkdtemp(prefix="tpuserve-docker-", dir="/tmp"))  # short: socket paths <= 108 bytes
        try:
            failures = []
            for driver in STORAGE_DRIVERS:
                log_path = log_dir / f"dockerd-{driver}.log"
                host = f"unix://{runtime}/docker.sock"
                with log_path.open("w") as log:
                    proc = subprocess.Popen(
                        [
                            "dockerd",
                            "--iptables=false",
                            "--ip6tables=false",
                            "--bridge=none",
                            f"--storage-driver={driver}",
                            f"--data-root={root}",
                            f"--exec-root={runtime}/exec",
                            f"--pidfile={runtime}/docker.pid",
                            f"--host={host}",
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )

                def settled(proc: subprocess.Popen[bytes] = proc, host: str = host) -> bool:
                    return proc.poll() is not None or _answering(host)

                with contextlib.suppress(WaitTimeout):  # an exit or a timeout: the check below tells which
                    wait_for(settled, timeout=START_SECONDS, interval=0.5, description="dockerd to answer or exit")
                if proc.poll() is None and _answering(host):
                    try:
                        yield DockerDaemon(host=host, storage_driver=driver, pid=proc.pid, log_path=log_path)
                    finally:
                        _stop(proc)
                    return
                _stop(proc)
                failures.append(f"{driver}: {log_path.read_text()[-600:]}")
            raise DockerUnavailable("dockerd did not start:\n" + "\n".join(failures))
        finally:
            _unmount_below(runtime)
            shutil.rmtree(runtime, ignore_errors=True)


def _unmount_below(directory: Path) -> None:
    """dockerd leaves its default network namespace bind-mounted in the exec-root after it stops."""
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{directory}/")), reverse=True):
        subprocess.run(["umount", mount], check=False, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up"])
    parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="tpuserve-dockerd-log-"))

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # SIGTERM too, and SIGINT even when a non-interactive shell started this in the background (SIGINT ignored):
    # either way the daemon is stopped and its mounts removed.
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    with running_daemon(log_dir) as daemon:
        print(f"export DOCKER_HOST={daemon.host} DOCKER_BUILDKIT=0  # storage {daemon.storage_driver}, logs {log_dir}")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
