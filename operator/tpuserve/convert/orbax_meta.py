"""Read an Orbax PyTree checkpoint's metadata (local or gs://) without reading its weights.

What orbax-checkpoint writes for a PyTree item directory (`…/0/items`), as seen with orbax-checkpoint 0.11.39
(MaxText maxtext-v0.2.3's pin; MaxText saves with use_ocdbt=True, use_zarr3=True):
- `_METADATA`: JSON; `tree_metadata` maps each leaf's key tuple to `key_metadata` (the path) and
  `value_metadata` (`value_type`, `write_shape` = chunk shape, `skip_deserialize`); plus `use_ocdbt`,
  `use_zarr3`, `store_array_data_equal_to_fill_value`. No global shapes or dtypes.
- `_sharding`: JSON, base64(param name) -> sharding. `array_metadatas/process_N`: write/chunk shapes.
- With OCDBT: `manifest.ocdbt` (+ `ocdbt.process_N/manifest.ocdbt`), and data files `d/<hash>` (also under
  `ocdbt.process_N/d/`). The database maps keys `<param>/zarr.json` (array metadata: `shape`, `data_type`,
  `chunk_grid`) and `<param>/c/i/j/…` (chunks) to values stored inline in the B+tree (<= 1024 bytes) or as
  references `value:<base>:<file>:<offset>:<length>` into data files. B+tree nodes are also located by
  `btreenode:<base>:<file>:<offset>:<length>`. The step directory's `_CHECKPOINT_METADATA` carries
  `commit_timestamp_nsecs` once the save was finalized.
- Without OCDBT: one directory per param with `zarr.json` (zarr3) or `.zarray` (zarr v2) and chunk files.

The OCDBT manifest and B+tree nodes are decoded with tensorstore's `ocdbt.dump` (no jax). For gs:// the
reader builds a sparse local mirror: every data file is created at its remote size without content, and only
the byte ranges holding the manifest and B+tree nodes are downloaded into it; small array metadata values
are read by range. Memory and traffic grow with the number of arrays and chunks, not with bytes of weights.
Every reference is checked against the referenced file's size, so a truncated or missing data file is found
without reading it.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tpuserve.convert.storage import ObjectInfo, Store, open_store
from tpuserve.gs_uri import is_gs_uri

ZARR2_DTYPES = {
    "<f4": "float32",
    "<f2": "float16",
    "<f8": "float64",
    "<i4": "int32",
    "<i8": "int64",
    "|i1": "int8",
    "|u1": "uint8",
    "bfloat16": "bfloat16",
}
_ARRAY_META_FILES = ("zarr.json", ".zarray")
_NON_CHUNK_FILES = ("zarr.json", ".zarray", ".zattrs", ".zgroup")


@dataclass
class ArrayMeta:
    name: str
    shape: tuple[int, ...]
    dtype: str
    chunk_shape: tuple[int, ...] | None
    chunks_found: int

    @property
    def chunks_expected(self) -> int | None:
        if self.chunk_shape is None or len(self.chunk_shape) != len(self.shape):
            return None
        n = 1
        for dim, chunk in zip(self.shape, self.chunk_shape, strict=True):
            n *= -(-dim // chunk) if chunk else 1
        return n


@dataclass
class CheckpointMeta:
    path: str
    use_ocdbt: bool = False
    use_zarr3: bool = False
    stores_fill_value_chunks: bool = True
    tree_keys: list[str] = field(default_factory=list)  # leaves listed in _METADATA, dotted
    arrays: dict[str, ArrayMeta] = field(default_factory=dict)  # dotted param name -> array metadata
    problems: list[str] = field(default_factory=list)  # integrity problems: the checkpoint cannot be loaded
    warnings: list[str] = field(default_factory=list)
    total_bytes: int = 0
    file_count: int = 0


@dataclass(frozen=True)
class _Location:
    kind: str
    file: str  # relative to the items directory
    offset: int
    length: int

    @classmethod
    def parse(cls, text: str) -> _Location:
        # "<kind>:<base path>:<relative path>:<offset>:<length>"
        parts = text.split(":")
        if len(parts) < 5:
            raise ValueError(f"unexpected OCDBT location {text!r}")
        kind, base = parts[0], parts[1]
        rel = ":".join(parts[2:-2])
        return cls(kind=kind, file=f"{base}{rel}", offset=int(parts[-2]), length=int(parts[-1]))


def _dotted(key_metadata: list[dict[str, Any]]) -> str:
    return ".".join(str(k["key"]) for k in key_metadata)


def _parse_zarr_metadata(name: str, raw: bytes) -> tuple[tuple[int, ...], str, tuple[int, ...] | None]:
    meta = json.loads(raw)
    if "zarr_format" in meta and meta["zarr_format"] == 3:
        shape = tuple(int(d) for d in meta["shape"])
        dtype = str(meta["data_type"])
        grid = meta.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape")
        return shape, dtype, tuple(int(d) for d in grid) if grid is not None else None
    if "shape" in meta and "dtype" in meta:  # zarr v2 .zarray
        dtype = meta["dtype"]
        dtype_name = ZARR2_DTYPES.get(dtype, dtype) if isinstance(dtype, str) else json.dumps(dtype)
        chunks = meta.get("chunks")
        return tuple(int(d) for d in meta["shape"]), dtype_name, tuple(int(d) for d in chunks) if chunks else None
    raise ValueError(f"{name}: not zarr array metadata")


class _Mirror:
    """A local directory tensorstore can open: the real one for local checkpoints, or a sparse copy for gs://."""

    def __init__(self, store: Store, files: dict[str, ObjectInfo], remote: bool) -> None:
        self.store = store
        self.files = files
        self.remote = remote
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._fetched: set[tuple[str, int, int]] = set()
        if remote:
            self._tmp = tempfile.TemporaryDirectory(prefix="tpuserve-verify-")
            self.root = Path(self._tmp.name)
            for name, info in files.items():
                path = self.root / name
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("wb") as handle:
                    if name.endswith("manifest.ocdbt"):
                        handle.write(store.read(name))
                    else:
                        handle.truncate(info.size)  # sparse: no bytes on disk until a range is fetched
        else:
            self.root = Path(store.uri)

    def ensure(self, loc: _Location) -> None:
        if not self.remote or (loc.file, loc.offset, loc.length) in self._fetched:
            return
        data = self.store.read(loc.file, loc.offset, loc.length)
        with (self.root / loc.file).open("r+b") as handle:
            handle.seek(loc.offset)
            handle.write(data)
        self._fetched.add((loc.file, loc.offset, loc.length))

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def _check_reference(loc: _Location, files: dict[str, ObjectInfo], problems: list[str], seen: set[str]) -> bool:
    info = files.get(loc.file)
    if info is None:
        if loc.file not in seen:
            problems.append(f"missing data file {loc.file} (referenced by the OCDBT index)")
            seen.add(loc.file)
        return False
    end = loc.offset + loc.length
    if info.size < end:
        if loc.file not in seen:
            problems.append(f"truncated data file {loc.file}: {info.size} bytes, the index references byte {end}")
            seen.add(loc.file)
        return False
    return True


