"""safetensors headers read from real files (two ranged reads each) and compared with expected tensors."""

from __future__ import annotations

import struct
from pathlib import Path

from tpuserve.convert.safetensors_header import FileHeader, compare_headers, parameter_count, read_header
from tpuserve.convert.storage import LocalStore
from tpuserve_dev.hf_model import safetensors_bytes

SHAPES = {"a.weight": (4, 8), "b.weight": (8,), "c.weight": (2, 3, 4)}


def _header(tmp_path: Path, data: bytes, name: str = "m.safetensors") -> FileHeader:
    (tmp_path / name).write_bytes(data)
    return read_header(LocalStore(tmp_path), name, len(data))


def test_a_whole_file_matches(tmp_path: Path) -> None:
    header = _header(tmp_path, safetensors_bytes(SHAPES))
    assert header.problems == []
    assert {n: t.shape for n, t in header.tensors.items()} == SHAPES
    assert compare_headers([header], SHAPES, "bfloat16", None) == []
    assert parameter_count([header]) == 32 + 8 + 24


def test_truncated_file_is_named(tmp_path: Path) -> None:
    data = safetensors_bytes(SHAPES)
    header = _header(tmp_path, data[:-10])
    assert any("truncated" in p and "m.safetensors" in p for p in header.problems), header.problems


def test_file_cut_inside_the_header(tmp_path: Path) -> None:
    header = _header(tmp_path, safetensors_bytes(SHAPES)[:20])
    assert header.problems
    assert "does not fit the file" in header.problems[0]


def test_garbage_is_not_safetensors(tmp_path: Path) -> None:
    header = _header(tmp_path, struct.pack("<Q", 6) + b"not js" + b"\0" * 16)
    assert header.problems
    assert "not JSON" in header.problems[0]


def test_shape_dtype_missing_unexpected_and_duplicates(tmp_path: Path) -> None:
    first = _header(tmp_path, safetensors_bytes({"a.weight": (8, 4), "x.weight": (2,)}), "1.safetensors")
    second = _header(tmp_path, safetensors_bytes({"a.weight": (4, 8)}, "float32"), "2.safetensors")
    problems = compare_headers([first, second], SHAPES, "bfloat16", None)
    assert "wrong shape a.weight: [8, 4], expected [4, 8] (1.safetensors)" in problems
    assert "unexpected tensor x.weight [2] BF16 in 1.safetensors" in problems
    assert "a.weight is stored twice (1.safetensors and 2.safetensors)" in problems
    assert "missing tensor b.weight (expected [8] BF16)" in problems
    assert "missing tensor c.weight (expected [2, 3, 4] BF16)" in problems
    # One shard of several: absent tensors are expected elsewhere.
    partial = compare_headers([second], SHAPES, "bfloat16", None, complete=False)
    assert partial == ["wrong dtype a.weight: F32, expected BF16 (2.safetensors)"]


def test_index_must_agree_with_the_files(tmp_path: Path) -> None:
    first = _header(tmp_path, safetensors_bytes({"a.weight": (4, 8), "b.weight": (8,)}), "1.safetensors")
    second = _header(tmp_path, safetensors_bytes({"c.weight": (2, 3, 4)}), "2.safetensors")
    good = {"weight_map": {"a.weight": "1.safetensors", "b.weight": "1.safetensors", "c.weight": "2.safetensors"}}
    assert compare_headers([first, second], SHAPES, "bfloat16", good) == []
    bad = {"weight_map": {"a.weight": "2.safetensors", "b.weight": "1.safetensors", "z.weight": "2.safetensors"}}
    problems = compare_headers([first, second], SHAPES, "bfloat16", bad)
    assert "model.safetensors.index.json puts a.weight in 2.safetensors, it is in 1.safetensors" in problems
    assert "model.safetensors.index.json lists z.weight in 2.safetensors, which does not hold it" in problems
    assert "model.safetensors.index.json does not list c.weight" in problems


def test_data_size_must_match_shape(tmp_path: Path) -> None:
    data = bytearray(safetensors_bytes({"a.weight": (4, 8)}))
    text = data[8:].split(b"}}", 1)[0].decode()
    assert '"shape":[4,8]' in text
    patched = bytes(data).replace(b'"shape":[4,8]', b'"shape":[4,9]')
    header = _header(tmp_path, patched)
    assert any("has 64 bytes of data, its shape and dtype need 72" in p for p in header.problems), header.problems


def test_rotary_inverse_frequencies_are_tolerated(tmp_path: Path) -> None:
    # Saved by older Llama 2 conversions; derived from config.json and skipped by vLLM's loader.
    shapes = {**SHAPES, "model.layers.0.self_attn.rotary_emb.inv_freq": (64,)}
    header = _header(tmp_path, safetensors_bytes(shapes))
    assert compare_headers([header], SHAPES, "bfloat16", None) == []
