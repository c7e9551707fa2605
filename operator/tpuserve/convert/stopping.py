"""SIGTERM for `tpuserve convert run`: stop cleanly instead of dying mid-write.

Kubernetes sends SIGTERM when the conversion Job is replaced (a new spec generation) or deleted. From then on
the converter starts no new upload, writes no manifest (so nothing half-done is ever taken for a verified
conversion), stops the running conversion step, and reports `Terminated` in its
summary; an upload already in flight for one file finishes or fails on its own.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from types import FrameType

_requested = threading.Event()
_current: subprocess.Popen[bytes] | None = None
_lock = threading.Lock()


class Stopped(Exception):
    """Raised at the next safe point after SIGTERM."""


def install() -> None:
    """Handle SIGTERM in this process (the CLI calls it; library use keeps the default)."""
    signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    _requested.set()
    with _lock:
        child = _current
    if child is not None and child.poll() is None:
        child.terminate()  # SIGTERM to the step; it shares our process group, so a SIGKILL of the group ends it too


def requested() -> bool:
    return _requested.is_set()


def check(where: str) -> None:
    """Raise Stopped if SIGTERM arrived (call before each step that writes)."""
    if _requested.is_set():
        raise Stopped(f"terminated (SIGTERM) before {where}")


def run_step(argv: list[str], env: dict[str, str]) -> int:
    """Run one conversion step as a child process that SIGTERM stops too."""
    global _current
    check(argv[0] if argv else "a step")
    child = subprocess.Popen(argv, env=env)
    with _lock:
        _current = child
    if _requested.is_set():  # SIGTERM came between the check above and here
        child.terminate()
    try:
        code = child.wait()
    finally:
        with _lock:
            _current = None
    check("the next step")  # a step cut short by SIGTERM is not a conversion failure: say what happened
    return code


def reset() -> None:
    """Forget a SIGTERM (tests that signal their own process)."""
    _requested.clear()