def _read_ocdbt(meta: CheckpointMeta, store: Store, files: dict[str, ObjectInfo], remote: bool) -> None:
    import tensorstore as ts

    mirror = _Mirror(store, files, remote)
    try:
        base = ts.KvStore.open(f"file://{mirror.root}/").result()
        try:
            manifest = ts.ocdbt.dump(base).result()
        except Exception as exc:
            meta.problems.append(f"unreadable OCDBT manifest (manifest.ocdbt): {_short(exc)}")
            return
        versions = manifest.get("versions") or []
        if not versions or "location" not in versions[-1].get("root", {}):
            meta.problems.append("the OCDBT manifest lists no data (empty database)")
            return
        bad_files: set[str] = set()
        chunk_counts: dict[str, int] = {}
        array_values: dict[str, bytes | _Location] = {}
        stack: list[tuple[str, bytes]] = [(versions[-1]["root"]["location"], b"")]
        while stack:
            location, prefix = stack.pop()
            loc = _Location.parse(location)
            if not _check_reference(loc, files, meta.problems, bad_files):
                continue
            mirror.ensure(loc)
            try:
                node = ts.ocdbt.dump(base, location).result()
            except Exception as exc:
                meta.problems.append(f"unreadable OCDBT index node in {loc.file}: {_short(exc)}")
                continue
            for entry in node["entries"]:
                if node["height"] > 0:
                    stack.append((entry["location"], prefix + entry.get("subtree_common_prefix", b"")))
                    continue
                key = (prefix + entry["key"]).decode("utf-8", "replace")
                param, _, rest = key.partition("/")
                if "indirect_value" in entry:
                    value_loc = _Location.parse(entry["indirect_value"])
                    if not _check_reference(value_loc, files, meta.problems, bad_files):
                        continue
                    value: bytes | _Location = value_loc
                else:
                    value = entry.get("inline_value", b"")
                if rest in _ARRAY_META_FILES:
                    array_values[param] = value
                elif rest not in _NON_CHUNK_FILES:
                    chunk_counts[param] = chunk_counts.get(param, 0) + 1
        for param, value in sorted(array_values.items()):
            raw = store.read(value.file, value.offset, value.length) if isinstance(value, _Location) else value
            _add_array(meta, param, raw, chunk_counts.get(param, 0))
    finally:
        mirror.close()


