"""Checkpoint verification's verdicts, message by message, from metadata built in memory (compare is pure) and from
small hand-written zarr3 checkpoints on disk (no OCDBT: one directory per array, as Orbax writes with use_ocdbt=False).
These are the tests `make mutation` runs against convert/verify.py; tests/convert/test_verify.py runs the same
verifier on real Orbax checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tpuserve import llama
from tpuserve.convert.expected import PARAMS_ROOT, Layout, ParamSpec, expected_params
from tpuserve.convert.orbax_meta import ArrayMeta, CheckpointMeta
from tpuserve.convert.verify import VerifyReport, compare, detect_layout, verify_checkpoint, verify_quantized

# 6 layers, so that missing layers can form two separate runs.
ARCH = llama.LlamaArch(
    name="llama2-7b",
    num_layers=6,
    d_model=8,
    num_heads=2,
    num_kv_heads=1,
    head_dim=4,
    mlp_dim=16,
    vocab_size=32,
    meta_shards=1,
    maxtext_tokenizer="assets/tokenizer.llama2",
)
PATH = "/ckpt/0/items"
LAYER_PARAMS = 9


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def checkpoint(
    layout: Layout = Layout.UNSCANNED,
    *,
    drop: tuple[str, ...] = (),
    change: dict[str, ParamSpec] | None = None,
    tree_keys: bool = True,
) -> CheckpointMeta:
    """Metadata of a complete checkpoint of ARCH (one chunk per array), less `drop`, with `change` applied."""
    specs = {n: s for n, s in expected_params(ARCH, layout).items() if n not in drop} | (change or {})
    arrays = {PARAMS_ROOT + n: ArrayMeta(PARAMS_ROOT + n, s.shape, s.dtype, s.shape, 1) for n, s in specs.items()}
    keys = [PARAMS_ROOT + n for n in expected_params(ARCH, layout)] if tree_keys else []
    return CheckpointMeta(path=PATH, tree_keys=keys, arrays=arrays, total_bytes=123_456)


def layer(i: int) -> tuple[str, ...]:
    return tuple(n for n in expected_params(ARCH, Layout.UNSCANNED) if n.startswith(f"decoder.layers_{i}."))


def test_a_complete_checkpoint_passes_and_is_counted() -> None:
    report = compare(checkpoint(), ARCH, Layout.UNSCANNED)
    assert report.ok
    assert report.mismatches == []
    assert report.warnings == []
    assert (report.path, report.model, report.expected_layout, report.found_layout, report.dtype) == (
        PATH,
        "llama2-7b",
        Layout.UNSCANNED,
        Layout.UNSCANNED,
        "bfloat16",
    )
    assert report.params_checked == 3 + LAYER_PARAMS * ARCH.num_layers
    assert report.parameter_count == ARCH.num_parameters
    assert report.checkpoint_bytes == 123_456


def test_a_scanned_checkpoint_passes_as_scanned() -> None:
    report = compare(checkpoint(Layout.SCANNED), ARCH, Layout.SCANNED)
    assert report.ok
    assert report.found_layout is Layout.SCANNED
    assert report.params_checked == 3 + LAYER_PARAMS
    assert report.parameter_count == ARCH.num_parameters


def test_the_expected_dtype_is_a_parameter() -> None:
    as_float32 = {n: ParamSpec(s.shape, "float32") for n, s in expected_params(ARCH, Layout.UNSCANNED).items()}
    assert compare(checkpoint(change=as_float32), ARCH, Layout.UNSCANNED, "float32").ok
    report = compare(checkpoint(), ARCH, Layout.UNSCANNED, "float32")
    assert "wrong dtype token_embedder.embedding: bfloat16, expected float32" in report.mismatches


def test_integrity_problems_and_warnings_come_first() -> None:
    meta = checkpoint()
    meta.problems = ["truncated data file d/abc: 10 bytes, the index references byte 20"]
    meta.warnings = ["no readable /ckpt/0/_CHECKPOINT_METADATA: save not known finalized"]
    report = compare(meta, ARCH, Layout.UNSCANNED)
    assert report.mismatches == meta.problems
    assert report.warnings == meta.warnings


def test_compare_leaves_the_metadata_as_read() -> None:
    meta = chunked(False, 3)
    meta.problems = ["a problem"]
    meta.warnings = ["a warning"]
    meta.arrays[PARAMS_ROOT + "decoder.extra"] = ArrayMeta(PARAMS_ROOT + "decoder.extra", (2,), "bfloat16", (2,), 1)
    report = compare(meta, ARCH, Layout.UNSCANNED)
    assert (len(report.mismatches), len(report.warnings)) == (2, 2)  # one added to each
    assert (meta.problems, meta.warnings) == (["a problem"], ["a warning"])


def test_nothing_readable() -> None:
    empty = CheckpointMeta(path=PATH)
    assert compare(empty, ARCH, Layout.UNSCANNED).mismatches == ["no arrays found in the checkpoint"]
    empty.problems = ["no checkpoint at /ckpt/0/items: the directory is empty or does not exist"]
    assert compare(empty, ARCH, Layout.UNSCANNED).mismatches == empty.problems  # the reason, without noise


def test_arrays_outside_the_params_tree() -> None:
    meta = CheckpointMeta(
        path=PATH,
        arrays={n: ArrayMeta(n, (1,), "int32", (1,), 1) for n in ("step", "opt_state.mu.x", "opt_state.nu.x")},
    )
    report = compare(meta, ARCH, Layout.UNSCANNED)
    assert report.mismatches == [
        "no parameters under 'params.params.' (top-level keys: opt_state, step); not a MaxText Linen checkpoint"
    ]
    assert report.found_layout is None
    assert report.params_checked == 0


def test_scanned_where_unscanned_is_expected_is_one_mismatch() -> None:
    report = compare(checkpoint(Layout.SCANNED), ARCH, Layout.UNSCANNED)
    assert report.mismatches == [
        "layout: the checkpoint is scanned (decoder.layers.* stacked on axis 1) but unscanned is expected; "
        "a server loads the unscanned checkpoint (…/unscanned/checkpoints/0/items)"
    ]
    assert report.params_checked == 3 + LAYER_PARAMS  # checked as what it is
    assert (report.expected_layout, report.found_layout) == (Layout.UNSCANNED, Layout.SCANNED)


def test_unscanned_where_scanned_is_expected_is_one_mismatch() -> None:
    report = compare(checkpoint(), ARCH, Layout.SCANNED)
    assert report.mismatches == ["layout: the checkpoint is unscanned (decoder.layers_N.*) but scanned is expected"]
    assert report.params_checked == 3 + LAYER_PARAMS * ARCH.num_layers


def test_missing_layers_are_grouped_into_runs() -> None:
    report = compare(
        checkpoint(drop=layer(0) + layer(1) + layer(2) + layer(4), tree_keys=False), ARCH, Layout.UNSCANNED
    )
    assert report.mismatches == [
        "missing layers decoder.layers_0 … decoder.layers_2 (3 layers, all 9 params of each)",
        "missing layer decoder.layers_4 (all 9 of its params)",
    ]
    assert report.params_checked == 3 + LAYER_PARAMS * 2


def test_two_adjacent_missing_layers_are_one_run() -> None:
    report = compare(checkpoint(drop=layer(4) + layer(5), tree_keys=False), ARCH, Layout.UNSCANNED)
    assert report.mismatches == ["missing layers decoder.layers_4 … decoder.layers_5 (2 layers, all 9 params of each)"]


def test_a_partly_missing_layer_names_each_missing_param() -> None:
    drop = ("decoder.layers_3.mlp.wo.kernel", "decoder.layers_3.mlp.wi_0.kernel", "decoder.layers_5.mlp.wo.kernel")
    report = compare(checkpoint(drop=drop, tree_keys=False), ARCH, Layout.UNSCANNED)
    assert report.mismatches == [
        "missing decoder.layers_3.mlp.wi_0.kernel",
        "missing decoder.layers_3.mlp.wo.kernel",
        "missing decoder.layers_5.mlp.wo.kernel",
    ]


def test_a_missing_param_outside_the_layers() -> None:
    report = compare(checkpoint(drop=("decoder.decoder_norm.scale",), tree_keys=False), ARCH, Layout.UNSCANNED)
    assert report.mismatches == ["missing decoder.decoder_norm.scale (expected [8] bfloat16)"]


def test_a_param_listed_in_the_tree_but_without_its_array() -> None:
    meta = checkpoint(drop=("decoder.decoder_norm.scale",))
    meta.tree_keys.append(PARAMS_ROOT + "decoder.extra.scale")  # listed, not expected: not reported twice
    meta.tree_keys.append("opt_state.mu")  # outside the params tree: ignored
    report = compare(meta, ARCH, Layout.UNSCANNED)
    assert report.mismatches == [
        "missing decoder.decoder_norm.scale (expected [8] bfloat16)",
        "decoder.decoder_norm.scale is listed in _METADATA but its array is absent",
    ]


def test_wrong_shape_wrong_dtype_and_unexpected_arrays() -> None:
    change = {
        "decoder.layers_2.mlp.wo.kernel": ParamSpec((16, 9)),
        "decoder.layers_0.self_attention.key.kernel": ParamSpec((8, 1, 4), "float32"),
        "decoder.layers_0.extra.kernel": ParamSpec((4, 2)),
    }
    report = compare(checkpoint(change=change), ARCH, Layout.UNSCANNED)
    assert report.mismatches == [
        "wrong dtype decoder.layers_0.self_attention.key.kernel: float32, expected bfloat16",
        "wrong shape decoder.layers_2.mlp.wo.kernel: [16, 9], expected [16, 8]",
        "unexpected decoder.layers_0.extra.kernel [4, 2] bfloat16 (not in llama2-7b)",
    ]
    assert report.params_checked == 3 + LAYER_PARAMS * ARCH.num_layers
    assert report.parameter_count == ARCH.num_parameters + 16 * 9 - 16 * 8 + 4 * 2  # every array in the tree


def test_a_scalar_array_counts_one_parameter() -> None:
    report = compare(checkpoint(change={"decoder.layers_0.extra.scalar": ParamSpec(())}), ARCH, Layout.UNSCANNED)
    assert report.parameter_count == ARCH.num_parameters + 1
    assert "unexpected decoder.layers_0.extra.scalar [] bfloat16 (not in llama2-7b)" in report.mismatches


def chunked(stores_fill_value_chunks: bool, chunks_found: int) -> CheckpointMeta:
    meta = checkpoint()
    name = PARAMS_ROOT + "token_embedder.embedding"  # [32, 8] in 4 chunks of [16, 4]
    meta.arrays[name] = ArrayMeta(name, (32, 8), "bfloat16", (16, 4), chunks_found)
    meta.stores_fill_value_chunks = stores_fill_value_chunks
    return meta


def test_missing_chunks_fail_when_orbax_stores_every_chunk() -> None:
    report = compare(chunked(True, 3), ARCH, Layout.UNSCANNED)
    assert report.mismatches == ["incomplete token_embedder.embedding: 3 of 4 chunks stored"]
    assert compare(chunked(True, 4), ARCH, Layout.UNSCANNED).ok


def test_missing_chunks_only_warn_when_fill_value_chunks_may_be_omitted() -> None:
    report = compare(chunked(False, 3), ARCH, Layout.UNSCANNED)
    assert report.ok
    assert report.warnings == [
        "incomplete token_embedder.embedding: 3 of 4 chunks stored (fill-value chunks may be omitted)"
    ]
    assert compare(chunked(False, 4), ARCH, Layout.UNSCANNED).warnings == []


def test_detect_layout() -> None:
    assert detect_layout(["decoder.layers.mlp.wo.kernel", "decoder.layers_0.mlp.wo.kernel"]) is Layout.SCANNED
    assert detect_layout(["token_embedder.embedding", "decoder.layers_12.mlp.wo.kernel"]) is Layout.UNSCANNED
    assert detect_layout(["token_embedder.embedding", "xdecoder.layers_1.a", "decoder.layersX"]) is None


def test_render() -> None:
    report = VerifyReport(PATH, "llama2-7b", Layout.UNSCANNED, Layout.UNSCANNED, "bfloat16")
    report.params_checked, report.parameter_count = 57, 1234567
    report.checkpoint_bytes, report.seconds = 2_005_000_001, 1.5
    assert report.render() == (
        "/ckpt/0/items: OK — llama2-7b, unscanned layout, bfloat16; 57 params checked, 1,234,567 parameters, "
        "2.01 GB in files, 1.50 s"
    )
    report.mismatches = ["missing a", "missing b"]
    report.warnings = ["slow"]
    assert report.render().splitlines() == [
        "/ckpt/0/items: MISMATCH — llama2-7b, unscanned layout, bfloat16; 57 params checked, 1,234,567 parameters, "
        "2.01 GB in files, 1.50 s",
        "2 mismatch(es):",
        "  - missing a",
        "  - missing b",
        "  warning: slow",
    ]


# --- On disk: the same verdicts through the real reader, on hand-written zarr3 arrays (plain, no OCDBT).


def write_checkpoint(items: Path, shapes: dict[str, tuple[int, ...]], *, finalized: bool = True) -> None:
    """An Orbax-style items directory: _METADATA, one zarr3 array directory per name, one chunk file each."""
    items.mkdir(parents=True)
    (items / "_METADATA").write_text(json.dumps({"tree_metadata": {}, "use_ocdbt": False, "use_zarr3": True}))
    for name, shape in shapes.items():
        array = items / name
        (array / "c").mkdir(parents=True)
        zarr = {
            "zarr_format": 3,
            "node_type": "array",
            "shape": list(shape),
            "data_type": "bfloat16",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(shape)}},
        }
        (array / "zarr.json").write_text(json.dumps(zarr))
        (array / "c" / "0").write_bytes(b"\0" * 2 * numel(shape))
    commit = {"commit_timestamp_nsecs": 1} if finalized else {}
    (items.parent / "_CHECKPOINT_METADATA").write_text(json.dumps(commit))


def params(layout: Layout = Layout.UNSCANNED) -> dict[str, tuple[int, ...]]:
    return {PARAMS_ROOT + n: s.shape for n, s in expected_params(ARCH, layout).items()}


def test_verify_checkpoint_reads_and_compares(tmp_path: Path) -> None:
    items = tmp_path / "0" / "items"
    write_checkpoint(items, params())
    report = verify_checkpoint(str(items), ARCH)
    assert report.ok, report.mismatches
    assert report.params_checked == 3 + LAYER_PARAMS * ARCH.num_layers
    assert report.checkpoint_bytes == sum(p.stat().st_size for p in items.rglob("*") if p.is_file())
    assert 0 <= report.seconds < 60  # measured around the read, not a clock reading
    scanned = verify_checkpoint(str(items), ARCH, Layout.SCANNED)
    assert scanned.expected_layout is Layout.SCANNED
    assert len(scanned.mismatches) == 1
    assert not verify_checkpoint(str(items), ARCH, dtype="float32").ok


def test_verify_quantized_passes_a_complete_tree(tmp_path: Path) -> None:
    items = tmp_path / "0" / "items"
    shapes = params() | {PARAMS_ROOT + "decoder.layers_0.mlp.wo.kernel.qrhs.scale": (1, 8)}  # AQT adds leaves
    write_checkpoint(items, shapes)
    report = verify_quantized(str(items), ARCH)
    assert report.ok, report.mismatches
    assert (report.path, report.model, report.expected_layout, report.found_layout, report.dtype) == (
        str(items),
        "llama2-7b",
        Layout.UNSCANNED,
        Layout.UNSCANNED,
        "quantized",
    )
    assert report.params_checked == len(shapes)
    assert report.parameter_count == sum(numel(s) for s in shapes.values())
    assert report.checkpoint_bytes == sum(p.stat().st_size for p in items.rglob("*") if p.is_file())
    assert report.warnings == []
    assert 0 <= report.seconds < 60


def test_verify_quantized_names_what_is_missing(tmp_path: Path) -> None:
    items = tmp_path / "0" / "items"
    keep = {
        n: s
        for n, s in params().items()
        if not n.startswith((PARAMS_ROOT + "token_embedder.", PARAMS_ROOT + "decoder.layers_2."))
        and not n.startswith(PARAMS_ROOT + "decoder.layers_4.")
    }
    write_checkpoint(items, keep)
    report = verify_quantized(str(items), ARCH)
    assert report.mismatches == [
        "missing token_embedder",
        "missing layer decoder.layers_2",
        "missing layer decoder.layers_4",
    ]


def test_verify_quantized_without_a_decoder_norm(tmp_path: Path) -> None:
    items = tmp_path / "0" / "items"
    write_checkpoint(items, {n: s for n, s in params().items() if "decoder_norm" not in n})
    assert verify_quantized(str(items), ARCH).mismatches == ["missing decoder.decoder_norm"]


def test_verify_quantized_outside_the_params_tree(tmp_path: Path) -> None:
    items = tmp_path / "0" / "items"
    write_checkpoint(items, {"opt_state.mu": (4,), "step": (1,)})
    report = verify_quantized(str(items), ARCH)
    assert report.mismatches == ["no parameters under 'params.params.'"]  # and not every layer again
    assert (report.params_checked, report.parameter_count) == (0, 0)


def test_verify_quantized_passes_integrity_problems_on(tmp_path: Path) -> None:
    items = tmp_path / "0" / "items"
    write_checkpoint(items, params(), finalized=False)
    report = verify_quantized(str(items), ARCH)
    assert report.mismatches == [
        f"{tmp_path / '0'}/_CHECKPOINT_METADATA has no commit timestamp: the save was not finalized"
    ]
    (items.parent / "_CHECKPOINT_METADATA").unlink()  # saved without a step directory: not worth a warning
    assert verify_quantized(str(items), ARCH).warnings == []
    (items / "token_embedder.embedding").mkdir()
    (items / "token_embedder.embedding" / ".zarray").write_text("{not json")
    broken = verify_quantized(str(items), ARCH)
    assert broken.mismatches
    assert broken.mismatches[0].startswith("unreadable array metadata for token_embedder")


def test_verify_quantized_of_nothing(tmp_path: Path) -> None:
    report = verify_quantized(str(tmp_path / "absent"), ARCH)
    assert report.mismatches == [f"no checkpoint at {tmp_path / 'absent'}: the directory is empty or does not exist"]
    assert report.params_checked == 0


@pytest.mark.parametrize("layout", [Layout.UNSCANNED, Layout.SCANNED])
def test_verify_checkpoint_of_nothing(tmp_path: Path, layout: Layout) -> None:
    report = verify_checkpoint(str(tmp_path / "absent"), ARCH, layout)
    assert len(report.mismatches) == 1
    assert report.mismatches[0].startswith("no checkpoint at")
