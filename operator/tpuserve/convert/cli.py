"""`tpuserve convert {run,verify,check-source}`. Registration is cheap; the handlers import what they need."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from tpuserve import llama

TERMINATION_ENV = "TPUSERVE_TERMINATION_MESSAGE_PATH"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="Convert a Meta Llama checkpoint to MaxText checkpoints and verify them.",
        description="Meta Llama checkpoint → MaxText scanned + unscanned Orbax checkpoints, verified.",
    )
    sub = parser.add_subparsers(dest="convert_command", required=True, metavar="SUBCOMMAND")
    models = ", ".join(llama.MODELS)

    run = sub.add_parser("run", help="Check, stage, convert, verify, upload; write a manifest and a summary.")
    run.add_argument("--model", required=True, help=f"Llama model: {models}.")
    run.add_argument("--source", required=True, help="Meta checkpoint directory: gs://… or a local path.")
    run.add_argument("--output", required=True, help="Output base: gs://… or a local path.")
    run.add_argument("--weight-dtype", default="bfloat16", choices=["bfloat16", "float32"])
    run.add_argument("--quantization", default=None, help="MaxText quantization mode (int8, int4, fp8); default none.")
    run.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="Local scratch (~2.2x the bf16 weights); default /var/tmp/tpuserve-convert.",
    )
    run.add_argument("--download-workers", type=int, default=8, help="Parallel ranged downloads (default 8).")
    run.add_argument("--upload-workers", type=int, default=8, help="Parallel uploads (default 8).")
    run.add_argument("--force", action="store_true", help="Rebuild even when a verified matching output exists.")
    run.add_argument(
        "--termination-message-path",
        default=None,
        help=f"Where the JSON summary goes; default env {TERMINATION_ENV}, else {DEFAULT_TERMINATION_PATH}.",
    )
    run.add_argument(
        "--step",
        choices=["maxtext", "synthetic"],
        default=None,
        help="Conversion step: maxtext (default; env TPUSERVE_CONVERT_STEP) or synthetic (tests: real Orbax "
        "checkpoints with random weights, no MaxText).",
    )
    _arch_flag(run)
    run.set_defaults(func=_run)
    _summarize_usage_errors(run)

    verify = sub.add_parser("verify", help="Check an Orbax checkpoint's tree against the model, from metadata only.")
    verify.add_argument("path", help="The checkpoint's items directory (…/0/items): gs://… or a local path.")
    verify.add_argument("--model", required=True, help=f"Llama model: {models}.")
    verify.add_argument(
        "--layout",
        choices=["unscanned", "scanned", "quantized"],
        default="unscanned",
        help="What PATH should be: unscanned (default; what a server loads), scanned, or quantized (OUT/quantized-*: "
        "integrity and layer presence only).",
    )
    verify.add_argument("--dtype", default="bfloat16", help="Stored dtype expected (default bfloat16).")
    verify.add_argument("--json", action="store_true", help="Print the report as JSON.")
    _arch_flag(verify)
    verify.set_defaults(func=_verify)

    check = sub.add_parser("check-source", help="List what a Meta checkpoint location has and lacks.")
    check.add_argument("--model", required=True, help=f"Llama model: {models}.")
    check.add_argument("--source", required=True, help="gs://… or a local path.")
    check.add_argument("--json", action="store_true")
    _arch_flag(check)
    check.set_defaults(func=_check_source)


def _summarize_usage_errors(parser: argparse.ArgumentParser) -> None:
    """A command-line error still leaves a failure summary (CONTRACTS item 2), then exits 2 as argparse does."""
    original = parser.error

    def error(message: str) -> Any:
        from tpuserve.convert.summary import ConvertSummary, FailureReason, Outcome

        summary = ConvertSummary(
            ok=False,
            outcome=Outcome.FAILED,
            reason=FailureReason.ERROR,
            message=f"bad command line: {message}",
            model="unknown",
            weight_dtype="unknown",
        )
        write_termination_message(
            termination_path(_flag_value("--termination-message-path")), summary.to_termination_message()
        )
        return original(message)

    parser.error = error  # type: ignore[method-assign]


def _flag_value(flag: str) -> str | None:
    argv = sys.argv
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _arch_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--arch-json",
        default=None,
        help="Architecture override (JSON with tpuserve.llama.LlamaArch fields; env TPUSERVE_CONVERT_ARCH): "
        "for tests with a tiny Llama.",
    )


def _arch_json(args: argparse.Namespace) -> str | None:
    from tpuserve.convert.run import ARCH_ENV

    value: str | None = args.arch_json or os.environ.get(ARCH_ENV) or None
    return str(Path(value).resolve()) if value else None


def termination_path(explicit: str | None) -> str:
    return explicit or os.environ.get(TERMINATION_ENV) or DEFAULT_TERMINATION_PATH


def write_termination_message(path: str, text: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as exc:
        print(f"tpuserve convert: cannot write the termination message to {path}: {exc}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    from tpuserve.convert import stopping
    from tpuserve.convert.run import DEFAULT_WORK_DIR, STEP_ENV, RunOptions, run

    stopping.install()
    options = RunOptions(
        model=args.model,
        source=args.source,
        output=args.output,
        weight_dtype=args.weight_dtype,
        quantization=args.quantization,
        work_dir=args.work_dir or Path(DEFAULT_WORK_DIR),
        download_workers=args.download_workers,
        upload_workers=args.upload_workers,
        force=args.force,
        step=args.step or os.environ.get(STEP_ENV) or "maxtext",
        arch_json=_arch_json(args),
    )
    summary = run(options)
    text = summary.to_termination_message()
    write_termination_message(termination_path(args.termination_message_path), text)
    print(text)
    return summary.exit_code


def _load_arch(model: str, arch_json: str | None) -> llama.LlamaArch:
    from tpuserve.convert.run import load_arch

    return load_arch(model, arch_json)


def _verify(args: argparse.Namespace) -> int:
    from tpuserve.convert.expected import Layout
    from tpuserve.convert.run import ConversionError
    from tpuserve.convert.verify import verify_checkpoint, verify_quantized

    try:
        arch = _load_arch(args.model, _arch_json(args))
    except (ConversionError, ValueError) as exc:
        print(f"tpuserve convert verify: {exc}", file=sys.stderr)
        return 2
    if args.layout == "quantized":
        report = verify_quantized(args.path, arch)
    else:
        report = verify_checkpoint(args.path, arch, Layout(args.layout), args.dtype)
    if args.json:
        print(
            json.dumps(
                {
                    "path": report.path,
                    "model": report.model,
                    "ok": report.ok,
                    "expectedLayout": report.expected_layout.value,
                    "foundLayout": report.found_layout.value if report.found_layout else None,
                    "dtype": report.dtype,
                    "paramsChecked": report.params_checked,
                    "parameterCount": report.parameter_count,
                    "checkpointBytes": report.checkpoint_bytes,
                    "seconds": round(report.seconds, 3),
                    "mismatches": report.mismatches,
                    "warnings": report.warnings,
                },
                indent=1,
            )
        )
    else:
        print(report.render())
    return 0 if report.ok else 1


def _check_source(args: argparse.Namespace) -> int:
    from tpuserve.convert.run import ConversionError
    from tpuserve.convert.source import check_source

    try:
        arch = _load_arch(args.model, _arch_json(args))
    except (ConversionError, ValueError) as exc:
        print(f"tpuserve convert check-source: {exc}", file=sys.stderr)
        return 2
    check = check_source(args.source, args.model, arch=arch)
    if args.json:
        print(check.model_dump_json(by_alias=True, indent=1))
    else:
        print(check.message)
        for name, size in check.present.items():
            print(f"  present {name} ({size:,} bytes)")
        for name in check.missing:
            print(f"  MISSING {name}")
    return 0 if check.complete else 3


def main(argv: list[str] | None = None) -> int:
    """`python -m tpuserve.convert.cli {run,verify,check-source} …` (same as `tpuserve convert …`)."""
    parser = argparse.ArgumentParser(prog="tpuserve convert")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["convert", *(sys.argv[1:] if argv is None else argv)])
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
