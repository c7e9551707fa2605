"""`tpuserve convert verify` on real Orbax checkpoints written by orbax-checkpoint: correct and broken ones."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from tpuserve import llama
from tpuserve.convert import orbax_meta, storage
from tpuserve.convert.cli import _verify
from tpuserve.convert.expected import Layout
from tpuserve.convert.synthetic import random_params
from tpuserve.convert.verify import verify_checkpoint
from tpuserve_dev.tiny_checkpoint import TINY, upload_dir


def _cli(path: str, arch_json: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    import argparse

    from tpuserve.convert.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        ["convert", "verify", path, "--model", "llama2-7b", "--arch-json", str(arch_json), "--json", *extra]
    )
    assert args.func is _verify
    code = args.func(args)
    return code, json.loads(capsys.readouterr().out)


def test_correct_unscanned_passes(tiny_checkpoints: dict[str, Path], tiny_arch_json: Path, capsys: Any) -> None:
    code, report = _cli(str(tiny_checkpoints["unscanned"]), tiny_arch_json, capsys=capsys)
    assert code == 0, report["mismatches"]
    assert report["ok"]
    assert report["foundLayout"] == "unscanned"
    assert report["paramsChecked"] == 3 + 9 * TINY.num_layers
    assert report["parameterCount"] == TINY.num_parameters


def test_correct_scanned_passes_as_scanned(
    tiny_checkpoints: dict[str, Path], tiny_arch_json: Path, capsys: Any
) -> None:
    code, report = _cli(str(tiny_checkpoints["scanned"]), tiny_arch_json, "--layout", "scanned", capsys=capsys)
    assert code == 0, report["mismatches"]
    assert report["paramsChecked"] == 3 + 9


def test_scanned_given_where_unscanned_expected(
    tiny_checkpoints: dict[str, Path], tiny_arch_json: Path, capsys: Any
) -> None:
    code, report = _cli(str(tiny_checkpoints["scanned"]), tiny_arch_json, capsys=capsys)
    assert code == 1
    assert report["foundLayout"] == "scanned"
    assert len(report["mismatches"]) == 1
    assert report["mismatches"][0].startswith("layout: the checkpoint is scanned")


def test_real_model_shapes_reject_tiny_checkpoint(tiny_checkpoints: dict[str, Path]) -> None:
    report = verify_checkpoint(str(tiny_checkpoints["unscanned"]), llama.arch("llama2-7b"), Layout.UNSCANNED)
    assert not report.ok
    assert "wrong shape token_embedder.embedding: [256, 64], expected [32000, 4096]" in report.mismatches
    assert "missing layers decoder.layers_3 … decoder.layers_31 (29 layers, all 9 params of each)" in report.mismatches


def test_missing_layer(write_params: Callable[[dict[str, Any], str], Path]) -> None:
    params = random_params(TINY, Layout.UNSCANNED)
    for name in [n for n in params if n.startswith("decoder.layers_1.")]:
        del params[name]
    report = verify_checkpoint(str(write_params(params, "missing")), TINY, Layout.UNSCANNED)
    assert report.mismatches == ["missing layer decoder.layers_1 (all 9 of its params)"]


def test_wrong_shape_wrong_dtype_and_extra_key_in_one_list(write_params: Callable[[dict[str, Any], str], Path]) -> None:
    params = random_params(TINY, Layout.UNSCANNED)
    params["decoder.layers_2.mlp.wo.kernel"] = np.zeros((TINY.mlp_dim, TINY.d_model + 1), ml_dtypes.bfloat16)
    params["decoder.layers_0.self_attention.key.kernel"] = params["decoder.layers_0.self_attention.key.kernel"].astype(
        np.float32
    )
    del params["decoder.decoder_norm.scale"]
    params["decoder.layers_0.extra.kernel"] = np.zeros((4,), ml_dtypes.bfloat16)
    report = verify_checkpoint(str(write_params(params, "broken")), TINY, Layout.UNSCANNED)
    assert sorted(report.mismatches) == sorted(
        [
            "wrong shape decoder.layers_2.mlp.wo.kernel: [128, 65], expected [128, 64]",
            "wrong dtype decoder.layers_0.self_attention.key.kernel: float32, expected bfloat16",
            "missing decoder.decoder_norm.scale (expected [64] bfloat16)",
            "unexpected decoder.layers_0.extra.kernel [4] bfloat16 (not in llama2-7b)",
        ]
    )
    rendered = report.render()
    assert "4 mismatch(es):" in rendered


def _largest_data_file(items: Path) -> Path:
    files = [p for p in items.rglob("*") if p.is_file() and p.parent.name == "d"]
    return max(files, key=lambda p: p.stat().st_size)


def test_truncated_data_file(checkpoint_copy: Callable[[str], Path]) -> None:
    items = checkpoint_copy("unscanned")
    victim = _largest_data_file(items)
    size = victim.stat().st_size
    with victim.open("r+b") as handle:
        handle.truncate(size // 2)
    report = verify_checkpoint(str(items), TINY, Layout.UNSCANNED)
    rel = victim.relative_to(items).as_posix()
    assert any(m.startswith(f"truncated data file {rel}: {size // 2} bytes") for m in report.mismatches), (
        report.mismatches
    )


def test_truncated_ocdbt_manifest(checkpoint_copy: Callable[[str], Path]) -> None:
    items = checkpoint_copy("unscanned")
    manifest = items / "manifest.ocdbt"
    manifest.write_bytes(manifest.read_bytes()[:20])
    report = verify_checkpoint(str(items), TINY, Layout.UNSCANNED)
    assert report.mismatches[0].startswith("unreadable OCDBT manifest")


def test_truncated_metadata_json(checkpoint_copy: Callable[[str], Path]) -> None:
    items = checkpoint_copy("unscanned")
    meta = items / "_METADATA"
    meta.write_bytes(meta.read_bytes()[:100])
    report = verify_checkpoint(str(items), TINY, Layout.UNSCANNED)
    assert any(m.startswith("unreadable _METADATA") for m in report.mismatches)


def test_deleted_data_file(checkpoint_copy: Callable[[str], Path]) -> None:
    items = checkpoint_copy("unscanned")
    victim = _largest_data_file(items)
    victim.unlink()
    report = verify_checkpoint(str(items), TINY, Layout.UNSCANNED)
    assert (
        f"missing data file {victim.relative_to(items).as_posix()} (referenced by the OCDBT index)" in report.mismatches
    )


def test_empty_or_absent_directory(tmp_path: Path) -> None:
    report = verify_checkpoint(str(tmp_path / "nothing"), TINY, Layout.UNSCANNED)
    assert not report.ok
    assert len(report.mismatches) == 1
    assert report.mismatches[0].startswith("no checkpoint at")


def test_unfinalized_save_is_a_mismatch(checkpoint_copy: Callable[[str], Path]) -> None:
    items = checkpoint_copy("unscanned")
    step_meta = items.parent / "_CHECKPOINT_METADATA"
    data = json.loads(step_meta.read_text())
    data["commit_timestamp_nsecs"] = None
    step_meta.write_text(json.dumps(data))
    report = verify_checkpoint(str(items), TINY, Layout.UNSCANNED)
    assert any("was not finalized" in m for m in report.mismatches)


def test_verify_on_gcs_reads_metadata_not_weights(
    gcs_client: Any, gcs_bucket: str, tiny_checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_dir(gcs_client, gcs_bucket, tiny_checkpoints["unscanned"].parent, "ck/0")
    uri = f"gs://{gcs_bucket}/ck/0/items"
    read_bytes: list[int] = []
    original = storage.open_store  # what orbax_meta imported and calls

    def counting_store(u: str, client: Any = None) -> Any:
        store = original(u, client)
        real_read = store.read

        def read(name: str, start: int | None = None, length: int | None = None) -> bytes:
            data = real_read(name, start, length)
            read_bytes.append(len(data))
            return data

        store.read = read  # type: ignore[method-assign]
        return store

    monkeypatch.setattr(orbax_meta, "open_store", counting_store)
    report = verify_checkpoint(uri, TINY, Layout.UNSCANNED, client=gcs_client)
    assert report.ok, report.mismatches
    data_bytes = sum(p.stat().st_size for p in tiny_checkpoints["unscanned"].rglob("*") if p.parent.name == "d")
    # Manifest, index nodes and JSON metadata only: far less than the weights in the data files.
    assert sum(read_bytes) < data_bytes / 4, (sum(read_bytes), data_bytes)


def test_truncated_file_on_gcs(gcs_client: Any, gcs_bucket: str, checkpoint_copy: Callable[[str], Path]) -> None:
    items = checkpoint_copy("unscanned")
    victim = _largest_data_file(items)
    with victim.open("r+b") as handle:
        handle.truncate(victim.stat().st_size // 2)
    upload_dir(gcs_client, gcs_bucket, items.parent, "ck/0")
    report = verify_checkpoint(f"gs://{gcs_bucket}/ck/0/items", TINY, Layout.UNSCANNED, client=gcs_client)
    assert any(m.startswith("truncated data file") for m in report.mismatches), report.mismatches


def test_multi_level_ocdbt_index_is_walked(tmp_path: Path) -> None:
    """A database whose B+tree has interior nodes (tiny node size): keys must be rebuilt from the prefixes."""
    import tensorstore as ts

    items = tmp_path / "items"
    kv = ts.KvStore.open(
        {"driver": "ocdbt", "base": f"file://{items}/", "config": {"max_decoded_node_bytes": 256}}
    ).result()
    expected: dict[str, tuple[int, ...]] = {}
    with ts.Transaction() as txn:
        for i in range(12):
            name = f"params.params.decoder.layers_{i}.mlp.wo.kernel"
            meta = {
                "zarr_format": 3,
                "node_type": "array",
                "shape": [8, 4],
                "data_type": "bfloat16",
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [8, 4]}},
            }
            kv.with_transaction(txn)[f"{name}/zarr.json"] = json.dumps(meta).encode()
            kv.with_transaction(txn)[f"{name}/c/0/0"] = b"x" * 2000
            expected[name] = (8, 4)
    (items / "_METADATA").write_text(json.dumps({"tree_metadata": {}, "use_ocdbt": True, "use_zarr3": True}))
    assert kv.base is not None
    assert ts.ocdbt.dump(kv.base).result()["versions"][-1]["root_height"] > 0
    checkpoint = orbax_meta.read_checkpoint_meta(str(items))
    assert {n: a.shape for n, a in checkpoint.arrays.items()} == expected
    assert all(a.chunks_found == 1 for a in checkpoint.arrays.values())
    listed = {k.decode().split("/")[0] for k in kv.list().result()}
    assert listed == set(checkpoint.arrays)


@pytest.mark.parametrize("zarr3", [False, True])
def test_checkpoint_without_ocdbt(tmp_path: Path, zarr3: bool) -> None:
    """Orbax without OCDBT (one directory per array, zarr v2 `.zarray` or zarr3 `zarr.json`): read as plain files."""
    import jax
    import orbax.checkpoint as ocp

    from tpuserve.convert.synthetic import nest

    params = random_params(TINY, Layout.UNSCANNED)
    state = {"step": 0, "params": {"params": nest(params)}, "opt_state": {}}
    manager = ocp.CheckpointManager(
        str(tmp_path / "plain"),
        item_names=("items",),
        item_handlers={"items": ocp.PyTreeCheckpointHandler(use_ocdbt=False, use_zarr3=zarr3)},
        options=ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False),
    )
    manager.save(0, args=ocp.args.Composite(items=ocp.args.PyTreeSave(item=jax.tree.map(np.asarray, state))))
    manager.wait_until_finished()
    manager.close()
    items = tmp_path / "plain/0/items"
    assert not (items / "manifest.ocdbt").exists()
    report = verify_checkpoint(str(items), TINY, Layout.UNSCANNED)
    assert report.ok, report.mismatches
    assert report.params_checked == 3 + 9 * TINY.num_layers
