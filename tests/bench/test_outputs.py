"""Files, console format, the 4 KiB summary, gs:// in and out, and `bench report`."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tpuserve.bench.cli import main as bench_main
from tpuserve.bench.outputs import summary
from tpuserve.results import BenchmarkResults, BenchmarkSummary, LatencyStats, StageReport

SEED_LINES = [
    "Successful requests: ",
    "Benchmark duration: ",
    "Total input tokens: ",
    "Total generated tokens: ",
    "Request throughput: ",
    "Input token throughput: ",
    "Output token throughput: ",
    "Mean TTFT: ",
    "Median TTFT: ",
    "P99 TTFT: ",
    "Mean TPOT: ",
    "Median TPOT: ",
    "P99 TPOT: ",
]


def _stage(i: int) -> StageReport:
    stats = LatencyStats(mean=1.0, median=1.0, p90=1.0, p95=1.0, p99=1.0, max=1.0)
    return StageReport(
        name=f"rate={i}", request_rate=float(i), successful_requests=1000, failed_requests=3,
        duration_seconds=100.0, total_input_tokens=10**6, total_output_tokens=10**6, request_throughput=10.0,
        input_throughput=1e4, output_throughput=1e4, ttft_ms=stats, tpot_ms=stats, decode_tpot_ms=stats,
        itl_ms=stats, latency_ms=stats, errors={"RESOURCE_EXHAUSTED": 2, "DEADLINE_EXCEEDED": 1},
    )  # fmt: skip


def test_summary_fits_the_termination_message_for_a_long_sweep() -> None:
    result = summary([_stage(i) for i in range(1, 33)], "gs://bucket/some/long/prefix/results.json", "x" * 3000)
    text = result.to_termination_message()
    assert len(text.encode()) <= 4096
    back = BenchmarkSummary.from_termination_message(text)
    assert back.request_rate == 32.0  # the headline is the last stage
    assert 1 <= len(back.stages) <= 32
    assert back.results_uri


def test_sweep_files_console_and_report(
    delay_server: Callable[..., Any], run_bench: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = delay_server("--ttft-ms", "5", "--itl-ms", "2")
    run = run_bench(
        "--target", server.target, "--dataset", "synthetic", "--synthetic-input-length", "8:32",
        "--synthetic-output-length", "4", "--num-prompts", "30", "--sweep", "50,inf", "--stage-pause", "0",
        "--warmup", "full", "--warmup-pause", "0", "--metadata", '{"accelerator": "v5e-8"}', "--model", "llama2-7b",
    )  # fmt: skip
    assert run.code == 0, run.stdout
    # The seed's 13 lines, in order, once per stage.
    lines = run.stdout.splitlines()
    for stage_start in [i for i, line in enumerate(lines) if line.startswith("==== stage")]:
        assert [lines[stage_start + 1 + k].startswith(p) for k, p in enumerate(SEED_LINES)] == [True] * 13
    results = BenchmarkResults.model_validate_json((run.output / "results.json").read_text())
    assert [s.name for s in results.stages] == ["rate=50", "rate=inf"]
    assert results.warmup is not None
    assert results.warmup.successful_requests == 30
    assert all(s.successful_requests == 30 for s in results.stages)
    assert run.summary["resultsUri"] == str(run.output / "results.json")
    assert len(run.summary["stages"]) == 2
    for i, rate in enumerate((50.0, "inf")):
        js = json.loads((run.output / f"stage-{i:02d}.jetstream.json").read_text())
        assert js["metrics"]["request_rate"] == rate
        assert js["dimensions"]["accelerator"] == "v5e-8"
        assert js["dimensions"]["model_id"] == "llama2-7b"
        for key in ("mean_ttft_ms", "median_tpot_ms", "p99_tpot_ms", "mean_TPOT_ms", "p99_ttst_ms", "completed"):
            assert isinstance(js["metrics"][key], int | float)
            assert math.isfinite(js["metrics"][key])
    # report: a table row per stage and PNG plots
    capsys.readouterr()
    code = bench_main(["report", str(run.output / "results.json"), "--output-dir", str(tmp_path / "plots")])
    out = capsys.readouterr().out
    assert code == 0
    assert "rate=50" in out
    assert "rate=inf" in out
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert len(pngs) == 3
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    # report refuses a file that is not ours, with the reason
    code = bench_main(["report", str(run.output / "stage-00.jetstream.json")])
    assert code == 2
    assert "not a tpuserve results file" in capsys.readouterr().err


def test_gcs_inputs_and_outputs(
    gcs_bucket: str, gcs_client: Any, delay_server: Callable[..., Any], run_bench: Callable[..., Any],
    bench_data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TPUSERVE_CACHE_DIR", str(tmp_path / "cache"))
    bucket = gcs_client.bucket(gcs_bucket)
    bucket.blob("tok/tiny.model").upload_from_filename(str(bench_data["tokenizer"]))
    bucket.blob("data/orca.pkl").upload_from_filename(str(bench_data["openorca"]))
    server = delay_server("--vocab-size", "200")
    prefix = f"gs://{gcs_bucket}/runs/one"
    run = run_bench(
        "--target", server.target, "--dataset", "openorca", "--dataset-path", f"gs://{gcs_bucket}/data/orca.pkl",
        "--tokenizer", f"gs://{gcs_bucket}/tok/tiny.model", "--num-prompts", "8", "--max-output-length", "3",
        "--warmup", "none", "--output", prefix, "--save-request-outputs",
    )  # fmt: skip
    assert run.code == 0, run.stdout
    assert run.summary["resultsUri"] == f"{prefix}/results.json"
    names = sorted(b.name for b in gcs_client.list_blobs(gcs_bucket, prefix="runs/one/"))
    assert names == [
        "runs/one/results.json", "runs/one/stage-00.jetstream.json", "runs/one/stage-00.request-outputs.json",
        "runs/one/stage-00.vllm.json",
    ]  # fmt: skip
    rows = json.loads(bucket.blob("runs/one/stage-00.request-outputs.json").download_as_text())
    assert len(rows) == 8
    assert {"prompt", "original_output", "generated_text", "sample_idx"} <= set(rows[0])
    assert len(list((tmp_path / "cache").rglob("*tiny.model"))) == 1  # downloaded once, cached
    missing = run_bench(
        "--target", server.target, "--dataset", "openorca", "--dataset-path", f"gs://{gcs_bucket}/nope.pkl",
        "--tokenizer", f"gs://{gcs_bucket}/tok/tiny.model", "--warmup", "none",
    )  # fmt: skip
    assert missing.code == 2
    assert "does not exist" in missing.summary["message"]


def test_progress_bar_only_when_enabled(capsys: pytest.CaptureFixture[str]) -> None:
    from tpuserve.bench.runner import Progress

    Progress(False).update("rate=1", 5, 10, force=True)
    assert capsys.readouterr().err == ""
    Progress(True).update("rate=1", 5, 10, force=True)
    assert "rate=1 [###############...............] 5/10" in capsys.readouterr().err
