"""`tpuserve bench report`: one table row per stage per results file, and PNG plots across stages and runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from tpuserve.bench import BenchError, storage
from tpuserve.results import RESULTS_SCHEMA_VERSION, BenchmarkResults, LatencyStats

COLUMNS = (
    ("run", 14),
    ("stage", 16),
    ("ok", 6),
    ("fail", 5),
    ("req/s", 9),
    ("out tok/s", 11),
    ("TTFT p50", 10),
    ("TTFT p99", 10),
    ("dTPOT p50", 10),
    ("dTPOT p99", 10),
    ("ITL p50", 9),
    ("JS TPOT p50", 12),
)


def load(uri: str) -> BenchmarkResults:
    text = storage.read_text(uri, "results file")
    try:
        results = BenchmarkResults.model_validate_json(text)
    except ValidationError as exc:
        raise BenchError(
            f"{uri} is not a tpuserve results file ({RESULTS_SCHEMA_VERSION}, the results.json of `bench run`): "
            f"{exc.errors()[0]['msg']}"
        ) from None
    if results.schema_version != RESULTS_SCHEMA_VERSION:
        raise BenchError(f"{uri} has schema {results.schema_version}; this version reads {RESULTS_SCHEMA_VERSION}")
    return results


def _v(stats: LatencyStats | None, attr: str) -> str:
    return f"{getattr(stats, attr):.1f}" if stats is not None else "-"


def label(uri: str) -> str:
    parts = uri.rstrip("/").split("/")
    return parts[-2] if len(parts) > 1 and parts[-1] == "results.json" else parts[-1]


def table(runs: list[tuple[str, BenchmarkResults]]) -> str:
    lines = ["".join(f"{name:>{width}}" for name, width in COLUMNS)]
    for name, results in runs:
        for stage in results.stages:
            cells = (
                name[-13:],
                stage.name[-15:],
                str(stage.successful_requests),
                str(stage.failed_requests),
                f"{stage.request_throughput:.2f}",
                f"{stage.output_throughput:.1f}",
                _v(stage.ttft_ms, "median"),
                _v(stage.ttft_ms, "p99"),
                _v(stage.decode_tpot_ms, "median"),
                _v(stage.decode_tpot_ms, "p99"),
                _v(stage.itl_ms, "median"),
                _v(stage.tpot_ms, "median"),
            )
            lines.append("".join(f"{cell:>{width}}" for cell, (_, width) in zip(cells, COLUMNS, strict=True)))
    return "\n".join(lines) + "\n"


def plot(runs: list[tuple[str, BenchmarkResults]], out_dir: Path) -> list[Path]:
    """Latency vs output throughput (one line per run, one point per stage) for TTFT and decode TPOT."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise BenchError("plots need matplotlib: pip install 'tpuserve[bench]'") from exc
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key, title in (("ttft_ms", "TTFT"), ("decode_tpot_ms", "Decode TPOT"), ("latency_ms", "End-to-end latency")):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, results in runs:
            points = [(s.output_throughput, getattr(s, key)) for s in results.stages if getattr(s, key) is not None]
            if not points:
                continue
            xs = [x for x, _ in points]
            ax.plot(xs, [st.median for _, st in points], marker="o", label=f"{name} p50")
            ax.plot(xs, [st.p99 for _, st in points], marker="x", linestyle="--", label=f"{name} p99")
        ax.set_xlabel("output tokens/s")
        ax.set_ylabel(f"{title} (ms)")
        ax.set_title(f"{title} vs throughput")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        path = out_dir / f"{key.removesuffix('_ms')}-vs-throughput.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def main(args: argparse.Namespace) -> int:
    try:
        runs = [(label(uri), load(uri)) for uri in args.results]
        sys.stdout.write(table(runs))
        if args.output_dir:
            for path in plot(runs, Path(args.output_dir)):
                print(f"wrote {path}")
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
