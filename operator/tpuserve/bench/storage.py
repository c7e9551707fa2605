"""Local paths and gs:// objects for inputs (downloaded once into a cache) and outputs (written in place)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from tpuserve.bench import BenchError
from tpuserve.gs_uri import GsPath, is_gs_uri

CACHE_ENV = "TPUSERVE_CACHE_DIR"


def split_gcs(uri: str) -> tuple[str, str]:
    """gs://bucket/object -> (bucket, object); a bucket alone gives an empty object name."""
    try:
        path = GsPath.parse(uri)
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    return path.bucket, path.name


def gcs_client() -> Any:
    """A storage client; with STORAGE_EMULATOR_HOST set (tests), anonymous against the emulator."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project="tpuserve", credentials=AnonymousCredentials())
    return storage.Client()


def cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override) / "gcs"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path("~/.cache").expanduser()) / "tpuserve" / "gcs"


def fetch(uri: str, what: str) -> Path:
    """A local file for `uri`: the path itself, or a cached download of a gs:// object (keyed by generation)."""
    if not is_gs_uri(uri):
        path = Path(uri).expanduser()
        if not path.is_file():
            raise BenchError(f"{what} {uri!r} does not exist or is not a file")
        return path
    bucket_name, name = split_gcs(uri)
    if not name or name.endswith("/"):
        raise BenchError(f"{what} {uri!r} names no object")
    from google.api_core import exceptions as gexc

    try:
        blob = gcs_client().bucket(bucket_name).get_blob(name)
    except gexc.GoogleAPIError as exc:
        raise BenchError(f"cannot read {what} {uri}: {exc}") from exc
    if blob is None:
        raise BenchError(f"{what} {uri} does not exist")
    key = hashlib.sha256(f"{uri}#{blob.generation}".encode()).hexdigest()[:16]
    target = cache_dir() / bucket_name / f"{key}-{Path(name).name}"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".partial")
        try:
            blob.download_to_filename(str(partial))
        except gexc.GoogleAPIError as exc:
            raise BenchError(f"cannot download {what} {uri}: {exc}") from exc
        partial.replace(target)
    return target


def join(prefix: str, name: str) -> str:
    return prefix.rstrip("/") + "/" + name


def write_text(uri: str, text: str, content_type: str = "application/json") -> None:
    """Write `text` to a local path (parents created) or a gs:// object."""
    if is_gs_uri(uri):
        bucket_name, name = split_gcs(uri)
        from google.api_core import exceptions as gexc

        try:
            gcs_client().bucket(bucket_name).blob(name).upload_from_string(text, content_type=content_type)
        except gexc.GoogleAPIError as exc:
            raise BenchError(f"cannot write {uri}: {exc}") from exc
        return
    path = Path(uri).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def read_text(uri: str, what: str) -> str:
    if is_gs_uri(uri):
        bucket_name, name = split_gcs(uri)
        from google.api_core import exceptions as gexc

        try:
            blob = gcs_client().bucket(bucket_name).get_blob(name)
            if blob is None:
                raise BenchError(f"{what} {uri} does not exist")
            text: str = blob.download_as_text()
            return text
        except gexc.GoogleAPIError as exc:
            raise BenchError(f"cannot read {what} {uri}: {exc}") from exc
    path = Path(uri).expanduser()
    if not path.is_file():
        raise BenchError(f"{what} {uri!r} does not exist or is not a file")
    return path.read_text(encoding="utf-8")
