"""`tpuserve bench run | report`: argument parsing only; the work is in tpuserve.bench.run / .report.

Registration stays cheap: heavy modules (grpc, numpy, pandas, matplotlib) are imported by the handlers.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from tpuserve import gs_uri, termination
from tpuserve.api import BenchmarkRunSpec, DatasetName, DatasetSpec, OpenAIEndpoint, OpenAISpec, Protocol, Warmup
from tpuserve.api.conventions import ApiModel
from tpuserve.bench import PROGRAM
from tpuserve.bench.filters import DEFAULT_FILTERS as FILTERS

# Defaults: the BenchmarkRun API's where it has the setting (so a run and a Job the operator renders agree), else
# JetStream's filters.


def _default(model: type[ApiModel], field: str) -> Any:
    return model.model_fields[field].default


_ARGV: list[str] = []  # set by main(argv) when called in-process, so usage errors find the termination path


def _usage_failure(message: str) -> str:
    from tpuserve.bench.outputs import failure_summary

    return failure_summary(f"invalid arguments: {message}")


LOAD_HELP = "at most one of --request-rate, --concurrency, --sweep (default: --request-rate inf)"


def rate(text: str) -> float:
    """A request rate: a positive number of requests per second, or 'inf' (every request at once)."""
    if text.strip().lower() in {"inf", "infinity"}:
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'inf'") from None
    if not value > 0 or math.isnan(value):
        raise argparse.ArgumentTypeError(f"request rate {text!r} must be positive (or 'inf')")
    return value


def rates(text: str) -> list[float]:
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("--sweep needs a comma-separated list of rates, e.g. 1,2,4,inf")
    return [rate(p) for p in parts]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0 or math.isnan(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def positive(text: str) -> float:
    value = non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--target",
        required=True,
        metavar="HOST:PORT|URL",
        help="JetStream gRPC HOST:PORT, or an OpenAI-compatible server's base URL (http://HOST:PORT)",
    )
    p.add_argument(
        "--protocol",
        choices=[str(p) for p in Protocol],
        help="default: openai for an http(s):// target, else jetstream",
    )
    g = p.add_argument_group("OpenAI protocol")
    g.add_argument(
        "--endpoint",
        choices=[str(e) for e in OpenAIEndpoint],
        default=str(_default(OpenAISpec, "endpoint")),
        help="streamed with stream_options.include_usage",
    )
    g.add_argument("--ignore-eos", action="store_true", help="ask the server to generate every max_tokens token")
    g.add_argument(
        "--api-key-file",
        metavar="PATH",
        help="bearer token file (default $TPUSERVE_BENCH_API_KEY; never a command-line value)",
    )
    g = p.add_argument_group("dataset")
    g.add_argument(
        "--dataset", choices=[*(str(d) for d in DatasetName), "random"], default=str(_default(DatasetSpec, "name"))
    )
    g.add_argument("--random-input-len", type=positive_int, default=1024, help="random: mean prompt tokens (vLLM)")
    g.add_argument("--random-output-len", type=positive_int, default=128, help="random: mean output tokens")
    g.add_argument("--random-range-ratio", type=non_negative, default=0.0, help="random: lengths in L*(1 -/+ r)")
    g.add_argument(
        "--dataset-path",
        metavar="PATH|gs://...",
        help="openorca pickle / sharegpt JSON (default $TPUSERVE_DATASETS_DIR/<standard file name>)",
    )
    g.add_argument("--synthetic-input-length", metavar="N|LO:HI", help="synthetic prompt length in tokens")
    g.add_argument("--synthetic-output-length", metavar="N|LO:HI", help="synthetic output length in tokens")
    g.add_argument("--vocab-size", type=positive_int, default=32000, help="synthetic ids without --tokenizer")
    g.add_argument(
        "--tokenizer",
        metavar="PATH|gs://...|assets/...",
        help="SentencePiece model, or a Hugging Face tokenizer.json / a directory holding one (Llama 3); "
        "assets/... resolves against $TPUSERVE_MAXTEXT_DIR, default /opt/maxtext",
    )
    g.add_argument("--num-prompts", type=positive_int, default=_default(BenchmarkRunSpec, "num_prompts"))
    g.add_argument(
        "--seed",
        type=int,
        default=_default(BenchmarkRunSpec, "seed"),
        help="prompt sampling and arrival times (JetStream's draws)",
    )
    g.add_argument(
        "--max-output-length",
        type=positive_int,
        help="tokens every request asks for (JetStream semantics); default each prompt's reference length",
    )
    g.add_argument("--min-input-length", type=positive_int, default=FILTERS.min_input_length)
    g.add_argument("--max-input-length", type=positive_int, default=FILTERS.max_input_length)
    g.add_argument(
        "--min-output-length", type=positive_int, default=FILTERS.min_output_length, help="on the reference output"
    )
    g.add_argument(
        "--max-target-length", type=positive_int, default=FILTERS.max_target_length, help="prompt + reference output"
    )
    g.add_argument(
        "--oversample",
        type=positive,
        default=FILTERS.oversample,
        help=f"JetStream samples {FILTERS.oversample}x before filtering",
    )
    g.add_argument("--conversation-starter", choices=["human", "gpt", "both"], default="human", help="sharegpt")
    g = p.add_argument_group("load", LOAD_HELP)
    g.add_argument("--request-rate", type=rate, help="Poisson arrivals per second, or inf (all at once)")
    g.add_argument("--concurrency", type=positive_int, help="closed loop: this many requests in flight")
    g.add_argument("--sweep", type=rates, metavar="R1,R2,...", help="one stage per rate (inf allowed)")
    g.add_argument(
        "--burstiness",
        type=positive,
        help="gamma arrivals as vllm bench serve draws them (1 = Poisson; <1 burstier); default JetStream's Poisson",
    )
    g.add_argument(
        "--max-concurrency", type=positive_int, help="with a rate: at most this many in flight (later ones wait)"
    )
    g.add_argument("--stage-pause", type=non_negative, default=5.0, metavar="SECONDS", help="between stages")
    g.add_argument("--warmup", choices=[str(w) for w in Warmup], default=str(_default(BenchmarkRunSpec, "warmup")))
    g.add_argument("--warmup-pause", type=non_negative, default=5.0, metavar="SECONDS")
    g.add_argument("--channels", type=positive_int, default=1, help="gRPC connections (a small pool)")
    g.add_argument(
        "--engine",
        choices=["cq", "aio"],
        default="cq",
        help="cq: gRPC core completion queue on a receiver thread (fast); aio: grpc.aio tasks (portable)",
    )
    g = p.add_argument_group("limits")
    g.add_argument("--server-wait", type=non_negative, default=600.0, metavar="SECONDS", help="HealthCheck budget")
    g.add_argument("--request-timeout", type=non_negative, default=600.0, metavar="SECONDS", help="0 = none")
    g.add_argument("--timeout", type=positive, metavar="SECONDS", help="whole run; ends with partial results")
    g = p.add_argument_group("goodput")
    g.add_argument("--slo-ttft-ms", type=positive)
    g.add_argument("--slo-tpot-ms", type=positive, help="on decode TPOT")
    g.add_argument("--slo-e2el-ms", type=positive, help="on E2EL (vllm bench serve's goodput)")
    g = p.add_argument_group("output")
    g.add_argument(
        "--output", metavar="DIR|gs://bucket/prefix", type=gs_uri.location, help="where result files go (default: none)"
    )
    g.add_argument("--save-request-outputs", action="store_true", help="also every request's output (needs --output)")
    g.add_argument(
        "--model",
        default="unknown",
        help="model label in the results (model_id); OpenAI: the model requested (default: the server's first)",
    )
    g.add_argument("--metadata", metavar="JSON", help='extra string dimensions, e.g. {"accelerator": "v5e-8"}')
    termination.add_path_flag(g)
    g.add_argument("--progress", choices=["auto", "always", "never"], default="auto", help="auto = on a terminal")


def _run(args: argparse.Namespace) -> int:
    from tpuserve.bench.run import main

    return main(args)


def _report(args: argparse.Namespace) -> int:
    from tpuserve.bench.report import main

    return main(args)


def register(subparsers: Any) -> None:
    bench = subparsers.add_parser(
        "bench", help="benchmark a JetStream or OpenAI-compatible server", description=__doc__
    )
    sub = bench.add_subparsers(dest="bench_command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="send a dataset to a JetStream or OpenAI-compatible server and measure it")
    add_run_arguments(run)
    run.set_defaults(func=_run)
    # Usage errors also go to the termination message (the operator shows why the Job failed).
    termination.report_usage_errors(run, _usage_failure, PROGRAM, lambda: _ARGV or sys.argv)
    report = sub.add_parser("report", help="tables and PNG plots from results files")
    report.add_argument("results", nargs="+", metavar="FILE|gs://...", help="results.json files (ours)")
    report.add_argument("--output-dir", metavar="DIR", help="write PNG plots here")
    report.set_defaults(func=_report)
    termination.report_usage_errors(report, _usage_failure, PROGRAM, lambda: _ARGV or sys.argv)


def main(argv: list[str] | None = None) -> int:
    """`python -m tpuserve.bench.cli ...` = `tpuserve bench ...` (useful while other subcommands are missing)."""
    parser = argparse.ArgumentParser(prog="tpuserve")
    register(parser.add_subparsers(dest="command", required=True))
    arguments = ["bench", *(argv if argv is not None else sys.argv[1:])]
    _ARGV[:] = arguments
    try:
        args = parser.parse_args(arguments)
    finally:
        _ARGV.clear()  # only this parse's usage errors may read them; a later in-process parse has its own
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
