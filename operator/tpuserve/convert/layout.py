"""Where the converter's outputs live under an output base (a `gs://` URI or a local directory). Pure: no I/O."""

from __future__ import annotations

from tpuserve import llama

SCANNED_DIR = "scanned"
UNSCANNED_RUN_NAME = "unscanned"
MANIFEST_NAME = "tpuserve-manifest.json"
# Orbax writes the checkpoint of step 0 under <checkpoint dir>/0/items.
STEP_ITEMS = "0/items"
# Scratch the converter needs on local disk: the staged source, then the scanned and unscanned checkpoints
# (the source is deleted after the scanned step), plus slack for Orbax's temporary files.
WORK_DIR_FACTOR = 2.2
# Where that scratch is, unless --work-dir says otherwise (the operator mounts its scratch volume here).
DEFAULT_WORK_DIR = "/var/tmp/tpuserve-convert"


def join(base: str, *parts: str) -> str:
    """Join path parts onto a gs:// URI or local path with single slashes."""
    out = base.rstrip("/")
    for part in parts:
        part = part.strip("/")
        if part:
            out = f"{out}/{part}"
    return out


def scanned_dir(output: str) -> str:
    """MaxText's `--maxtext-model-path` for the scanned conversion."""
    return join(output, SCANNED_DIR)


def scanned_items(output: str) -> str:
    """The scanned Orbax checkpoint (MaxText TrainState, layers stacked on axis 1)."""
    return join(output, SCANNED_DIR, STEP_ITEMS)


def unscanned_items(output: str) -> str:
    """The unscanned param-only checkpoint: what a server's `load_parameters_path` takes."""
    return join(output, UNSCANNED_RUN_NAME, "checkpoints", STEP_ITEMS)


def manifest_path(output: str) -> str:
    return join(output, MANIFEST_NAME)


def work_dir_bytes(model: str, weight_dtype: str = "bfloat16") -> int:
    """Local scratch the conversion needs (for an emptyDir sizeLimit). MaxText stores bfloat16 whatever the
    weight dtype, and the source is bfloat16 too, so this is about 2.2 x the bfloat16 weights."""
    del weight_dtype  # the pinned MaxText writes bfloat16 checkpoints for any weight_dtype
    return int(llama.arch(model).weight_bytes("bfloat16") * WORK_DIR_FACTOR)


# `convert mirror` (LlamaCheckpoint format huggingface): the Hugging Face directory a vLLM server loads, beside
# the manifest (OUT/tpuserve-manifest.json).
HF_MODEL_DIR = "hf"


def hf_model_dir(output: str) -> str:
    return join(output, HF_MODEL_DIR)
