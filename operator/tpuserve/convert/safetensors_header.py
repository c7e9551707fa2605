"""Read and check safetensors headers without the tensors: the 8-byte little-endian header length, then the JSON
header (tensor name -> dtype, shape, data_offsets), per the safetensors format (huggingface/safetensors, "Format").

Reading is two small ranged reads per file (`Store.read(name, start, length)`), so a 140 GB model in GCS is
checked in well under a second per shard. `compare_headers` is pure: every difference between a directory's
headers (plus its index) and what the catalog expects, in one list.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tpuserve.convert.storage import Store

INDEX_NAME = "model.safetensors.index.json"
SINGLE_FILE_NAME = "model.safetensors"
# A header is JSON describing the tensors; safetensors itself refuses headers over 100 MB.
MAX_HEADER_BYTES = 100_000_000
# safetensors dtype strings and their element sizes in bytes.
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}  # fmt: skip
# Buffers some older checkpoints saved beside the weights (Llama 2's HF conversion kept the rotary inverse
# frequencies); derived from config.json, and vLLM's Llama loader skips them ("rotary_emb.inv_freq" in
# load_weights), so they are neither expected nor an error.
DERIVED_BUFFER_SUFFIXES = (".rotary_emb.inv_freq",)
# The catalog's dtype names (torch_dtype in config.json) as safetensors spells them.
SAFETENSORS_DTYPE = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    begin: int  # data_offsets, relative to the byte after the header
    end: int


@dataclass
class FileHeader:
    name: str
    file_bytes: int
    header_bytes: int = 0
    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def read_header(store: Store, name: str, file_bytes: int) -> FileHeader:
    """The header of one safetensors file in `store` (problems listed, never raised for a malformed file)."""
    header = FileHeader(name, file_bytes)
    if file_bytes < 8:
        header.problems.append(f"{name}: {file_bytes} bytes, too short for a safetensors header")
        return header
    (length,) = struct.unpack("<Q", store.read(name, 0, 8))
    if length > MAX_HEADER_BYTES or 8 + length > file_bytes:
        header.problems.append(
            f"{name}: header length {length} does not fit the file ({file_bytes} bytes): truncated or not safetensors"
        )
        return header
    header.header_bytes = length
    try:
        raw: Any = json.loads(store.read(name, 8, length))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        header.problems.append(f"{name}: header is not JSON ({exc})")
        return header
    parse_header(header, raw)
    return header


def parse_header(header: FileHeader, raw: Any) -> None:
    """Fill `header.tensors` from the decoded JSON and check that the data offsets tile the file exactly."""
    name = header.name
    if not isinstance(raw, dict):
        header.problems.append(f"{name}: header is not a JSON object")
        return
    for tensor, entry in raw.items():
        if tensor == "__metadata__":
            continue
        try:
            begin, end = (int(x) for x in entry["data_offsets"])
            info = TensorInfo(str(entry["dtype"]), tuple(int(d) for d in entry["shape"]), begin, end)
        except (KeyError, TypeError, ValueError):
            header.problems.append(f"{name}: malformed header entry for {tensor}")
            continue
        header.tensors[tensor] = info
        element = DTYPE_BYTES.get(info.dtype)
        numel = 1
        for d in info.shape:
            numel *= d
        if element is not None and end - begin != numel * element:
            header.problems.append(
                f"{name}: {tensor} has {end - begin} bytes of data, its shape and dtype need {numel * element}"
            )
    data_bytes = header.file_bytes - 8 - header.header_bytes
    position = 0
    for tensor, info in sorted(header.tensors.items(), key=lambda item: item[1].begin):
        if info.begin != position:
            header.problems.append(f"{name}: {tensor} starts at data byte {info.begin}, expected {position}")
        position = max(position, info.end)
    if position > data_bytes:
        header.problems.append(
            f"{name}: the tensors need {position} bytes of data but the file holds {data_bytes}: truncated"
        )
    elif position < data_bytes:
        header.problems.append(f"{name}: {data_bytes - position} bytes after the last tensor's data")


def _fmt(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def compare_headers(
    headers: list[FileHeader],
    expected: Mapping[str, tuple[int, ...]],
    dtype: str,
    index: dict[str, Any] | None,
    *,
    complete: bool = True,
) -> list[str]:
    """Pure: every tensor name, shape and dtype difference against `expected` (name -> shape, all of `dtype`,
    a catalog dtype name), duplicates across files, and disagreements with the index's weight_map. With
    `complete=False` (one shard of several) expected tensors that are absent are not reported."""
    problems = [p for h in headers for p in h.problems]
    want_dtype = SAFETENSORS_DTYPE.get(dtype, dtype)
    where: dict[str, str] = {}
    for header in headers:
        for tensor, info in header.tensors.items():
            if tensor in where:
                problems.append(f"{tensor} is stored twice ({where[tensor]} and {header.name})")
                continue
            where[tensor] = header.name
            if tensor.endswith(DERIVED_BUFFER_SUFFIXES):
                continue
            shape = expected.get(tensor)
            if shape is None:
                problems.append(f"unexpected tensor {tensor} {_fmt(info.shape)} {info.dtype} in {header.name}")
                continue
            if info.shape != shape:
                problems.append(f"wrong shape {tensor}: {_fmt(info.shape)}, expected {_fmt(shape)} ({header.name})")
            if info.dtype != want_dtype:
                problems.append(f"wrong dtype {tensor}: {info.dtype}, expected {want_dtype} ({header.name})")
    if complete:
        missing = [t for t in expected if t not in where]
        problems += [f"missing tensor {t} (expected {_fmt(expected[t])} {want_dtype})" for t in missing]
    if index is not None:
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict):
            problems.append(f"{INDEX_NAME} has no weight_map")
        else:
            for tensor, file_name in sorted(weight_map.items()):
                if where.get(tensor, file_name) != file_name:
                    problems.append(f"{INDEX_NAME} puts {tensor} in {file_name}, it is in {where[tensor]}")
                elif tensor not in where:
                    problems.append(f"{INDEX_NAME} lists {tensor} in {file_name}, which does not hold it")
            problems += [f"{INDEX_NAME} does not list {t}" for t in sorted(set(where) - set(weight_map))]
    return problems


def parameter_count(headers: list[FileHeader]) -> int:
    total = 0
    for header in headers:
        for info in header.tensors.values():
            numel = 1
            for d in info.shape:
                numel *= d
            total += numel
    return total
