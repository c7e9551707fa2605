"""The MaxText invocations against what the pinned release accepts.

fixtures/maxtext-v0.2.3-accepted.json was derived by reading the release's files (see its `_derived_from`):
the converter script's argparse flags and model sizes, the top-level keys of configs/base.yml (pyconfig raises
on any other key), QuantizationType values, model configs and module files. No MaxText code is copied.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tpuserve import llama
from tpuserve.convert import layout, maxtext

ACCEPTED: dict[str, Any] = json.loads((Path(__file__).parent / "fixtures/maxtext-v0.2.3-accepted.json").read_text())
PATHS = maxtext.ConversionPaths(
    source_dir="/work/source",
    scanned_dir=layout.scanned_dir("/work/out"),
    scanned_items=layout.scanned_items("/work/out"),
    unscanned_base="/work/out",
    unscanned_run_name=layout.UNSCANNED_RUN_NAME,
)
CONFIG = "/opt/venv/lib/python3.12/site-packages/maxtext/configs/base.yml"


def _module_file(module: str) -> str:
    return "src/" + module.replace(".", "/") + ".py"


def test_fixture_is_for_the_pinned_release() -> None:
    assert ACCEPTED["release"] == maxtext.MAXTEXT_RELEASE
    assert ACCEPTED["commit"] == maxtext.MAXTEXT_COMMIT


@pytest.mark.parametrize(
    "module", [maxtext.SCANNED_MODULE, maxtext.UNSCANNED_MODULE, maxtext.QUANTIZE_MODULE, maxtext.SERVER_MODULE]
)
def test_modules_exist_in_release(module: str) -> None:
    assert _module_file(module) in ACCEPTED["module_files"].values()


# The models a LlamaCheckpoint in format meta may name (its CEL rule): the catalog's JetStream models.
@pytest.mark.parametrize("model", llama.models_for(llama.Runtime.JETSTREAM_MAXTEXT))
def test_scanned_argv_uses_only_accepted_flags(model: str) -> None:
    argv = maxtext.scanned_argv("python3", model, PATHS)
    assert argv[:3] == ["python3", "-m", maxtext.SCANNED_MODULE]
    flags = ACCEPTED["llama_or_mistral_ckpt_flags"]
    given = argv[3::2]
    values = argv[4::2]
    assert len(given) == len(values)
    assert set(given) <= set(flags), set(given) - set(flags)
    assert {f for f, spec in flags.items() if spec["required"]} <= set(given)
    for flag, value in zip(given, values, strict=True):
        if flags[flag]["type"] == "str2bool":
            assert value in ("true", "false")  # the upstream script's bug: a boolean flag given without a value
    assert dict(zip(given, values, strict=True))["--model-size"] == model
    assert model in ACCEPTED["llama_or_mistral_ckpt_model_sizes"]
    assert dict(zip(given, values, strict=True))["--maxtext-model-path"] == "/work/out/scanned"


# The models a LlamaCheckpoint in format meta may name (its CEL rule): the catalog's JetStream models.
@pytest.mark.parametrize("model", llama.models_for(llama.Runtime.JETSTREAM_MAXTEXT))
@pytest.mark.parametrize("dtype", maxtext.WEIGHT_DTYPES)
def test_unscanned_argv_keys_are_base_yml_keys(model: str, dtype: str) -> None:
    argv = maxtext.unscanned_argv("python3", CONFIG, model, dtype, PATHS)
    assert argv[:4] == ["python3", "-m", maxtext.UNSCANNED_MODULE, CONFIG]
    assert argv[3].endswith(ACCEPTED["pyconfig_config_must_end_with"])
    overrides = maxtext.config_overrides(argv[4:])
    assert len(overrides) == len(argv) - 4  # every other argument is key=value
    assert set(overrides) <= set(ACCEPTED["base_yml_keys"]), set(overrides) - set(ACCEPTED["base_yml_keys"])
    assert overrides["model_name"] in ACCEPTED["model_configs"]
    assert overrides["load_parameters_path"] == "/work/out/scanned/0/items"
    # base_output_directory + run_name + checkpoints/0/items is where the unscanned checkpoint lands
    landed = layout.join(overrides["base_output_directory"], overrides["run_name"], "checkpoints", layout.STEP_ITEMS)
    assert landed == layout.unscanned_items("/work/out")
    assert overrides["force_unroll"] == "true"
    assert overrides["pure_nnx"] == "false"
    assert overrides["weight_dtype"] == dtype


@pytest.mark.parametrize("mode", maxtext.QUANTIZATION_MODES)
def test_quantize_argv(mode: str) -> None:
    assert mode in ACCEPTED["quantization_values"]
    argv = maxtext.quantize_argv("python3", CONFIG, "llama2-7b", mode, "/o/unscanned/checkpoints/0/items", "/o/q")
    overrides = maxtext.config_overrides(argv[4:])
    assert set(overrides) <= set(ACCEPTED["base_yml_keys"])
    assert overrides["quantization"] == mode


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="weight dtype 'float16'"):
        maxtext.unscanned_argv("python3", CONFIG, "llama2-7b", "float16", PATHS)
    with pytest.raises(ValueError, match="int8w"):
        maxtext.quantize_argv("python3", CONFIG, "llama2-7b", "int8w", "a", "b")


def test_tokenizer_location_in_release() -> None:
    # The release moved the tokenizer to assets/tokenizers/; our images link the old path too (docs/images.md).
    assert ACCEPTED["tokenizer_llama2_path"] == ["src/maxtext/assets/tokenizers/tokenizer.llama2"]