def _add_array(meta: CheckpointMeta, param: str, raw: bytes, chunks: int) -> None:
    try:
        shape, dtype, chunk_shape = _parse_zarr_metadata(param, raw)
    except (ValueError, KeyError, TypeError) as exc:
        meta.problems.append(f"unreadable array metadata for {param}: {_short(exc)}")
        return
    meta.arrays[param] = ArrayMeta(param, shape, dtype, chunk_shape, chunks)


def _read_plain(meta: CheckpointMeta, store: Store, files: dict[str, ObjectInfo]) -> None:
    chunk_counts: dict[str, int] = {}
    meta_files: dict[str, str] = {}
    for name in files:
        param, _, rest = name.partition("/")
        if not rest:
            continue
        if rest in _ARRAY_META_FILES:
            meta_files[param] = name
        elif rest not in _NON_CHUNK_FILES:
            chunk_counts[param] = chunk_counts.get(param, 0) + 1
    for param, name in sorted(meta_files.items()):
        try:
            raw = store.read(name)
        except OSError as exc:
            meta.problems.append(f"unreadable {name}: {_short(exc)}")
            continue
        _add_array(meta, param, raw, chunk_counts.get(param, 0))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def read_checkpoint_meta(uri: str, *, client: Any = None) -> CheckpointMeta:
    """Read the metadata of the Orbax PyTree checkpoint at `uri` (an `…/items` directory)."""
    store = open_store(uri, client)
    meta = CheckpointMeta(path=uri)
    files = store.list()
    meta.file_count = len(files)
    meta.total_bytes = sum(info.size for info in files.values())
    if not files:
        meta.problems.append(f"no checkpoint at {uri}: the directory is empty or does not exist")
        return meta
    if "_METADATA" not in files:
        meta.problems.append("missing _METADATA (not an Orbax PyTree checkpoint, or an unfinished save)")
    else:
        try:
            tree = json.loads(store.read("_METADATA"))
            meta.use_ocdbt = bool(tree.get("use_ocdbt", False))
            meta.use_zarr3 = bool(tree.get("use_zarr3", False))
            meta.stores_fill_value_chunks = bool(tree.get("store_array_data_equal_to_fill_value", False))
            for entry in tree.get("tree_metadata", {}).values():
                value_meta = entry.get("value_metadata", {})
                if value_meta.get("skip_deserialize"):
                    continue
                meta.tree_keys.append(_dotted(entry["key_metadata"]))
        except (ValueError, KeyError, TypeError) as exc:
            meta.problems.append(f"unreadable _METADATA: {_short(exc)}")
            meta.use_ocdbt = "manifest.ocdbt" in files
    if "manifest.ocdbt" in files:
        meta.use_ocdbt = True
    if meta.use_ocdbt:
        if "manifest.ocdbt" not in files:
            meta.problems.append("missing manifest.ocdbt (the checkpoint says it uses OCDBT)")
        else:
            _read_ocdbt(meta, store, files, remote=is_gs_uri(uri))
    else:
        _read_plain(meta, store, files)
    _check_commit(meta, uri, client)
    return meta


def _check_commit(meta: CheckpointMeta, uri: str, client: Any) -> None:
    """Orbax writes <step>/_CHECKPOINT_METADATA with commit_timestamp_nsecs when a save is finalized."""
    parent = uri.rstrip("/").rsplit("/", 1)[0]
    store = open_store(parent, client)
    try:
        info = json.loads(store.read("_CHECKPOINT_METADATA"))
    except (OSError, ValueError) as exc:
        meta.warnings.append(f"no readable {parent}/_CHECKPOINT_METADATA ({_short(exc)}): save not known finalized")
        return
    except Exception as exc:  # google.api_core NotFound for gs://
        meta.warnings.append(f"no readable {parent}/_CHECKPOINT_METADATA ({_short(exc)}): save not known finalized")
        return
    if not info.get("commit_timestamp_nsecs"):
        meta.problems.append(f"{parent}/_CHECKPOINT_METADATA has no commit timestamp: the save was not finalized")
