"""The termination message of a workload container (`tpuserve bench run`, `tpuserve convert run|mirror`): where it
goes, how large it may be, how it is written, and how a command-line error still leaves one. The operator reads it
from the pod's status (controllers/observe.py), so a Job that fails says why, even when it failed on its arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

# Where the summary goes: --termination-message-path, else this environment variable (the tests' local node sets
# it), else the file Kubernetes reads.
PATH_FLAG = "--termination-message-path"
PATH_ENV = "TPUSERVE_TERMINATION_MESSAGE_PATH"
DEFAULT_PATH = "/dev/termination-log"
# Kubernetes truncates a termination message at 4096 bytes; a summary must fit whole to stay parseable.
MAX_BYTES = 4096


def path(flag: str | None = None) -> str:
    """The file to write: the flag's value, else $TPUSERVE_TERMINATION_MESSAGE_PATH, else /dev/termination-log."""
    return flag or os.environ.get(PATH_ENV) or DEFAULT_PATH


def path_from_argv(argv: Sequence[str]) -> str:
    """The file to write, read from raw arguments (for a usage error, when argparse has not parsed them)."""
    flag = None
    for i, arg in enumerate(argv):
        if arg == PATH_FLAG and i + 1 < len(argv):
            flag = argv[i + 1]
        elif arg.startswith(PATH_FLAG + "="):
            flag = arg.split("=", 1)[1]
    return path(flag)


def write(target: str, text: str, program: str) -> None:
    """Write the message. Off Kubernetes a missing /dev/termination-log is no error; other failures warn on stderr
    (the summary is also printed, and the exit code still tells), never raise."""
    file = Path(target)
    try:
        if target == DEFAULT_PATH and not file.parent.exists():
            return
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"{program}: cannot write the termination message to {target}: {exc}", file=sys.stderr)


def size(text: str) -> int:
    return len(text.encode())


def shrink_to_fit(render: Callable[[], str], *shrinks: Callable[[], bool]) -> str:
    """render() again after each shrink until the text fits MAX_BYTES; each pass applies the first shrink that can
    still cut something (it returns False when it cannot). The last rendering, whether it fits or not."""
    text = render()
    while size(text) > MAX_BYTES and any(shrink() for shrink in shrinks):
        text = render()
    return text


def add_path_flag(parser: argparse.ArgumentParser | Any) -> None:
    """The --termination-message-path option (an ArgumentParser or one of its argument groups)."""
    parser.add_argument(
        PATH_FLAG, default=None, help=f"where the JSON summary goes (default ${PATH_ENV}, else {DEFAULT_PATH})"
    )


def report_usage_errors(
    parser: argparse.ArgumentParser, failure: Callable[[str], str], program: str, argv: Callable[[], Sequence[str]]
) -> None:
    """A command-line error also writes `failure(message)` as the termination message, then exits 2 as argparse
    does. `argv` gives the raw arguments (sys.argv, or the list a caller passed in-process)."""
    original = parser.error

    def error(message: str) -> NoReturn:
        write(path_from_argv(argv()), failure(message), program)
        original(message)
        raise AssertionError("argparse's error() returned")  # it exits; this keeps the NoReturn promise

    parser.error = error  # type: ignore[method-assign]
