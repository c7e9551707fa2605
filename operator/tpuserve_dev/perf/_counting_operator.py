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


def urlopen(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
    _count(method, url)
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
            text = json.dumps(dict(COUNTS))
        tmp = Path(path + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        time.sleep(1)


if __name__ == "__main__":
    threading.Thread(target=dump_forever, args=(os.environ["TPUSERVE_COUNT_FILE"],), daemon=True).start()
    from tpuserve.cli import main

    sys.exit(main(sys.argv[1:]))
