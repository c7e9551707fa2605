"""The cluster's component processes: launched with a log file and a pid file under the state directory, found
again from those pid files by a later Python process (`cluster down`), and stopped SIGTERM-then-SIGKILL."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from pathlib import Path

from localcluster.components import Component
from localcluster.wait import WaitTimeout, wait_for


class Processes:
    """The processes started from `state_dir` (their command lines name it): logs in logs_dir, pids in pids_dir."""

    def __init__(self, state_dir: Path, logs_dir: Path, pids_dir: Path, *, tied_to_this_process: bool) -> None:
        self.state_dir = state_dir
        self.logs_dir = logs_dir
        self.pids_dir = pids_dir
        self._tied = tied_to_this_process
        self._started: dict[str, subprocess.Popen[bytes]] = {}  # what this Python process started

    def launch(self, component: Component) -> None:
        log = (self.logs_dir / f"{component.name}.log").open("ab")
        # A session of its own: Ctrl-C in the terminal that ran `harness up` does not reach the cluster.
        process = subprocess.Popen(
            component.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.state_dir,
            start_new_session=True,
            preexec_fn=_terminate_with_parent if self._tied else None,
        )
        log.close()
        self._started[component.name] = process
        (self.pids_dir / f"{component.name}.pid").write_text(f"{process.pid}\n")

    def exited(self) -> list[str]:
        """The names of the components this Python process started that have exited since."""
        return sorted(name for name, process in self._started.items() if process.poll() is not None)

    def running(self) -> dict[str, int]:
        """name -> pid of the components started from this state directory that are still alive."""
        alive: dict[str, int] = {}
        if not self.pids_dir.is_dir():
            return alive
        for pid_file in self.pids_dir.glob("*.pid"):
            pid = int(pid_file.read_text().strip() or 0)
            if pid and self._is_ours(pid):
                alive[pid_file.stem] = pid
        return alive

    def stop(self, names: tuple[str, ...], timeout: float) -> list[str]:
        """Stop the running ones of `names`, in that order; returns the names stopped."""
        stopped = []
        running = self.running()
        for name in names:
            pid = running.get(name)
            if pid is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._wait_exit(pid, 5.0)
            (self.pids_dir / f"{name}.pid").unlink(missing_ok=True)
            stopped.append(name)
        return stopped

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.logs_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _is_ours(self, pid: int) -> bool:
        """A pid from our pid files is ours only while its command line still names this state directory."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z" and str(self.state_dir) in cmdline

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        def exited() -> bool:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap our own children so they do not linger as zombies
            return not self._is_ours(pid)

        try:
            wait_for(exited, timeout=timeout, interval=0.05, description=f"pid {pid} to exit")
        except WaitTimeout:
            return False
        return True


def _terminate_with_parent() -> None:
    """In the child before exec: ask Linux for SIGTERM when the parent dies (prctl PR_SET_PDEATHSIG)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
