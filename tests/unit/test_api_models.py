"""The API models: defaults, wire names, and the Python mirrors of the CRD rules (the same case table the
API-server tests use, so the operator never accepts what the API server would refuse, and vice versa)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from tests.api.cases import (
    INVALID,
    VALID,
    Case,
    base_benchmark,
    base_checkpoint,
    base_server,
    catalog_slices,
    mutate,
)
from tests.api.statuses import benchmark_status, checkpoint_status, server_status
from tpuserve import images, llama, tpu
from tpuserve.api import (
    API_VERSION,
    KINDS,
    BenchmarkRun,
    BenchmarkRunSpec,
    ConverterPreset,
    EngineSpec,
    InferenceServer,
    LlamaCheckpoint,
    LlamaCheckpointSpec,
    catalog,
    parse_duration,
    rate_per_second,
)
from tpuserve.api.checkpoint import default_converter_memory_gib

MODELS: dict[str, Any] = {m.KIND: m for m in KINDS}
REPO = Path(__file__).resolve().parents[2]


def test_kind_identity() -> None:
    assert {m.KIND for m in KINDS} == {"LlamaCheckpoint", "InferenceServer", "BenchmarkRun"}
    for model in KINDS:
        assert model.model_fields["api_version"].default == API_VERSION == "tpuserve.dev/v1alpha1"
        assert model.model_fields["kind"].default == model.KIND
    assert [m.SHORT_NAMES for m in KINDS] == [("lckpt",), ("infsrv",), ("bench",)]


def test_default_model_is_in_the_catalog() -> None:
    assert catalog.DEFAULT_MODEL == "llama2-7b"
    assert catalog.DEFAULT_MODEL in llama.MODELS


def test_checkpoint_defaults() -> None:
    spec = LlamaCheckpoint.model_validate(base_checkpoint()).spec
    assert spec.model == "llama2-7b"
    assert spec.weight_dtype == "bfloat16"
    assert spec.quantization is None
    assert spec.converter.preset == ConverterPreset.TPUSERVE
    assert spec.converter.effective_image() == images.CONVERTER_IMAGE
    resources = spec.converter_resources()
    assert resources.requests == {"memory": "80Gi", "cpu": "4"}
    assert resources.limits == {"memory": "80Gi"}


def test_converter_image_follows_preset_unless_set() -> None:
    google = LlamaCheckpointSpec.model_validate(
        {**base_checkpoint()["spec"], "converter": {"preset": "inference-checkpoint"}}
    )
    assert google.converter.effective_image() == images.GOOGLE_CHECKPOINT_IMAGE
    pinned = LlamaCheckpointSpec.model_validate(
        {**base_checkpoint()["spec"], "converter": {"preset": "inference-checkpoint", "image": "example.com/c:1"}}
    )
    assert pinned.converter.effective_image() == "example.com/c:1"
    mirrored = {ConverterPreset.TPUSERVE: "mirror/c:1", ConverterPreset.INFERENCE_CHECKPOINT: "mirror/g:1"}
    assert google.converter.effective_image(mirrored) == "mirror/g:1"


def test_converter_memory_grows_with_the_model() -> None:
    sizes = [default_converter_memory_gib(name) for name in llama.models_for("jetstream-maxtext")]
    assert sizes[0] == 80  # measured: MaxText's unscanned step needs ~64-70 GiB for Llama2-7B (docs/images.md)
    assert sizes == sorted(sizes)
    assert len(set(sizes)) == len(sizes)
    spec = LlamaCheckpointSpec.model_validate({**base_checkpoint()["spec"], "model": "llama2-70b"})
    assert spec.converter_resources().requests == {"memory": f"{sizes[-1]}Gi", "cpu": "4"}


def test_server_defaults_are_the_manuals_settings() -> None:
    spec = InferenceServer.model_validate(base_server()).spec
    engine = spec.engine
    assert (engine.max_prefill_predict_length, engine.max_target_length) == (1024, 2048)
    assert engine.per_device_batch_size == 11
    assert (engine.ici_fsdp_parallelism, engine.ici_autoregressive_parallelism, engine.ici_tensor_parallelism) == (
        1,
        1,
        -1,
    )
    assert engine.scan_layers is False
    assert engine.weight_dtype == "bfloat16"
    # Images are left empty so the operator's configured defaults (the chart's values) apply.
    assert spec.image is None
    assert spec.http_image is None
    assert spec.effective_image() == images.GOOGLE_SERVER_IMAGE
    assert spec.effective_http_image() == images.GOOGLE_HTTP_IMAGE
    assert spec.effective_image("mirror.example/server:1") == "mirror.example/server:1"
    pinned = InferenceServer.model_validate(mutate(base_server(), {"spec.image": "example.com/s:2"})).spec
    assert pinned.effective_image("mirror.example/server:1") == "example.com/s:2"
    assert spec.replicas == 1
    assert spec.metrics.port == 9100
    assert spec.metrics.enabled
    assert not spec.metrics.pod_monitoring
    assert not spec.metrics.service_monitor
    assert spec.effective_tokenizer_path() == "assets/tokenizer.llama2"
    resolved = spec.tpu.resolve()
    assert (resolved.chips, resolved.machine.name, resolved.accelerator_label) == (
        8,
        "ct5lp-hightpu-8t",
        "tpu-v5-lite-podslice",
    )


def test_wire_names_are_camel_case() -> None:
    wire = InferenceServer.model_validate(base_server()).to_wire()
    assert set(wire["spec"]["engine"]) >= {"maxPrefillPredictLength", "iciTensorParallelism", "extraArgs"}
    assert "tpu" in wire["spec"]
    assert "checkpointRef" in wire["spec"]
    assert "image" not in wire["spec"]
    status = benchmark_status().to_wire()
    assert "resultsURI" in status
    assert "costPerMillionOutputTokens" in status
    assert status["results"]["ttftMs"]["median"] == 140039.96
    # Python names work too (populate_by_name), so the operator can build objects either way.
    assert EngineSpec(max_target_length=4096).max_target_length == 4096


def test_benchmark_defaults_and_load_shapes() -> None:
    spec = BenchmarkRun.model_validate(base_benchmark()).spec
    assert (spec.num_prompts, spec.max_output_length, spec.warmup, spec.seed) == (1000, 1024, "sampled", 0)
    assert spec.dataset.name == "openorca"
    assert spec.image is None
    assert spec.effective_image() == images.BENCH_IMAGE
    assert spec.request_rates() == [math.inf]
    assert spec.timeout_seconds() == 7200
    base = base_benchmark()["spec"]
    assert BenchmarkRunSpec.model_validate({**base, "requestRate": "2.5"}).request_rates() == [2.5]
    assert BenchmarkRunSpec.model_validate({**base, "sweep": {"rates": [1, "inf"]}}).request_rates() == [1.0, math.inf]
    assert BenchmarkRunSpec.model_validate({**base, "concurrency": 8}).request_rates() is None


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "forever", "2d", "1.5h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("rate", [0, "0", "-1", "fast"])
def test_rate_per_second_refuses(rate: int | str) -> None:
    with pytest.raises(ValueError, match=r"request rate .* (is not a positive number|must be positive)"):
        rate_per_second(rate)


@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
def test_model_refuses_what_the_api_server_refuses(case: Case) -> None:
    with pytest.raises(ValidationError):
        MODELS[case.kind].model_validate(case.object())


@pytest.mark.parametrize("case", VALID, ids=[c.id for c in VALID])
def test_model_accepts_what_the_api_server_accepts(case: Case) -> None:
    MODELS[case.kind].model_validate(case.object())


@pytest.mark.parametrize(("accelerator", "topology"), catalog_slices())
def test_every_catalog_slice_parses(accelerator: str, topology: str) -> None:
    obj = base_server()
    obj["spec"]["tpu"] = {"accelerator": accelerator, "topology": topology}
    spec = InferenceServer.model_validate(obj).spec
    assert spec.tpu.resolve().topology == topology


def test_topology_error_names_the_valid_topologies() -> None:
    obj = base_server()
    obj["spec"]["tpu"]["topology"] = "4x4"
    with pytest.raises(ValidationError, match=r"multi-host.*1x1, 2x2, 2x4"):
        InferenceServer.model_validate(obj)


def test_examples_parse() -> None:
    paths = sorted((REPO / "manifests" / "examples").rglob("*.yaml"))
    assert len(paths) >= 5
    kinds = set()
    for path in paths:
        for document in yaml.safe_load_all(path.read_text()):
            MODELS[document["kind"]].model_validate(document)
            kinds.add(document["kind"])
    assert kinds == set(MODELS)


def test_seed_example_matches_the_manual() -> None:
    server = InferenceServer.model_validate(
        yaml.safe_load((REPO / "manifests/examples/llama2-7b-v5e/server.yaml").read_text())
    ).spec
    assert (server.tpu.accelerator, server.tpu.topology) == ("v5e", "2x4")
    assert server.engine.per_device_batch_size == 11
    bench = BenchmarkRun.model_validate(
        yaml.safe_load((REPO / "manifests/examples/llama2-7b-v5e/benchmark.yaml").read_text())
    ).spec
    assert (bench.num_prompts, bench.max_output_length, bench.dataset.name, bench.warmup) == (
        1000,
        1024,
        "openorca",
        "sampled",
    )
    v4 = InferenceServer.model_validate(
        yaml.safe_load((REPO / "manifests/examples/llama2-7b-v4/server.yaml").read_text())
    ).spec
    assert v4.tpu.resolve().generation is tpu.generation("v4")
    assert v4.tpu.topology == "2x2x1"


@pytest.mark.parametrize("build", [checkpoint_status, server_status, benchmark_status])
def test_status_round_trips_through_the_wire(build: Any) -> None:
    status = build()
    assert type(status).model_validate(status.to_wire()) == status


def test_api_imports_without_operator_dependencies() -> None:
    """Workloads and tools import the API; it must not pull in kopf, kubernetes or other heavy clients."""
    import subprocess
    import sys

    heavy = ("kopf", "kubernetes", "jinja2", "grpc", "google.cloud.storage")
    code = f"import sys, tpuserve.api, tpuserve.api.generate; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


@pytest.mark.parametrize(
    ("axes", "chips", "fits"),
    [
        ((1, 1, -1), 8, True),
        ((1, 1, 8), 8, True),
        ((2, 1, -1), 4, True),
        ((1, 1, 8), 4, False),  # more chips asked than the host has
        ((1, 1, 2), 8, False),  # fewer: MaxText needs every device in the mesh
        ((3, 1, -1), 8, False),  # -1 takes the remaining chips, which must divide evenly
    ],
)
def test_parallelism_must_fit_the_slice(axes: tuple[int, int, int], chips: int, fits: bool) -> None:
    assert (catalog.parallelism_mismatch(axes, chips) is None) == fits
