"""The pinned MaxText release and the exact commands the converter runs. Pure: argv lists, no I/O.

Pinned: `maxtext-v0.2.3` (2026-06-12), the last MaxText release whose default model representation is Linen
(`pure_nnx: false`): its param-only checkpoint is the `params.params.decoder.layers_{i}…` tree that MaxText's
JetStream server (and Google's maxengine-server images) load. maxtext-v0.2.4 switched the default to NNX.

What JetStream's `model_ckpt_conversion.sh` got wrong and this fixes: it calls `MaxText.llama_or_mistral_ckpt`
and `MaxText.generate_param_only_checkpoint`, module paths this release no longer has (now
`maxtext.checkpoint_conversion.standalone_scripts.llama_or_mistral_ckpt` and
`maxtext.utils.generate_param_only_checkpoint`); its Hugging Face check never fires and its documented
5-argument call leaves `--huggingface-checkpoint` without a value — here the flag is always given explicitly.
Every `key=value` passed to MaxText's config is a top-level key of the release's `configs/base.yml`
(pyconfig rejects any other key); tests/convert check this against a record of that file.
"""

from __future__ import annotations

from dataclasses import dataclass

from tpuserve.api import Quantization, WeightDtype

MAXTEXT_RELEASE = "maxtext-v0.2.3"
MAXTEXT_COMMIT = "3f36aef23439dd5875b48cbf294bbcba1996a726"
MAXTEXT_REPOSITORY = "https://github.com/AI-Hypercomputer/maxtext"

SCANNED_MODULE = "maxtext.checkpoint_conversion.standalone_scripts.llama_or_mistral_ckpt"
UNSCANNED_MODULE = "maxtext.utils.generate_param_only_checkpoint"
QUANTIZE_MODULE = "maxtext.checkpoint_conversion.load_and_quantize_checkpoint"
SERVER_MODULE = "maxtext.inference.maxengine.maxengine_server"
# Relative to the installed `maxtext` package directory.
BASE_CONFIG_IN_PACKAGE = "configs/base.yml"

# Quantization modes of the release's QuantizationType that make sense for a converted inference checkpoint, and
# the weight dtypes: the API's (LlamaCheckpoint spec.quantization, spec.weightDtype), which the conversion accepts.
QUANTIZATION_MODES = tuple(str(mode) for mode in Quantization)
WEIGHT_DTYPES = tuple(str(dtype) for dtype in WeightDtype)

# The environment MaxText's steps run with: CPU only (no TPU needed for Llama conversion).
CONVERSION_ENV = {"JAX_PLATFORMS": "cpu"}


@dataclass(frozen=True)
class ConversionPaths:
    source_dir: str  # staged Meta checkpoint (consolidated.NN.pth, params.json)
    scanned_dir: str  # MaxText writes <scanned_dir>/0/items
    scanned_items: str
    unscanned_base: str  # base_output_directory; MaxText writes <base>/<run_name>/checkpoints/0/items
    unscanned_run_name: str
    quantized_dir: str | None = None


def scanned_argv(python: str, model: str, paths: ConversionPaths) -> list[str]:
    """Meta .pth shards -> scanned Orbax checkpoint (layers stacked), OCDBT + zarr3 as the release defaults."""
    return [
        python,
        "-m",
        SCANNED_MODULE,
        "--base-model-path",
        paths.source_dir,
        "--maxtext-model-path",
        paths.scanned_dir,
        "--model-size",
        model,
        "--huggingface-checkpoint",
        "false",
        "--use-ocdbt",
        "true",
        "--use-zarr3",
        "true",
    ]


def unscanned_argv(python: str, base_config: str, model: str, weight_dtype: str, paths: ConversionPaths) -> list[str]:
    """Scanned checkpoint -> unscanned param-only checkpoint (what the server's load_parameters_path takes)."""
    if weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weight dtype {weight_dtype!r} not supported; use one of {', '.join(WEIGHT_DTYPES)}")
    return [
        python,
        "-m",
        UNSCANNED_MODULE,
        base_config,
        f"base_output_directory={paths.unscanned_base}",
        f"load_parameters_path={paths.scanned_items}",
        f"run_name={paths.unscanned_run_name}",
        f"model_name={model}",
        "force_unroll=true",
        "scan_layers=true",  # the input is scanned; force_unroll splits it into decoder.layers_{i}
        f"weight_dtype={weight_dtype}",
        "async_checkpointing=false",
        "enable_checkpointing=true",
        "checkpoint_storage_use_ocdbt=true",
        "checkpoint_storage_use_zarr3=true",
        "pure_nnx=false",  # explicit: the server loads the Linen tree
        "hardware=cpu",
        "skip_jax_distributed_system=true",
        "per_device_batch_size=1",
    ]


def quantize_argv(
    python: str, base_config: str, model: str, quantization: str, unscanned_items: str, output_dir: str
) -> list[str]:
    """Unscanned bf16 checkpoint -> AQT-quantized parameter checkpoint (MaxEngine loads and saves it)."""
    if quantization not in QUANTIZATION_MODES:
        raise ValueError(
            f"quantization {quantization!r} not supported by {MAXTEXT_RELEASE}; "
            f"use one of {', '.join(QUANTIZATION_MODES)}"
        )
    return [
        python,
        "-m",
        QUANTIZE_MODULE,
        base_config,
        f"load_parameters_path={unscanned_items}",
        f"model_name={model}",
        f"quantization={quantization}",
        f"save_quantized_params_path={output_dir}",
        "checkpoint_is_quantized=false",
        "scan_layers=false",
        "weight_dtype=bfloat16",
        "async_checkpointing=false",
        "hardware=cpu",
        "skip_jax_distributed_system=true",
        "per_device_batch_size=1",
    ]


def config_overrides(argv: list[str]) -> dict[str, str]:
    """The key=value pairs of a MaxText pyconfig argv (for tests and logs)."""
    return dict(arg.split("=", 1) for arg in argv if "=" in arg and not arg.startswith("-"))
