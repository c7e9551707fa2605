"""The Llama catalog against the published figures (../shared/facts/vllm-tpu.md section 6, HF config.json)."""

from __future__ import annotations

import math

import pytest

from tpuserve import llama, tpu

# Published parameter counts (model cards) and bf16 KV cache per token (facts section 6).
PARAMETERS = {
    "llama3.1-8b": 8.03e9,
    "llama3.1-70b": 70.55e9,
    "llama3.3-70b": 70.55e9,
    "llama3.2-1b": 1.24e9,
    "llama3.2-3b": 3.21e9,
    "llama2-7b": 6.74e9,
    "llama2-70b": 68.98e9,
}
KV_KIB_PER_TOKEN = {"llama3.1-8b": 128, "llama3.1-70b": 320, "llama3.2-1b": 32, "llama3.2-3b": 112, "llama2-7b": 512}


@pytest.mark.parametrize(("model", "count"), PARAMETERS.items())
def test_parameter_counts_match_the_model_cards(model: str, count: float) -> None:
    assert llama.arch(model).num_parameters == pytest.approx(count, rel=0.005)


@pytest.mark.parametrize(("model", "kib"), KV_KIB_PER_TOKEN.items())
def test_kv_cache_per_token_counts_only_the_kv_heads(model: str, kib: int) -> None:
    assert llama.arch(model).kv_bytes_per_token("bfloat16") == kib * 1024


@pytest.mark.parametrize("model", list(llama.MODELS))
def test_hf_tensors_add_up_to_the_parameter_count(model: str) -> None:
    arch = llama.arch(model)
    shapes = arch.hf_tensor_shapes()
    assert sum(math.prod(s) for s in shapes.values()) == arch.num_parameters
    assert ("lm_head.weight" in shapes) is not arch.tied_embeddings
    assert len(shapes) == 2 + 9 * arch.num_layers + (0 if arch.tied_embeddings else 1)


def test_gqa_projection_shapes() -> None:
    shapes = llama.arch("llama3.1-8b").hf_tensor_shapes()
    assert shapes["model.layers.31.self_attn.q_proj.weight"] == (4096, 4096)
    assert shapes["model.layers.31.self_attn.k_proj.weight"] == (1024, 4096)  # 8 KV heads x 128
    assert shapes["model.layers.0.mlp.down_proj.weight"] == (4096, 14336)
    assert shapes["lm_head.weight"] == (128256, 4096)
    small = llama.arch("llama3.2-1b").hf_tensor_shapes()
    assert small["model.layers.0.self_attn.q_proj.weight"] == (2048, 2048)  # 32 heads x 64
    assert small["model.layers.0.self_attn.v_proj.weight"] == (512, 2048)
    assert "lm_head.weight" not in small


def test_each_runtime_names_the_models_it_serves() -> None:
    assert llama.arch("llama3.1-8b").model_name("vllm-tpu") == "meta-llama/Llama-3.1-8B-Instruct"
    assert llama.arch("llama3.1-8b").model_name("jetstream-maxtext") is None
    assert llama.arch("llama2-7b").model_name("jetstream-maxtext") == "llama2-7b"
    assert llama.models_for("jetstream-maxtext") == ["llama2-7b", "llama2-13b", "llama2-70b"]
    assert set(llama.models_for("vllm-tpu")) == set(llama.MODELS)
    assert llama.by_hf_repo("meta-llama/Llama-3.1-8B") is llama.arch("llama3.1-8b")
    assert llama.by_hf_repo("Meta-Llama/Llama-3.3-70B-Instruct") is llama.arch("llama3.3-70b")
    assert llama.by_hf_repo("mistralai/Mistral-7B-v0.1") is None


def test_conversion_facts_are_the_fields_manifests_recorded_before_llama3() -> None:
    assert llama.CONVERSION_FIELDS == (
        "name", "num_layers", "d_model", "num_heads", "num_kv_heads", "head_dim", "mlp_dim", "vocab_size",
        "meta_shards", "maxtext_tokenizer",
    )  # fmt: skip


