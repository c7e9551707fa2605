"""Same dataset + tokenizer + seed -> the same requests, in the same order, as JetStream's own client.

`expected-v0.2.2.json` was recorded by running JetStream 0.2.2's benchmark_serving.py (from the google-jetstream
wheel) on the committed data with tests/bench/record_parity.py; the `jetstream`-marked test re-runs that code live.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tpuserve.bench import BenchError
from tpuserve.bench import datasets as ds
from tpuserve.bench.filters import Filters
from tpuserve.bench.runner import arrival_offsets
from tpuserve.bench.tokenizer import Tokenizer

PARITY = Path(__file__).parent / "data" / "parity"


def ours(case: dict[str, Any], data: Path) -> list[list[int]]:
    tokenizer = Tokenizer.load(str(data / "tiny.model"))
    if case["dataset"] == "sharegpt":
        pairs = ds.load_sharegpt(str(data / "sharegpt.json"))
    else:
        pairs = ds.load_openorca(str(data / "openorca.pkl"))
    requests = ds.sample_requests(pairs, tokenizer, case["num_prompts"], case["seed"], case["max_output_length"])
    return [[r.sample_idx, r.prompt_len, r.max_tokens] for r in requests]


@pytest.mark.parametrize("index", range(5))
def test_selection_matches_recorded_jetstream_selection(index: int) -> None:
    case = json.loads((PARITY / "expected-v0.2.2.json").read_text())[index]
    assert ours(case, PARITY) == case["selected"]


@pytest.mark.jetstream
def test_selection_matches_jetstream_live(jetstream_venv_python: str, tmp_path: Path) -> None:
    """Run JetStream 0.2.2's sampling code (from the wheel, in its venv) now, not from a recording."""
    site = subprocess.run(
        [jetstream_venv_python, "-c", "import benchmarks, os; print(os.path.dirname(benchmarks.__file__))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    data = tmp_path / "data"
    data.mkdir()
    for name in ("tiny.model", "sharegpt.json", "openorca.pkl"):
        (data / name).write_bytes((PARITY / name).read_bytes())
    subprocess.run(
        [jetstream_venv_python, str(Path(__file__).parent / "record_parity.py"), "--benchmark-script",
         f"{site}/benchmark_serving.py", "--label", "live", "--data", str(data)],
        check=True, capture_output=True,
    )  # fmt: skip
    for case in json.loads((data / "expected-live.json").read_text()):
        assert ours(case, data) == case["selected"], case


def test_filters_and_repeat(bench_data: dict[str, Path]) -> None:
    tokenizer = Tokenizer.load(str(bench_data["tokenizer"]))
    pairs = ds.load_sharegpt(str(bench_data["sharegpt"]))
    requests = ds.sample_requests(pairs, tokenizer, 2000, 0, None)
    # More than the dataset: JetStream repeats its sample, then filters, so fewer than asked may remain.
    assert len(pairs) < len(requests) <= 2000
    for r in requests:
        assert 4 <= r.prompt_len <= 1024
        assert r.reference_output_len >= 4
        assert r.prompt_len + r.reference_output_len <= 2048
        assert r.max_tokens == r.reference_output_len
    strict = Filters(max_input_length=50, min_output_length=10)
    requests = ds.sample_requests(pairs, tokenizer, 20, 0, 7, strict)
    assert all(r.prompt_len <= 50 and r.reference_output_len >= 10 and r.max_tokens == 7 for r in requests)
    with pytest.raises(BenchError, match="no prompt passed"):
        ds.sample_requests(pairs, tokenizer, 20, 0, None, Filters(max_input_length=3))


def test_sampled_warmup_is_jetstreams() -> None:
    lengths = [3, 17, 20, 100, 600, 1000, 16, 40]
    requests = [ds.Request("", [1] * n, "", 4, 4, i) for i, n in enumerate(lengths)]
    picked = [r.sample_idx for r in ds.sampled_warmup(requests)]
    # buckets (0,16] (16,32] (32,64] (64,128] (128,256] (256,512] (512,1024]: first match each, sent twice
    assert picked == [0, 1, 7, 3, 4] * 2


def test_arrivals_follow_jetstreams_draws() -> None:
    """JetStream: np.random.seed(seed), then after each request sleep exponential(1/rate)."""
    np.random.seed(5)
    gaps = [np.random.exponential(1.0 / 4.0) for _ in range(10)]
    expected = [0.0, *np.cumsum(gaps[:-1]).tolist()]
    assert arrival_offsets(10, 4.0, 5) == pytest.approx(expected, rel=1e-12)
    assert arrival_offsets(3, math.inf, 5) == [0.0, 0.0, 0.0]


def test_synthetic_lengths() -> None:
    requests = ds.synthetic_requests(50, 0, (8, 8), (3, 9), None, 100)
    assert {r.prompt_len for r in requests} == {8}
    assert all(3 <= r.max_tokens <= 9 and all(3 <= i < 100 for i in r.prompt_ids) for r in requests)
    assert [r.prompt_ids for r in ds.synthetic_requests(5, 1, (8, 8), (3, 3), None, 100)] == [
        r.prompt_ids for r in ds.synthetic_requests(5, 1, (8, 8), (3, 3), None, 100)
    ]
