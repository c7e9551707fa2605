"""The length filters a real dataset (openorca, sharegpt) goes through before sampling, JetStream's
benchmark_serving.py filter_dataset. The default of maxInputLength is the BenchmarkRun API's (one source for the
operator and the command line); the others are JetStream's and not in the API (the API docs name them)."""

from __future__ import annotations

from dataclasses import dataclass

from tpuserve.api import BenchmarkRunSpec

DEFAULT_MAX_INPUT_LENGTH: int = BenchmarkRunSpec.model_fields["max_input_length"].default


@dataclass(frozen=True)
class Filters:
    min_input_length: int = 4
    max_input_length: int = DEFAULT_MAX_INPUT_LENGTH
    min_output_length: int = 4
    max_target_length: int = 2048  # prompt plus reference output
    oversample: float = 1.2  # JetStream samples this many times num_prompts before filtering


DEFAULT_FILTERS = Filters()
