"""The catalog's arithmetic at its boundaries: HBM in GB or GiB as documented, the cost's rate, the roofline's batch
cap (nothing fits, a KV cache of zero, a context of zero). These are the tests `make mutation` runs against tpu.py."""

from __future__ import annotations

import pytest

from tpuserve import tpu

GB = 1e9
GIB = 2**30


@pytest.mark.parametrize(
    ("accelerator", "topology", "hbm_bytes"),
    [
        ("v4", "2x2x1", 4 * 32 * GIB),  # the only generation documented in GiB
        ("v5e", "1x1", 16 * GB),
        ("v5e", "2x4", 8 * 16 * GB),
        ("v5p", "2x2x1", 4 * 95 * GB),
        ("v6e", "2x2", 4 * 32 * GB),
    ],
)
def test_hbm_is_the_documented_unit_times_chips(accelerator: str, topology: str, hbm_bytes: float) -> None:
    assert tpu.resolve(accelerator, topology).hbm_bytes == pytest.approx(hbm_bytes, rel=1e-12)


def test_hbm_bandwidth_is_decimal_gigabytes_times_chips() -> None:
    assert tpu.resolve("v5e", "2x4").hbm_bytes_per_second == 8 * 819 * GB
    assert tpu.resolve("v6e", "1x1").hbm_bytes_per_second == 1638 * GB


def test_the_lookup_index_holds_every_spelling_lowercased() -> None:
    index = tpu._index()
    v5e = tpu.generation("v5e")
    assert index["tpu-v5-lite-device"] is v5e
    assert index["v5litepod"] is v5e
    assert index["tpu-v5-lite-podslice"] is v5e
    assert index["trillium"] is tpu.generation("v6e")
    assert all(key == key.lower() for key in index)
    assert sorted(index) == tpu.accepted_accelerator_names()


def test_unknown_accelerator_lists_every_label() -> None:
    labels = ", ".join(g.accelerator for g in tpu.GENERATIONS)
    with pytest.raises(tpu.CatalogError, match=f"GKE label value \\({labels}\\)$"):
        tpu.generation("v3")


@pytest.mark.parametrize(
    ("accelerator", "topology"),
    [("v5e", "4x4"), ("v5e", "8x4"), ("v6e", "4x2x2"), ("v4", "4x4x2")],  # listed examples and unlisted shapes
)
def test_more_chips_than_any_host_is_multi_host(accelerator: str, topology: str) -> None:
    with pytest.raises(tpu.TopologyError, match="spans several hosts"):
        tpu.resolve(accelerator, topology)


def test_cost_scales_with_any_positive_rate() -> None:
    v5e8 = tpu.resolve("v5e", "2x4")  # $9.60 an hour
    assert tpu.cost_per_million_tokens(v5e8, 0.5) == pytest.approx(9.60 / 3600 / 0.5 * 1e6)
    assert tpu.cost_per_million_tokens(v5e8, 1.0) == pytest.approx(9.60 / 3600 * 1e6)
    for rate in (0.0, -1.0):
        with pytest.raises(ValueError, match=r"^tokens_per_second must be positive$"):
            tpu.cost_per_million_tokens(v5e8, rate)


def step_ceiling(tpu_slice: tpu.TpuSlice, weights: float, kv_per_sequence: float, batch: int) -> float:
    """tokens/s = batch / ((weights + batch * KV per sequence) / HBM bandwidth), the formula the docstring gives."""
    return batch / ((weights + batch * kv_per_sequence) / tpu_slice.hbm_bytes_per_second)


def test_a_context_of_zero_or_one_token_holds_one_tokens_kv() -> None:
    v6e = tpu.resolve("v6e", "2x2")
    weights, kv = 10 * GB, 1e6
    for context in (0.0, 0.5, 1.0):
        assert tpu.decode_roofline_tokens_per_second(v6e, weights, kv, 4, context) == pytest.approx(
            step_ceiling(v6e, weights, kv, 4)
        )
    assert tpu.decode_roofline_tokens_per_second(v6e, weights, kv, 4, 2.0) == pytest.approx(
        step_ceiling(v6e, weights, 2 * kv, 4)
    )


def test_without_a_kv_cache_the_batch_is_not_capped() -> None:
    v5e = tpu.resolve("v5e", "2x2")
    assert tpu.decode_roofline_tokens_per_second(v5e, 10 * GB, 0.0, 1000, 1536) == pytest.approx(
        step_ceiling(v5e, 10 * GB, 0.0, 1000)
    )


def test_weights_larger_than_hbm_still_give_the_batch_1_ceiling() -> None:
    v5e1 = tpu.resolve("v5e", "1x1")  # 16 GB: bf16 Llama2-7B's 13.5 GB fit, a 20 GB model does not
    for kv_per_token in (1.0, 1e6):
        ceiling = tpu.decode_roofline_tokens_per_second(v5e1, 20 * GB, kv_per_token, 8, 1)
        assert ceiling == pytest.approx(step_ceiling(v5e1, 20 * GB, kv_per_token, 1))


def test_the_batch_is_capped_at_whole_sequences_that_fit() -> None:
    v5e1 = tpu.resolve("v5e", "1x1")
    free = 1 * GB
    weights = v5e1.hbm_bytes - free
    # 2.5 sequences' KV fit beside the weights: 2 are counted, whatever batch is asked for
    kv_per_sequence = free / 2.5
    for asked in (2, 3, 96):
        ceiling = tpu.decode_roofline_tokens_per_second(v5e1, weights, kv_per_sequence, asked, 1)
        assert ceiling == pytest.approx(step_ceiling(v5e1, weights, kv_per_sequence, 2))
    assert tpu.decode_roofline_tokens_per_second(v5e1, weights, kv_per_sequence, 1, 1) == pytest.approx(
        step_ceiling(v5e1, weights, kv_per_sequence, 1)
    )


def test_a_batch_under_one_is_refused() -> None:
    v5e = tpu.resolve("v5e", "2x2")
    with pytest.raises(ValueError, match=r"^batch must be >= 1$"):
        tpu.decode_roofline_tokens_per_second(v5e, GB, 1.0, 0, 1)


def test_the_cap_never_rounds_a_sequence_up() -> None:
    """1 byte free, 0.1 byte of KV per sequence: 1.0 / 0.1 rounds to 10.0, but only 9 sequences fit (10 x 0.1 is
    more than 1.0 in floating point); the cap floors the exact quotient."""
    v5e1 = tpu.resolve("v5e", "1x1")
    weights = v5e1.hbm_bytes - 1.0
    ceiling = tpu.decode_roofline_tokens_per_second(v5e1, weights, 0.1, 96, 1)
    assert ceiling == pytest.approx(step_ceiling(v5e1, weights, 0.1, 9))
