"""The TPU catalog against the figures in ../shared/facts/gke-tpu.md (GKE/Cloud TPU documentation)."""

from __future__ import annotations

import pytest

from tpuserve import llama, tpu

# generation -> (GKE accelerator label, {topology: (machine type, chips)}, HBM GB/chip, TFLOP/s, HBM GB/s, $/chip-h)
FACTS = {
    "v4": ("tpu-v4-podslice", {"2x2x1": ("ct4p-hightpu-4t", 4)}, 32 * 2**30 / 1e9, 275, 1200, 3.22),
    "v5e": (
        "tpu-v5-lite-podslice",
        {"1x1": ("ct5lp-hightpu-1t", 1), "2x2": ("ct5lp-hightpu-4t", 4), "2x4": ("ct5lp-hightpu-8t", 8)},
        16,
        197,
        819,
        1.20,
    ),
    "v5p": ("tpu-v5p-slice", {"2x2x1": ("ct5p-hightpu-4t", 4)}, 95, 459, 2765, 4.20),
    "v6e": (
        "tpu-v6e-slice",
        {"1x1": ("ct6e-standard-1t", 1), "2x2": ("ct6e-standard-4t", 4), "2x4": ("ct6e-standard-8t", 8)},
        32,
        918,
        1638,
        2.70,
    ),
}


def test_generations_match_the_facts() -> None:
    assert [g.name for g in tpu.GENERATIONS] == list(FACTS)
    for gen in tpu.GENERATIONS:
        label, shapes, hbm_gb, tflops, gbps, price = FACTS[gen.name]
        assert gen.accelerator == label
        assert {m.topology: (m.name, m.chips) for m in gen.machine_types} == shapes
        assert gen.single_host_topologies == tuple(shapes)
        assert gen.chip.hbm_gib * 2**30 / 1e9 == pytest.approx(hbm_gb)
        assert (gen.chip.peak_bf16_tflops, gen.chip.hbm_gbps, gen.chip.on_demand_usd_per_hour) == (
            tflops,
            gbps,
            price,
        )


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("v5e", "v5e"),
        ("V5E", "v5e"),
        (" tpu-v5-lite-podslice ", "v5e"),
        ("tpu-v5-lite-device", "v5e"),
        ("v5litepod", "v5e"),
        ("tpu-v4-podslice", "v4"),
        ("v4", "v4"),
        ("tpu-v5p-slice", "v5p"),
        ("trillium", "v6e"),
        ("tpu-v6e-slice", "v6e"),
    ],
)
def test_aliases_resolve(spelling: str, name: str) -> None:
    assert tpu.generation(spelling).name == name


def test_accepted_names_cover_every_label_and_alias() -> None:
    names = tpu.accepted_accelerator_names()
    for gen in tpu.GENERATIONS:
        for spelling in (gen.name, *gen.all_accelerator_labels, *gen.aliases):
            assert spelling.lower() in names
    assert names == sorted(set(names))


def test_unknown_accelerator_names_the_choices() -> None:
    with pytest.raises(tpu.CatalogError, match=r"v4, v5e, v5p, v6e.*tpu-v5-lite-podslice"):
        tpu.generation("v3")


def test_resolve_gives_node_selector_and_chips() -> None:
    slice_ = tpu.resolve("v5e", "2x4")
    assert slice_.chips == 8
    assert slice_.machine.name == "ct5lp-hightpu-8t"
    assert slice_.node_selector() == {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
        "cloud.google.com/gke-tpu-topology": "2x4",
    }
    # A GKE label value given by the user is kept, so a legacy node pool is selected as labelled.
    assert tpu.resolve("tpu-v5-lite-device", "2x2").node_selector()[tpu.ACCELERATOR_LABEL] == "tpu-v5-lite-device"
    assert tpu.resolve("TPU-V4-PODSLICE", "2x2x1").accelerator_label == "tpu-v4-podslice"


@pytest.mark.parametrize(
    ("accelerator", "topology", "words"),
    [
        ("v5e", "4x4", "multi-host"),
        ("v4", "2x2x2", "multi-host"),
        ("v5e", "2x2x1", "not a v5e slice shape"),
        ("v4", "2x2", "not a v4 slice shape"),
    ],
)
def test_resolve_refuses_other_topologies(accelerator: str, topology: str, words: str) -> None:
    gen = tpu.generation(accelerator)
    with pytest.raises(tpu.TopologyError) as error:
        tpu.resolve(accelerator, topology)
    assert words in str(error.value)
    assert ", ".join(gen.single_host_topologies) in str(error.value)


