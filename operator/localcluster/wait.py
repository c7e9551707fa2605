"""The one polling helper of the test suite: every wait has a deadline and says what it waited for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not hold before its deadline (an AssertionError, so pytest reports it as a failure)."""


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.2,
    description: str = "condition",
) -> T:
    """Call `predicate` until it returns something truthy and return that; raise WaitTimeout at the deadline.

    Exceptions from the predicate propagate at once (a broken predicate must not look like a slow cluster).
    The timeout message carries the last falsy value, which usually says why the wait failed.
    """
    if timeout <= 0 or interval <= 0:
        raise ValueError(f"timeout and interval must be positive (got {timeout}, {interval})")
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {description} (last value: {last!r})")
        time.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))


def wait_crds_established(kubectl: Callable[..., Any], *names: str, timeout: float = 60.0) -> None:
    """Wait until each CRD (`crd/<name>`, already created) is Established.

    Not `kubectl wait --for=condition=Established`: on a CRD whose status.conditions the API server has not yet
    written, kubectl 1.35 fails at once ('.status.conditions accessor error: <nil>') instead of waiting; the
    jsonpath below fails the same way then, so its failures count as "not yet".
    """
    jsonpath = 'jsonpath={.status.conditions[?(@.type=="Established")].status}'
    for name in names:

        def established(name: str = name) -> bool:
            # Until the API server writes status.conditions, kubectl's filter fails ("<nil> is not array"): not yet.
            result = kubectl("get", name, "-o", jsonpath, check=False)
            return bool(result.returncode == 0 and result.stdout.strip() == "True")

        wait_for(established, timeout=timeout, description=f"{name} to be Established")
