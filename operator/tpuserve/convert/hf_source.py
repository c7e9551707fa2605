"""Where a Hugging Face model directory comes from: a hub repo at a revision, or a `gs://` prefix.

Both sources give a listing (the files a mirror copies, with sizes and the checksums the source publishes) and
download one file at a time. The hub is reached through `huggingface_hub` with the calls `snapshot_download`
makes (repo info to resolve the revision to a commit, the recursive tree listing, then `hf_hub_download` per file
at that commit), against `HF_ENDPOINT` when set. Transient hub failures (5xx, 429, connection errors) are
retried with exponential backoff within a budget; a refused token and a missing repo are answered at once.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from tpuserve.convert.safetensors_header import INDEX_NAME, SINGLE_FILE_NAME
from tpuserve.convert.storage import ObjectInfo, checksums_of_file, open_store

T = TypeVar("T")
CONFIG_NAME = "config.json"
TOKENIZER_NAME = "tokenizer.json"
# Weights in formats vLLM does not need once safetensors are there (and Meta's originals under original/).
_SKIPPED_SUFFIXES = (".bin", ".pth", ".pt", ".ckpt", ".h5", ".msgpack", ".onnx", ".gguf", ".ot")
_SKIPPED_NAMES = (".gitattributes",)
_HASH_BLOCK = 8 * 1024 * 1024


class SourceFileSum(BaseModel):
    """One source file as the source lists it: what the mirror must reproduce byte for byte."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    name: str
    bytes: int
    sha256: str | None = None  # hub LFS files (safetensors)
    git_oid: str | None = None  # hub non-LFS files: git blob SHA-1
    crc32c: str | None = None  # gs:// sources: GCS's base64 CRC32C


@dataclass
class SourceListing:
    description: str  # for messages: "hf://org/name@main (commit abc…)" or the gs:// URI
    identity: dict[str, str]  # what the manifest records about the source
    files: dict[str, SourceFileSum] = field(default_factory=dict)


class SourceError(RuntimeError):
    """A definite answer about the source (not retried); `kind` is a summary FailureReason value."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class HubUnavailableError(RuntimeError):
    """The hub kept failing transiently past the retry budget."""


class ModelSource(Protocol):
    def listing(self) -> SourceListing: ...

    def download(self, entry: SourceFileSum, dest: Path) -> None: ...


def mirrored_names(names: list[str]) -> list[str]:
    """The files of a repo a vLLM server needs: the top-level files except other weight formats."""
    return sorted(
        n for n in names if "/" not in n and n not in _SKIPPED_NAMES and not n.lower().endswith(_SKIPPED_SUFFIXES)
    )


def required_missing(names: set[str], index_shards: list[str] | None) -> list[str]:
    """Required files absent from `names`: config.json, tokenizer.json, and the weights (the index's shards when
    there is an index, else model.safetensors)."""
    missing = [n for n in (CONFIG_NAME, TOKENIZER_NAME) if n not in names]
    if index_shards is not None:
        missing += [s for s in index_shards if s not in names]
    elif SINGLE_FILE_NAME not in names:
        missing.append(f"{SINGLE_FILE_NAME} (or {INDEX_NAME} and its shards)")
    return missing


def git_blob_oid(path: Path) -> str:
    """The git blob SHA-1 of a file (what the hub lists as `oid` for files not in LFS)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def content_mismatch(entry: SourceFileSum, path: Path) -> str | None:
    """Why the downloaded file is not the one the source listed (size, then the source's own checksum)."""
    size = path.stat().st_size
    if size != entry.bytes:
        return f"{entry.name}: downloaded {size} bytes, the source lists {entry.bytes}"
    if entry.sha256 is not None and (found := sha256_of(path)) != entry.sha256:
        return f"{entry.name}: SHA-256 {found}, the source lists {entry.sha256}"
    if entry.sha256 is None and entry.git_oid is not None and (found := git_blob_oid(path)) != entry.git_oid:
        return f"{entry.name}: git blob id {found}, the source lists {entry.git_oid}"
    if entry.crc32c is not None and (found := checksums_of_file(path)[0]) != entry.crc32c:
        return f"{entry.name}: CRC32C {found}, the source lists {entry.crc32c}"
    return None


# --- retries ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    budget_seconds: float = 1800.0  # keep trying through a hub outage this long (the Job's deadline is longer)
    initial_seconds: float = 2.0
    max_seconds: float = 60.0


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level errors of the HTTP client huggingface_hub uses: httpx2 from 1.x on, requests before (the
    converter image gets the version MaxText's pins allow)."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        import httpx2

        errors.append(httpx2.TransportError)
    except ImportError:
        pass
    try:
        import requests

        errors += [requests.exceptions.ConnectionError, requests.exceptions.Timeout]
    except ImportError:
        pass
    return tuple(errors)


def transient_http_status(exc: BaseException) -> int | None:
    """The HTTP status of a transient hub answer (429, 5xx) anywhere in the exception chain, 0 for a connection
    failure, None when the error is not transient."""
    transport = _transport_errors()
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int) and (status == 429 or status >= 500):
            return status
        if isinstance(seen, transport):
            return 0
        seen = seen.__cause__ or seen.__context__
    return None


def http_status(exc: BaseException) -> int | None:
    seen: BaseException | None = exc
    while seen is not None:
        status = getattr(getattr(seen, "response", None), "status_code", None)
        if isinstance(status, int):
            return status
        seen = seen.__cause__ or seen.__context__
    return None


