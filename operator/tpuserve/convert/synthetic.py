"""A stand-in for MaxText's two conversion steps that writes REAL Orbax checkpoints (orbax-checkpoint + jax on
CPU), for tests and for machines without MaxText (it needs Python >= 3.12; this project's dev machines have 3.11).

- `scanned`: writes a MaxText-shaped TrainState {"step", "params": {"params": tree}, "opt_state": {}} with the
  scanned tree of `expected.expected_params` filled with random bfloat16 weights. It does NOT read the Meta
  `.pth` files (no torch here): the weights are not the model's.
- `unscanned`: restores the scanned checkpoint's params with Orbax and unrolls axis 1 into `decoder.layers_{i}`
  (what MaxText's generate_param_only_checkpoint does with force_unroll=true), casting to bfloat16, and saves
  a param-only TrainState. This is a real transform of real data.
Saving uses the options MaxText uses (PyTreeCheckpointHandler with use_ocdbt=True, use_zarr3=True, a
CheckpointManager writing step 0, synchronous), with arrays sharded over the available CPU devices.

Run as `python -m tpuserve.convert.synthetic {scanned,unscanned} ...` (the runner does, like it runs MaxText).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tpuserve import llama
from tpuserve.convert.expected import Layout, expected_params

DEVICES_ENV = "TPUSERVE_SYNTHETIC_DEVICES"
TARGET_DATA_FILE_BYTES = 2 * 1024**3  # MaxText's checkpoint_storage_target_data_file_size_bytes default


def load_arch(model: str, arch_json: str | None) -> llama.LlamaArch:
    if arch_json:
        return llama.from_override(model, json.loads(Path(arch_json).read_text()))
    return llama.arch(model)


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        node = tree
        parts = name.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return tree


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def random_params(arch: llama.LlamaArch, layout: Layout, *, seed: int = 0) -> dict[str, Any]:
    """Flat name -> numpy bfloat16 array, with the shapes MaxText's converter writes."""
    import ml_dtypes
    import numpy as np

    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for name, spec in expected_params(arch, layout).items():
        # random bits in the bfloat16 range of N(0, 0.02): cheap to make, incompressible like real weights
        values = rng.standard_normal(spec.shape, dtype=np.float32) * 0.02
        out[name] = values.astype(ml_dtypes.bfloat16)
    return out


def _orbax() -> Any:
    import orbax.checkpoint as ocp

    return ocp


def _shard(value: Any) -> Any:
    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = jax.devices()
    ndev = len(devices)
    if ndev > 1 and value.ndim > 0 and value.shape[0] % ndev == 0:
        mesh = Mesh(np.array(devices), ("x",))
        return jax.device_put(value, NamedSharding(mesh, PartitionSpec("x")))
    return jax.device_put(value)


def save_train_state(checkpoint_dir: Path, params_flat: dict[str, Any]) -> Path:
    """Save {"step": 0, "params": {"params": tree}, "opt_state": {}} at checkpoint_dir/0/items like MaxText."""
    import jax

    ocp = _orbax()

    params = {name: _shard(value) for name, value in params_flat.items()}
    state = {"step": 0, "params": {"params": nest(params)}, "opt_state": {}}
    manager = ocp.CheckpointManager(
        str(checkpoint_dir),
        item_names=("items",),
        item_handlers={"items": ocp.PyTreeCheckpointHandler(use_ocdbt=True, use_zarr3=True)},
        options=ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False),
    )
    save_args = jax.tree.map(lambda _: ocp.SaveArgs(chunk_byte_size=TARGET_DATA_FILE_BYTES), state)
    args = ocp.args.PyTreeSave(item=state, save_args=save_args, ocdbt_target_data_file_size=TARGET_DATA_FILE_BYTES)
    manager.save(0, args=ocp.args.Composite(items=args))
    manager.wait_until_finished()
    manager.close()
    return checkpoint_dir / "0" / "items"