def test_hbm_shortfall_names_the_numbers() -> None:
    v5e1 = tpu.resolve("v5e", "1x1")
    message = llama.hbm_shortfall(llama.arch("llama2-70b"), v5e1, sequences=1, tokens_per_sequence=1)
    assert message == "llama2-70b bf16 needs 128.5 GiB of weights; v5e 1x1 has 14.9 GiB of HBM"
    v6e1 = tpu.resolve("v6e", "1x1")
    eight_b = llama.arch("llama3.1-8b")
    assert llama.hbm_shortfall(eight_b, v6e1, sequences=64, tokens_per_sequence=1024, usable_fraction=0.9) is None
    too_long = llama.hbm_shortfall(eight_b, v6e1, sequences=128, tokens_per_sequence=8192, usable_fraction=0.9)
    assert too_long is not None
    assert "plus 128.0 GiB of KV cache (128 sequences x 8192 tokens x 128 KiB)" in too_long
    assert "(26.8 GiB at 0.9 utilisation)" in too_long
    # tpu-recipes' Llama 3.3 70B on v6e-8 (256 sequences x 2048 tokens): vLLM pages the KV cache, so the
    # weights and one full-length sequence must fit, not every sequence at full length at once.
    v6e8, seventy_b = tpu.resolve("v6e", "2x4"), llama.arch("llama3.3-70b")
    assert llama.hbm_shortfall(seventy_b, v6e8, sequences=1, tokens_per_sequence=2048, usable_fraction=0.98) is None
    assert llama.hbm_shortfall(seventy_b, v6e8, sequences=256, tokens_per_sequence=2048) is not None


def test_llama3_decode_roofline_reads_weights_and_kv() -> None:
    """Llama 3.3 70B on v6e-8: the memory-bound ceiling lies above tpu-recipes' measured 3544 output tok/s at
    concurrency 128 (1000 in / 1000 out), and GQA's small KV cache keeps batch 128 close to linear scaling."""
    v6e8, arch = tpu.resolve("v6e", "2x4"), llama.arch("llama3.3-70b")
    weights, kv = arch.weight_bytes(), arch.kv_bytes_per_token()
    ceiling = tpu.decode_roofline_tokens_per_second(v6e8, weights, kv, 128, 1500)
    assert ceiling > 3544
    assert ceiling == pytest.approx(128 / ((weights + 128 * 1500 * kv) / v6e8.hbm_bytes_per_second))


def test_vllm_server_notes_when_the_kv_cache_holds_fewer_sequences_than_max_num_seqs() -> None:
    from tpuserve.api import InferenceServerSpec

    def spec(**vllm: object) -> InferenceServerSpec:
        return InferenceServerSpec.model_validate(
            {
                "runtime": "vllm-tpu",
                "model": "llama3.3-70b",
                "checkpointPath": "gs://models/llama3.3-70b/hf",
                "tpu": {"accelerator": "v6e", "topology": "2x4"},
                "vllm": vllm,
            }
        )

    # tpu-recipes: 256 sequences of 2048 tokens at 0.98: (238.4 * 0.98 - 131.4) GiB / (2048 * 320 KiB) = 163.
    note = spec(maxModelLen=2048, maxNumSeqs=256, hbmUtilization=0.98).kv_capacity_note()
    assert note.startswith("; the KV cache holds about 163 sequences of maxModelLen 2048")
    assert spec(maxModelLen=2048, maxNumSeqs=128, hbmUtilization=0.98).kv_capacity_note() == ""


def test_jetstream_server_weights_plus_preallocated_kv_cache_must_fit() -> None:
    """MaxText preallocates perDeviceBatchSize x chips slots of maxTargetLength: the seed's examples fit, a 70B on
    one v5e chip does not (the issue's example), nor does 7B on one v5e chip with the manual's batch."""
    from tpuserve.api import InferenceServerSpec

    def spec(model: str, accelerator: str, topology: str, **engine: object) -> InferenceServerSpec:
        tpu_spec = {"accelerator": accelerator, "topology": topology}
        body = {"model": model, "checkpointPath": "gs://models/x", "tpu": tpu_spec, "engine": engine}
        return InferenceServerSpec.model_validate(body)

    assert spec("llama2-7b", "v5e", "2x4").jetstream_hbm_shortfall() is None
    assert spec("llama2-7b", "v4", "2x2x1").jetstream_hbm_shortfall() is None
    assert (
        spec("llama2-70b", "v5e", "1x1").jetstream_hbm_shortfall()
        == "llama2-70b bf16 needs 128.5 GiB of weights; v5e 1x1 has 14.9 GiB of HBM"
    )
    one_chip = spec("llama2-7b", "v5e", "1x1").jetstream_hbm_shortfall()
    assert one_chip is not None
    assert "plus 11.0 GiB of KV cache (11 sequences x 2048 tokens x 512 KiB)" in one_chip
    # int8 weights and KV cache, two slots: 7B fits one v5e chip.
    assert (
        spec(
            "llama2-7b", "v5e", "1x1", perDeviceBatchSize=2, quantization="int8", quantizeKvcache=True
        ).jetstream_hbm_shortfall()
        is None
    )
