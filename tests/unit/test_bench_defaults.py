"""One source per default: `tpuserve bench run` takes the defaults of what a BenchmarkRun can set from the API
model, and the Job the operator renders passes them explicitly, so a run by hand and a run by the operator agree."""

from __future__ import annotations

import argparse

from tpuserve.api import BenchmarkRunSpec, DatasetSpec, OpenAISpec
from tpuserve.bench.cli import add_run_arguments
from tpuserve.bench.filters import DEFAULT_FILTERS
from tpuserve.controllers import render


def _cli_defaults() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    return parser.parse_args(["--target", "h:1"])


def test_cli_defaults_are_the_api_defaults() -> None:
    args, spec = _cli_defaults(), BenchmarkRunSpec.model_validate({"target": {"host": "h"}})
    assert args.max_input_length == spec.max_input_length == DEFAULT_FILTERS.max_input_length
    assert args.num_prompts == spec.num_prompts
    assert args.seed == spec.seed
    assert args.warmup == str(spec.warmup)
    assert args.dataset == str(DatasetSpec().name)
    assert args.endpoint == str(OpenAISpec().endpoint)


def test_rendered_job_passes_max_input_length_even_by_default() -> None:
    spec = BenchmarkRunSpec.model_validate({"target": {"host": "h"}})
    args = render.bench_args(spec, "h:9000", model=None, tokenizer=None)
    assert args[args.index("--max-input-length") + 1] == str(spec.max_input_length)