def with_retries(call: Callable[[], T], what: str, policy: RetryPolicy, *, sleep: Callable[[float], None]) -> T:
    started = time.monotonic()
    delay = policy.initial_seconds
    attempt = 1
    while True:
        try:
            return call()
        except Exception as exc:
            status = transient_http_status(exc)
            if status is None:
                raise
            elapsed = time.monotonic() - started
            answer = f"HTTP {status}" if status else f"{type(exc).__name__}"
            if elapsed + delay > policy.budget_seconds:
                raise HubUnavailableError(
                    f"the Hugging Face hub kept failing for {what} ({answer}, {attempt} attempts in {elapsed:.0f} s)"
                ) from exc
            print(
                f"tpuserve convert mirror: {what}: {answer}; retrying in {delay:g} s (attempt {attempt})",
                file=sys.stderr,
                flush=True,
            )
            sleep(delay)
            delay = min(delay * 2, policy.max_seconds)
            attempt += 1


# --- the hub ---------------------------------------------------------------------------------------------


@dataclass
class HubSource:
    repo_id: str
    revision: str
    token: str | None  # None: anonymous (public repos)
    endpoint: str | None = None  # HF_ENDPOINT; None = huggingface.co
    token_source: str = "HF_TOKEN"  # where the token came from, for messages
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    commit: str | None = None

    def _api(self) -> Any:
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.endpoint, token=self.token or False)

    def _definite(self, exc: Exception) -> SourceError | None:
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

        status = http_status(exc)
        where = f"hf://{self.repo_id}@{self.revision}"
        if status == 401:
            told = "a token" if self.token else "no token"
            return SourceError(
                "HubUnauthorized",
                f"the Hugging Face hub refused {told} for {where} (HTTP 401): the token from {self.token_source} "
                "is missing, invalid or expired, or the repo is private or gated; put a valid read token there",
            )
        if isinstance(exc, GatedRepoError) or status == 403:
            return SourceError(
                "HubUnauthorized",
                f"the Hugging Face hub denied access to {where} (HTTP 403): accept the model's license at "
                f"https://huggingface.co/{self.repo_id} with the account of the token from {self.token_source}",
            )
        if isinstance(exc, RevisionNotFoundError):
            return SourceError("SourceNotFound", f"{where}: the repo has no revision {self.revision!r}")
        if isinstance(exc, RepositoryNotFoundError) or status == 404:
            return SourceError("SourceNotFound", f"{where}: no such repo on the Hugging Face hub (HTTP 404)")
        return None

    def _call(self, call: Callable[[], T], what: str) -> T:
        try:
            return with_retries(call, what, self.policy, sleep=self.sleep)
        except HubUnavailableError:
            raise
        except Exception as exc:
            definite = self._definite(exc)
            if definite is not None:
                raise definite from exc
            raise

    def listing(self) -> SourceListing:
        api = self._api()
        info = self._call(lambda: api.repo_info(self.repo_id, revision=self.revision), "resolving the revision")
        commit = str(info.sha)
        self.commit = commit
        entries = self._call(
            lambda: list(api.list_repo_tree(self.repo_id, recursive=True, revision=commit)), "listing the repo"
        )
        files: dict[str, SourceFileSum] = {}
        from huggingface_hub.hf_api import RepoFile

        by_name = {e.path: e for e in entries if isinstance(e, RepoFile)}
        for name in mirrored_names(list(by_name)):
            entry = by_name[name]
            lfs = getattr(entry, "lfs", None)
            files[name] = SourceFileSum(
                name=name,
                bytes=int(entry.size),
                sha256=str(lfs.sha256) if lfs is not None else None,
                git_oid=None if lfs is not None else str(entry.blob_id),
            )
        return SourceListing(
            description=f"hf://{self.repo_id}@{self.revision} (commit {commit[:12]})",
            identity={"repoId": self.repo_id, "revision": self.revision, "commit": commit},
            files=files,
        )

    def download(self, entry: SourceFileSum, dest: Path) -> None:
        from huggingface_hub import hf_hub_download

        local_dir = dest.parent / ".hub"
        revision = self.commit or self.revision

        def fetch() -> str:
            path: str = hf_hub_download(
                self.repo_id,
                entry.name,
                revision=revision,
                local_dir=local_dir,
                token=self.token or False,
                endpoint=self.endpoint,
                force_download=True,
            )
            return path

        downloaded = Path(self._call(fetch, f"downloading {entry.name}"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        downloaded.replace(dest)


# --- a gs:// (or local) Hugging Face directory -----------------------------------------------------------


@dataclass
class StoreSource:
    uri: str
    client: Any = None
    workers: int = 8

    def listing(self) -> SourceListing:
        store = open_store(self.uri, self.client)
        listing: dict[str, ObjectInfo] = store.list()
        files: dict[str, SourceFileSum] = {}
        for name in mirrored_names(list(listing)):
            info = listing[name]
            files[name] = SourceFileSum(name=name, bytes=info.size, crc32c=store.checksum(name, info))
        return SourceListing(description=self.uri, identity={"uri": self.uri}, files=files)

    def download(self, entry: SourceFileSum, dest: Path) -> None:
        open_store(self.uri, self.client).download(entry.name, dest, workers=self.workers)


def parse_index_shards(raw: bytes) -> list[str]:
    """The shard files a model.safetensors.index.json names (sorted, unique)."""
    import json

    data = json.loads(raw)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict):
        raise ValueError(f"{INDEX_NAME} has no weight_map")
    return sorted({str(v) for v in weight_map.values()})
