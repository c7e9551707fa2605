"""Runs `tpuserve operator` with every HTTP request it makes counted (the kubernetes client's urllib3 and kopf's
aiohttp), for operator/tpuserve_dev/perf/scale_operator.py. The counts go to $TPUSERVE_COUNT_FILE (JSON) once a second.
Measurement scaffolding only: nothing here changes what the operator does."""

from __future__ import annotations

import collections
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import urllib3.connectionpool

COUNTS: collections.Counter[str] = collections.Counter()
# What each status PATCH said (its message with digits and names dropped): which step of a reconcile wrote it.
STATUS_WRITES: collections.Counter[str] = collections.Counter()
WORDS = re.compile(r"[A-Za-z ]+")
LOCK = threading.Lock()
RESOURCE = re.compile(r"/(?:api/v1|apis/[^/]+/[^/]+)(?:/namespaces/[^/]+)?/([a-z]+)")


def _key(method: str, url: str) -> str:
    match = RESOURCE.search(url)
    watch = "watch=" in url
    return f"{method.upper()} {match.group(1) if match else url.split('?')[0]}{' (watch)' if watch else ''}"


def _count(method: str, url: str) -> None:
    with LOCK:
        COUNTS[_key(method, url)] += 1


_urlopen = urllib3.connectionpool.HTTPConnectionPool.urlopen


def _status_write(body: Any) -> None:
    try:
        message = str(json.loads(body)["status"].get("message") or "")
    except (TypeError, ValueError, KeyError, AttributeError):
        return
    shape = " ".join(w for w in WORDS.findall(message.split(":")[0]) if w.strip() and w.strip() != "run")
    with LOCK:
        STATUS_WRITES[" ".join(shape.split()[:6])] += 1


def urlopen(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
    _count(method, url)
    if method.upper() == "PATCH" and url.split("?")[0].endswith("/status"):
        _status_write(kwargs.get("body"))
    return _urlopen(self, method, url, *args, **kwargs)


urllib3.connectionpool.HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign]
_request = aiohttp.ClientSession._request


async def request(self: Any, method: str, str_or_url: Any, *args: Any, **kwargs: Any) -> Any:
    params = kwargs.get("params") or {}
    _count(method, str(str_or_url) + ("?watch=true" if params.get("watch") in ("true", True) else ""))
    return await _request(self, method, str_or_url, *args, **kwargs)


aiohttp.ClientSession._request = request  # type: ignore[method-assign]


def dump_forever(path: str) -> None:
    while True:
        with LOCK:
            texts = {path: json.dumps(dict(COUNTS)), path + ".status.json": json.dumps(dict(STATUS_WRITES))}
        for target, text in texts.items():
            tmp = Path(target + ".tmp")
            tmp.write_text(text)
            tmp.replace(target)
        time.sleep(1)


if __name__ == "__main__":
    threading.Thread(target=dump_forever, args=(os.environ["TPUSERVE_COUNT_FILE"],), daemon=True).start()
    from tpuserve.cli import main

    sys.exit(main(sys.argv[1:]))
