"""A small local stand-in for the Hugging Face hub's file-resolution API, for tests (they cannot reach the hub).

It serves exactly what `huggingface_hub` (2.4) calls for `snapshot_download`/`hf_hub_download` of a revision,
read from its source (hf_api.py `repo_info`/`list_repo_tree`, file_download.py `get_hf_file_metadata`,
utils/_http.py `hf_raise_for_status`):

- `GET /api/models/{repo}/revision/{revision}`: model info, `sha` = the commit the revision resolves to;
- `GET /api/models/{repo}/tree/{revision}[/{path}]?recursive=…`: the file listing (`type`, `path`, `size`,
  `oid` = git blob SHA-1, `lfs` = {`oid` SHA-256, `size`, `pointerSize`} for LFS files), one page;
- `HEAD`/`GET /{repo}/resolve/{revision}/{file}`: the file, with `X-Repo-Commit`, `ETag` (git blob id; for LFS
  files `X-Linked-Etag` = SHA-256 and `X-Linked-Size`), `Content-Length`, and `Range` support.

Errors as the hub sends them: 401 with `X-Error-Message: Invalid credentials in Authorization header` for a bad
token, 401 without it for a private repo asked anonymously, 404 with `X-Error-Code: RepoNotFound`,
`RevisionNotFound` or `EntryNotFound`. Faults a test can switch on: the next N requests answer 503 (a hub
outage), some files answer 503 while the rest is served (an outage mid-mirror), and a file served with other
bytes than the listing's checksums (corruption in transit).
Files ending in `.safetensors` are LFS files, as on the hub. No Xet headers: clients fall back to plain HTTP.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

INVALID_TOKEN_MESSAGE = "Invalid credentials in Authorization header"


@dataclass
class HubRepo:
    files: dict[str, bytes]
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    branches: tuple[str, ...] = ("main",)
    token: str | None = None  # required bearer token (a gated/private repo); None = public
    served: dict[str, bytes] = field(default_factory=dict)  # bytes served instead of the listed ones (corruption)

    _hashes: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> hex, computed once

    def git_oid(self, name: str) -> str:
        key = ("git", name)
        if key not in self._hashes:
            data = self.files[name]
            self._hashes[key] = hashlib.sha1(f"blob {len(data)}\0".encode() + data, usedforsecurity=False).hexdigest()
        return self._hashes[key]

    def sha256(self, name: str) -> str:
        key = ("sha256", name)
        if key not in self._hashes:
            self._hashes[key] = hashlib.sha256(self.files[name]).hexdigest()
        return self._hashes[key]

    def resolves(self, revision: str) -> bool:
        return revision in self.branches or revision == self.commit


@dataclass
class LocalHub:
    repos: dict[str, HubRepo] = field(default_factory=dict)
    fail_next: int = 0  # answer this many requests with 503, then recover
    unavailable_files: set[str] = field(default_factory=set)  # resolve/…/<file> answers 503 while listed here
    status_counts: Counter[int] = field(default_factory=Counter)
    downloads: Counter[str] = field(default_factory=Counter)  # GETs of resolve/…/file, by file
    endpoint: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_outage(self) -> bool:
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return True
            return False


_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/(?P<op>revision|tree)/(?P<rev>[^/]+)(?P<rest>/.*)?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


def _handler(hub: LocalHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            del format, args

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            with hub.lock:
                hub.status_counts[status] += 1
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if "Content-Length" not in (headers or {}):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str | None = None, message: str | None = None) -> None:
            headers = {"Content-Type": "application/json"}
            if code:
                headers["X-Error-Code"] = code
            if message:
                headers["X-Error-Message"] = message
            self._send(status, json.dumps({"error": message or code or "error"}).encode(), headers)

        def _repo(self, repo_id: str) -> HubRepo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
                return None
            if repo.token is not None:
                auth = self.headers.get("Authorization", "")
                if not auth:
                    self._error(401, None, "Access to model is restricted. You must have access to it.")
                    return None
                if auth != f"Bearer {repo.token}":
                    self._error(401, None, INVALID_TOKEN_MESSAGE)
                    return None
            return repo

        def _repo_at(self, repo_id: str, revision: str) -> HubRepo | None:
            """The repository if it exists, the caller may read it and it has `revision`; else the error is sent."""
            repo = self._repo(repo_id)
            if repo is not None and not repo.resolves(revision):
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                return None
            return repo

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            if hub.take_outage():
                self._error(503, None, "Service Unavailable")
                return
            path = unquote(urlsplit(self.path).path)
            api, resolve = _API.match(path), _RESOLVE.match(path)
            if api:
                self._api(api.group("repo"), api.group("op"), api.group("rev"))
            elif resolve:
                self._resolve(resolve.group("repo"), resolve.group("rev"), resolve.group("file"))
            else:
                self._error(404, None, f"no route {path}")

        def _api(self, repo_id: str, op: str, revision: str) -> None:
            repo = self._repo_at(repo_id, revision)
            if repo is None:
                return
            if op == "revision":
                body = {
                    "id": repo_id,
                    "modelId": repo_id,
                    "sha": repo.commit,
                    "private": repo.token is not None,
                    "siblings": [{"rfilename": n} for n in sorted(repo.files)],
                }
            else:
                folders = sorted({n.rsplit("/", 1)[0] for n in repo.files if "/" in n})
                body = [{"type": "directory", "path": f, "oid": "0" * 40, "size": 0} for f in folders]  # type: ignore[assignment]
                body += [self._entry(repo, n) for n in sorted(repo.files)]  # type: ignore[operator]
            self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

        @staticmethod
        def _entry(repo: HubRepo, name: str) -> dict[str, object]:
            data = repo.files[name]
            entry: dict[str, object] = {"type": "file", "path": name, "size": len(data), "oid": repo.git_oid(name)}
            if name.endswith(".safetensors"):
                entry["lfs"] = {"oid": repo.sha256(name), "size": len(data), "pointerSize": 134}
            return entry

        def _resolve(self, repo_id: str, revision: str, name: str) -> None:
            repo = self._repo_at(repo_id, revision)
            if repo is None:
                return
            if name not in repo.files:
                self._error(404, "EntryNotFound", f"{name} does not exist")
                return
            if name in hub.unavailable_files:
                self._error(503, None, "Service Unavailable")
                return
            data = repo.served.get(name, repo.files[name])
            headers = {
                "X-Repo-Commit": repo.commit,
                "Accept-Ranges": "bytes",
                "Content-Type": "application/octet-stream",
            }
            if name.endswith(".safetensors"):
                sha256 = repo.sha256(name)
                headers |= {"ETag": f'"{sha256}"', "X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(data))}
            else:
                headers["ETag"] = f'"{repo.git_oid(name)}"'
            if self.command == "GET":
                with hub.lock:
                    hub.downloads[name] += 1
            status, body = 200, data
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if match:
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else len(data) - 1
                status, body = 206, data[start : end + 1]
                headers["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{len(data)}"
            headers["Content-Length"] = str(len(body))
            self._send(status, body, headers)

    return Handler


@contextmanager
def running_hub(hub: LocalHub) -> Iterator[LocalHub]:
    """Serve `hub` on a free loopback port (threads) and set `hub.endpoint`; stop it afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="local-hub", daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
