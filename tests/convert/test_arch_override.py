"""The converter's architecture override (TPUSERVE_CONVERT_ARCH): one LlamaArch, or one per model so that a
single operator-wide override serves a MaxText conversion and a Hugging Face mirror of different models (the
demo's two scenarios)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tpuserve import llama
from tpuserve.convert.steps import ConversionError, load_arch
from tpuserve_dev.hf_model import tiny3
from tpuserve_dev.tiny_checkpoint import TINY


def test_one_architecture_or_one_per_model(tmp_path: Path) -> None:
    single = tmp_path / "single.json"
    single.write_text(json.dumps(dataclasses.asdict(TINY)))
    assert load_arch("llama2-7b", str(single)) == TINY
    per_model = tmp_path / "per-model.json"
    per_model.write_text(
        json.dumps({"llama2-7b": dataclasses.asdict(TINY), "llama3.1-8b": dataclasses.asdict(tiny3())})
    )
    assert load_arch("llama2-7b", str(per_model)) == TINY
    loaded = load_arch("llama3.1-8b", str(per_model))
    assert (loaded.num_layers, loaded.num_kv_heads, loaded.hf_dtype) == (2, 2, "bfloat16")
    assert load_arch("llama3.3-70b", str(per_model)) == llama.arch("llama3.3-70b")  # not overridden: the catalog's
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"llama2-7b": {"layers": 2}}))
    with pytest.raises(ConversionError, match="cannot read architecture JSON"):
        load_arch("llama2-7b", str(broken))


def test_the_synthetic_step_reads_the_same_override(tmp_path: Path) -> None:
    from tpuserve.convert import synthetic

    per_model = tmp_path / "per-model.json"
    per_model.write_text(
        json.dumps({"llama2-7b": dataclasses.asdict(TINY), "llama3.1-8b": dataclasses.asdict(tiny3())})
    )
    assert synthetic.load_arch("llama2-7b", str(per_model)) == TINY
