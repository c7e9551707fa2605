"""One small interface over a local directory and a `gs://` prefix (google-cloud-storage).

Names are relative to the store's root and use `/`. Listing is recursive and returns sizes and, where the backend
has them, CRC32C checksums (GCS's base64 big-endian form; computed the same way for local files on request).
Downloads of large objects are split into byte ranges fetched by a thread pool and written in place.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import google_crc32c

from tpuserve.convert import stopping
from tpuserve.gs_uri import GsPath, is_gs_uri

DOWNLOAD_CHUNK_BYTES = 64 * 1024 * 1024
_HASH_BLOCK = 8 * 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    crc32c: str | None = None  # base64 of the big-endian CRC32C, as GCS reports it
    md5_hex: str | None = None  # GCS's MD5 (absent for composite objects), hex
    generation: int | None = None


def crc32c_of_file(path: Path) -> str:
    return checksums_of_file(path)[0]


def checksums_of_file(path: Path, *, md5: bool = False) -> tuple[str, str | None]:
    """(CRC32C as GCS's base64, MD5 hex or None) in one pass over the file."""
    checksum = google_crc32c.Checksum()
    digest = hashlib.md5(usedforsecurity=False) if md5 else None
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            checksum.update(block)
            if digest is not None:
                digest.update(block)
    return base64.b64encode(checksum.digest()).decode("ascii"), digest.hexdigest() if digest else None


def _md5_hex(b64: str | None) -> str | None:
    return base64.b64decode(b64).hex() if b64 else None


class Progress:
    """Thread-safe byte counter that prints a progress line to stderr at most every `interval` seconds."""

    def __init__(self, label: str, total: int, *, interval: float = 5.0, stream: Any = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.interval = interval
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        self._last_print = 0.0
        self._lock = threading.Lock()

    def add(self, nbytes: int) -> None:
        with self._lock:
            self.done += nbytes
            now = time.monotonic()
            if now - self._last_print >= self.interval or self.done >= self.total:
                self._last_print = now
                self._print(now)

    def _print(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta_text = f"{eta:.0f}s" if eta != float("inf") else "?"
        print(
            f"{self.label}: {self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB ({pct:.0f}%), "
            f"{rate / 1e6:.1f} MB/s, ETA {eta_text}",
            file=self.stream,
            flush=True,
        )

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


class Store(Protocol):
    uri: str

    def list(self, prefix: str = "") -> dict[str, ObjectInfo]: ...

    def read(self, name: str, start: int | None = None, length: int | None = None) -> bytes: ...

    def write(self, name: str, data: bytes) -> None: ...

    def delete_prefix(self, prefix: str) -> int: ...

    def download(self, name: str, dest: Path, *, workers: int = 8, progress: Progress | None = None) -> ObjectInfo: ...

    def upload_tree(
        self, local_dir: Path, prefix: str, *, workers: int = 8, progress: Progress | None = None
    ) -> int: ...

    def upload_file(self, path: Path, name: str) -> None: ...

    def checksum(self, name: str, info: ObjectInfo) -> str: ...


class LocalStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.uri = str(root)

    def _path(self, name: str) -> Path:
        return self.root / name if name else self.root

    def list(self, prefix: str = "") -> dict[str, ObjectInfo]:
        base = self._path(prefix)
        if base.is_file():
            return {prefix: ObjectInfo(size=base.stat().st_size)}
        if not base.is_dir():
            return {}
        out: dict[str, ObjectInfo] = {}
        for path in sorted(base.rglob("*")):
            if path.is_file():
                out[path.relative_to(self.root).as_posix()] = ObjectInfo(size=path.stat().st_size)
        return out

    def read(self, name: str, start: int | None = None, length: int | None = None) -> bytes:
        with self._path(name).open("rb") as handle:
            if start:
                handle.seek(start)
            return handle.read() if length is None else handle.read(length)

    def write(self, name: str, data: bytes) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def delete_prefix(self, prefix: str) -> int:
        path = self._path(prefix)
        if path.is_dir():
            count = sum(1 for p in path.rglob("*") if p.is_file())
            shutil.rmtree(path)
            return count
        if path.is_file():
            path.unlink()
            return 1
        return 0

    def download(self, name: str, dest: Path, *, workers: int = 8, progress: Progress | None = None) -> ObjectInfo:
        del workers  # a local copy is disk-bound; one stream is as fast as several
        src = self._path(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with src.open("rb") as fin, dest.open("wb") as fout:
            while block := fin.read(_HASH_BLOCK):
                fout.write(block)
                if progress:
                    progress.add(len(block))
        return ObjectInfo(size=dest.stat().st_size)

    def upload_tree(self, local_dir: Path, prefix: str, *, workers: int = 8, progress: Progress | None = None) -> int:
        del workers
        dest = self._path(prefix)
        files = [p for p in sorted(local_dir.rglob("*")) if p.is_file()]
        for path in files:
            target = dest / path.relative_to(local_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            if progress:
                progress.add(path.stat().st_size)
        return len(files)

    def upload_file(self, path: Path, name: str) -> None:
        target = self._path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)

    def checksum(self, name: str, info: ObjectInfo) -> str:
        return info.crc32c or crc32c_of_file(self._path(name))


class GcsStore:
    def __init__(self, uri: str, client: Any = None) -> None:
        self.uri = uri.rstrip("/")
        path = GsPath.parse(uri)
        self.bucket_name, self.prefix = path.bucket, path.prefix
        if client is None:
            from google.cloud import storage

            client = storage.Client()
        self.client = client
        self.bucket = client.bucket(self.bucket_name)

    def _key(self, name: str) -> str:
        return "/".join(p for p in (self.prefix, name.strip("/")) if p)

    def list(self, prefix: str = "") -> dict[str, ObjectInfo]:
        key = self._key(prefix)
        # "a/b" must not match "a/bc": list "a/b/" plus the object "a/b" itself.
        out: dict[str, ObjectInfo] = {}
        root_len = len(self.prefix) + 1 if self.prefix else 0
        for blob in self.client.list_blobs(self.bucket_name, prefix=f"{key}/" if key else None):
            out[blob.name[root_len:]] = _info(blob)
        if prefix.strip("/"):
            blob = self.bucket.get_blob(key)
            if blob is not None:
                out[blob.name[root_len:]] = _info(blob)
        return out

    def read(self, name: str, start: int | None = None, length: int | None = None) -> bytes:
        blob = self.bucket.blob(self._key(name))
        if start is None and length is None:
            data: bytes = blob.download_as_bytes()
            return data
        begin = start or 0
        end = None if length is None else begin + length - 1
        data = blob.download_as_bytes(start=begin, end=end, checksum=None)
        return data

    def write(self, name: str, data: bytes) -> None:
        self.bucket.blob(self._key(name)).upload_from_string(data)

    def delete_prefix(self, prefix: str) -> int:
        names = list(self.list(prefix))
        for name in names:
            self.bucket.blob(self._key(name)).delete()
        return len(names)

    def download(self, name: str, dest: Path, *, workers: int = 8, progress: Progress | None = None) -> ObjectInfo:
        blob = self.bucket.get_blob(self._key(name))
        if blob is None:
            raise FileNotFoundError(f"{self.uri}/{name} does not exist")
        size = int(blob.size or 0)
        generation = blob.generation
        dest.parent.mkdir(parents=True, exist_ok=True)
        with dest.open("wb") as handle:
            handle.truncate(size)
        ranges = [(off, min(DOWNLOAD_CHUNK_BYTES, size - off)) for off in range(0, size, DOWNLOAD_CHUNK_BYTES)]
        fd = os.open(dest, os.O_WRONLY)
        try:

            def fetch(span: tuple[int, int]) -> None:
                offset, length = span
                # Pin the generation so a concurrent overwrite of the source cannot mix two versions.
                data = self.bucket.blob(self._key(name), generation=generation).download_as_bytes(
                    start=offset, end=offset + length - 1, checksum=None
                )
                if len(data) != length:
                    raise OSError(f"short read of {self.uri}/{name} at {offset}: {len(data)} of {length} bytes")
                os.pwrite(fd, data, offset)
                if progress:
                    progress.add(length)

            _run_parallel(fetch, ranges, workers)
        finally:
            os.close(fd)
        return ObjectInfo(size=size, crc32c=blob.crc32c, md5_hex=_md5_hex(blob.md5_hash), generation=generation)

    def upload_tree(self, local_dir: Path, prefix: str, *, workers: int = 8, progress: Progress | None = None) -> int:
        files = [p for p in sorted(local_dir.rglob("*")) if p.is_file()]

        def put(path: Path) -> None:
            rel = path.relative_to(local_dir).as_posix()
            stopping.check(f"uploading {rel}")  # after SIGTERM no new file goes up
            blob = self.bucket.blob(self._key(f"{prefix.strip('/')}/{rel}" if prefix else rel))
            # if_generation_match=0 ("must not exist"; the output was cleared first) makes the upload safe to
            # retry, so google-cloud-storage retries transient errors instead of failing a multi-GB upload.
            blob.upload_from_filename(str(path), if_generation_match=0)
            if progress:
                progress.add(path.stat().st_size)

        _run_parallel(put, files, workers)
        return len(files)

    def upload_file(self, path: Path, name: str) -> None:
        # checksum="crc32c": the client compares its CRC32C of the file with what GCS stored and fails on a
        # difference; if_generation_match=0 as in upload_tree (the output was cleared first).
        blob = self.bucket.blob(self._key(name))
        blob.upload_from_filename(str(path), if_generation_match=0, checksum="crc32c")

    def checksum(self, name: str, info: ObjectInfo) -> str:
        if info.crc32c:
            return info.crc32c
        blob = self.bucket.get_blob(self._key(name))
        if blob is None or not blob.crc32c:
            raise FileNotFoundError(f"{self.uri}/{name}: no checksum")
        crc: str = blob.crc32c
        return crc


def _info(blob: Any) -> ObjectInfo:
    return ObjectInfo(
        size=int(blob.size or 0), crc32c=blob.crc32c, md5_hex=_md5_hex(blob.md5_hash), generation=blob.generation
    )


def _run_parallel(func: Callable[[Any], None], items: Iterable[Any], workers: int) -> None:
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        for item in items:
            func(item)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(func, item) for item in items]:
            future.result()


def open_store(uri: str, client: Any = None) -> Store:
    """A Store for a gs:// URI (google-cloud-storage; honours STORAGE_EMULATOR_HOST) or a local directory."""
    if is_gs_uri(uri):
        return GcsStore(uri, client)
    return LocalStore(uri)