@pytest.mark.parametrize(("topology", "chips"), [("1x1", 1), ("2x4", 8), ("2x2x1", 4), ("4x4x4", 64)])
def test_chips_in_topology(topology: str, chips: int) -> None:
    assert tpu.chips_in_topology(topology) == chips


def test_chips_in_topology_refuses_garbage() -> None:
    with pytest.raises(tpu.CatalogError, match="AxB"):
        tpu.chips_in_topology("2by4")


def test_cost_per_million_tokens() -> None:
    # The manual's run: 3061.78 output tok/s on a v5e 2x4 host at $1.20 per chip-hour -> $9.60/h.
    v5e8 = tpu.resolve("v5e", "2x4")
    assert v5e8.usd_per_hour() == pytest.approx(9.60)
    assert tpu.cost_per_million_tokens(v5e8, 3061.78) == pytest.approx(9.60 / 3600 / 3061.78 * 1e6)
    assert tpu.cost_per_million_tokens(v5e8, 3061.78) == pytest.approx(0.871, abs=0.001)
    assert tpu.cost_per_million_tokens(v5e8, 1000, usd_per_chip_hour=0.5) == pytest.approx(4.0 / 3600 / 1000 * 1e6)
    with pytest.raises(ValueError, match="tokens_per_second must be positive"):
        tpu.cost_per_million_tokens(v5e8, 0)


LLAMA2_7B = llama.MODELS["llama2-7b"]
# facts/gke-tpu.md "Roofline for Llama2-7B decode": slice -> (batch-1 ceiling, ceiling at batch 96 or HBM max).
# The batch-96 figures correspond to an average context of 1536 tokens per sequence (e.g. 1024 in + 512 out).
ROOFLINE = {
    ("v5e", "2x2"): (243, 3100),
    ("v5e", "2x4"): (486, 6900),
    ("v6e", "2x2"): (486, 6900),
    ("v4", "2x2x1"): (356, 5100),
    ("v5p", "2x2x1"): (820, 11700),
}
CONTEXT_TOKENS = 1536


def test_llama2_7b_sizes_match_the_facts() -> None:
    assert LLAMA2_7B.weight_bytes() == pytest.approx(13.5e9, rel=0.01)
    assert LLAMA2_7B.kv_bytes_per_token() == pytest.approx(0.524e6, rel=0.001)


@pytest.mark.parametrize(("slice_", "figures"), ROOFLINE.items(), ids=[f"{a}-{t}" for a, t in ROOFLINE])
def test_decode_roofline_matches_the_table(slice_: tuple[str, str], figures: tuple[float, float]) -> None:
    tpu_slice = tpu.resolve(*slice_)
    batch1, batch96 = figures
    weights, kv = LLAMA2_7B.weight_bytes(), LLAMA2_7B.kv_bytes_per_token()
    assert tpu.decode_roofline_tokens_per_second(tpu_slice, weights, kv, 1, 1) == pytest.approx(batch1, rel=0.02)
    assert tpu.decode_roofline_tokens_per_second(tpu_slice, weights, kv, 96, CONTEXT_TOKENS) == pytest.approx(
        batch96, rel=0.05
    )


def test_roofline_caps_the_batch_at_what_fits_in_hbm() -> None:
    v5e4 = tpu.resolve("v5e", "2x2")
    weights, kv = LLAMA2_7B.weight_bytes(), LLAMA2_7B.kv_bytes_per_token()
    capped = tpu.decode_roofline_tokens_per_second(v5e4, weights, kv, 96, CONTEXT_TOKENS)
    fits = int((v5e4.hbm_bytes - weights) // (kv * CONTEXT_TOKENS))
    assert fits < 96
    assert capped == pytest.approx(tpu.decode_roofline_tokens_per_second(v5e4, weights, kv, fits, CONTEXT_TOKENS))
    # More batch than fits buys nothing; less batch is slower.
    assert tpu.decode_roofline_tokens_per_second(v5e4, weights, kv, fits - 10, CONTEXT_TOKENS) < capped
    with pytest.raises(ValueError, match="batch must be >= 1"):
        tpu.decode_roofline_tokens_per_second(v5e4, weights, kv, 0, CONTEXT_TOKENS)


def test_single_hosts_names_each_machine_type_after_its_series_and_chip_count() -> None:
    """The catalog is built at import, where mutation testing cannot reach it: this calls the builder itself."""
    built = tpu.single_hosts("ct5lp-hightpu", {"1x1": (24, 48), "2x4": (224, 384)})
    assert built == (
        tpu.MachineType("ct5lp-hightpu-1t", "1x1", 24, 48),
        tpu.MachineType("ct5lp-hightpu-8t", "2x4", 224, 384),
    )
    assert [m.chips for m in built] == [1, 8]