def save_quantized_stand_in(output_dir: Path, params: dict[str, Any]) -> Path:
    """NOT quantization: int8 casts of scaled weights, saved as MaxText saves quantized params
    (`PyTreeCheckpointer(use_ocdbt=True, use_zarr3=True).save(dir, {"params": params})`, no step directory)."""
    import numpy as np

    ocp = _orbax()
    tree = {}
    for name, value in params.items():
        scale = float(np.max(np.abs(value.astype(np.float32)))) or 1.0
        tree[name] = np.round(value.astype(np.float32) / scale * 127).astype(np.int8)
    with ocp.PyTreeCheckpointer(use_ocdbt=True, use_zarr3=True) as checkpointer:
        checkpointer.save(str(output_dir), {"params": {"params": nest(tree)}}, force=True)
    return output_dir


def restore_params(items_dir: Path) -> dict[str, Any]:
    """Flat name (without the params.params root) -> numpy array, restored from an Orbax items directory."""
    import numpy as np

    ocp = _orbax()

    with ocp.PyTreeCheckpointer() as checkpointer:
        meta = checkpointer.metadata(str(items_dir))
        tree_meta = meta.item_metadata.tree if hasattr(meta, "item_metadata") else meta.tree
        restored = checkpointer.restore(
            str(items_dir), args=ocp.args.PyTreeRestore(item=None, restore_args=_restore_args_like(tree_meta))
        )
    return {name: np.asarray(value) for name, value in flatten(restored["params"]["params"]).items()}


def _restore_args_like(tree: Any) -> Any:
    import numpy as np

    ocp = _orbax()

    if isinstance(tree, dict):
        return {k: _restore_args_like(v) for k, v in tree.items()}
    return ocp.RestoreArgs(restore_type=np.ndarray)


def unroll(params: dict[str, Any], num_layers: int) -> dict[str, Any]:
    """Scanned -> unscanned: split `decoder.layers.*` along axis 1 into `decoder.layers_{i}.*`, cast to bfloat16."""
    import ml_dtypes
    import numpy as np

    out: dict[str, Any] = {}
    for name, value in params.items():
        if name.startswith("decoder.layers."):
            rest = name[len("decoder.layers.") :]
            if value.shape[1] != num_layers:
                raise ValueError(f"{name}: axis 1 is {value.shape[1]}, expected {num_layers} layers")
            for i in range(num_layers):
                out[f"decoder.layers_{i}.{rest}"] = np.take(value, i, axis=1).astype(ml_dtypes.bfloat16)
        else:
            out[name] = value.astype(ml_dtypes.bfloat16)
    return out


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tpuserve.convert.synthetic", description=__doc__)
    parser.add_argument("step", choices=["scanned", "unscanned", "quantize"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--arch-json", default=None)
    parser.add_argument("--output", required=True, help="checkpoint directory (…/scanned or …/unscanned/checkpoints)")
    parser.add_argument(
        "--scanned-items", default=None, help="unscanned step: the scanned …/0/items to read (quantize: the unscanned)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    arch = load_arch(args.model, args.arch_json)
    if args.step == "scanned":
        items = save_train_state(Path(args.output), random_params(arch, Layout.SCANNED, seed=args.seed))
    elif args.step == "quantize":
        if not args.scanned_items:
            parser.error("the quantize step needs --scanned-items (the unscanned checkpoint)")
        items = save_quantized_stand_in(Path(args.output), restore_params(Path(args.scanned_items)))
    else:
        if not args.scanned_items:
            parser.error("the unscanned step needs --scanned-items")
        items = save_train_state(Path(args.output), unroll(restore_params(Path(args.scanned_items)), arch.num_layers))
    print(f"synthetic {args.step} checkpoint written at {items}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None, *, setup: Callable[[], None] | None = None) -> int:
    devices = os.environ.get(DEVICES_ENV, "4")
    if "jax" not in sys.modules:  # like MaxText's converter, spread arrays over simulated CPU devices
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    if setup:
        setup()
    return _main(argv)


if __name__ == "__main__":
    sys.exit(main())
