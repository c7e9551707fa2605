"""`tpuserve convert {run,mirror,verify,check-source}`. Registration is cheap; the handlers import what they need."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tpuserve import gs_uri, llama, termination
from tpuserve.api import HuggingFaceSource, LlamaCheckpointSpec, Quantization, WeightDtype

if TYPE_CHECKING:
    from tpuserve.convert.summary import ConvertSummary

PROGRAM = "tpuserve convert"  # how messages on stderr name the command
_ARGV: list[str] = []  # set by main(argv) when called in-process, so usage errors find the termination path
HUB_RETRY_ENV = "TPUSERVE_HUB_RETRY_SECONDS"  # the mirror's retry budget (operators set it via converterEnv)


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
    run.add_argument(
        "--source", required=True, type=gs_uri.location, help="Meta checkpoint directory: gs://… or a local path."
    )
    run.add_argument("--output", required=True, type=gs_uri.location, help="Output base: gs://… or a local path.")
    run.add_argument(
        "--weight-dtype", default=str(_checkpoint_default("weight_dtype")), choices=[str(d) for d in WeightDtype]
    )
    run.add_argument(
        "--quantization",
        default=None,
        help=f"MaxText quantization mode ({', '.join(str(q) for q in Quantization)}); default none.",
    )
    run.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="Local scratch (~2.2x the bf16 weights); default /var/tmp/tpuserve-convert.",
    )
    run.add_argument("--download-workers", type=int, default=8, help="Parallel ranged downloads (default 8).")
    run.add_argument("--upload-workers", type=int, default=8, help="Parallel uploads (default 8).")
    run.add_argument("--force", action="store_true", help="Rebuild even when a verified matching output exists.")
    termination.add_path_flag(run)
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
    dtype = str(_checkpoint_default("weight_dtype"))
    verify.add_argument("--dtype", default=dtype, help=f"Stored dtype expected (default {dtype}).")
    verify.add_argument("--json", action="store_true", help="Print the report as JSON.")
    _arch_flag(verify)
    verify.set_defaults(func=_verify)

    _register_mirror(sub, models)

    check = sub.add_parser("check-source", help="List what a Meta checkpoint location has and lacks.")
    check.add_argument("--model", required=True, help=f"Llama model: {models}.")
    check.add_argument("--source", required=True, type=gs_uri.location, help="gs://… or a local path.")
    check.add_argument("--json", action="store_true")
    _arch_flag(check)
    check.set_defaults(func=_check_source)


def _register_mirror(sub: Any, models: str) -> None:
    mirror = sub.add_parser(
        "mirror",
        help="Copy a Hugging Face model into OUT/hf with checksums, verify its safetensors headers, write a manifest.",
        description="Hugging Face model (hub repo at a revision, or a gs:// directory) -> OUT/hf, verified against "
        "the model catalog; reused when an intact mirror of the same source is there. The hub is HF_ENDPOINT "
        "(default huggingface.co); the token is HF_TOKEN.",
    )
    mirror.add_argument("--model", required=True, help=f"Llama model: {models}.")
    mirror.add_argument(
        "--output",
        required=True,
        type=gs_uri.location,
        help="Output base: gs://… or a local path (the model goes to OUT/hf).",
    )
    mirror.add_argument("--repo-id", default=None, help="Hugging Face repo id (org/name); or give --source.")
    revision = HuggingFaceSource.model_fields["revision"].default
    mirror.add_argument(
        "--revision", default=revision, help=f"Branch, tag or commit of --repo-id (default {revision})."
    )
    mirror.add_argument(
        "--source", default=None, type=gs_uri.location, help="A Hugging Face model directory: gs://… or a local path."
    )
    mirror.add_argument(
        "--token-source",
        default="env HF_TOKEN",
        help="Where HF_TOKEN comes from, named in messages (the operator passes its Secret and key).",
    )
    mirror.add_argument("--work-dir", type=Path, default=None, help="Local scratch (the largest file, once).")
    mirror.add_argument("--download-workers", type=int, default=8, help="Parallel ranged reads from gs:// sources.")
    mirror.add_argument("--force", action="store_true", help="Mirror again even when an intact mirror exists.")
    mirror.add_argument(
        "--hub-retry-seconds",
        type=float,
        default=None,
        help=f"Keep retrying a failing hub (5xx, 429, no connection) this long; default env {HUB_RETRY_ENV}, "
        "else 1800.",
    )
    mirror.add_argument(
        "--hub-retry-initial-seconds", type=float, default=2.0, help="First retry delay, doubled each time (<= 60 s)."
    )
    termination.add_path_flag(mirror)
    _arch_flag(mirror)
    mirror.set_defaults(func=_mirror)
    _summarize_usage_errors(mirror)


def _checkpoint_default(field: str) -> Any:
    """A LlamaCheckpoint spec default: what the operator's Job gets when the spec leaves the field out."""
    return LlamaCheckpointSpec.model_fields[field].default


def _summarize_usage_errors(parser: argparse.ArgumentParser) -> None:
    """A command-line error still leaves a failure summary (CONTRACTS item 2), then exits 2 as argparse does."""

    def failure(message: str) -> str:
        from tpuserve.convert.summary import ConvertSummary, FailureReason, Outcome

        summary = ConvertSummary(
            ok=False,
            outcome=Outcome.FAILED,
            reason=FailureReason.ERROR,
            message=f"bad command line: {message}",
            model="unknown",
            weight_dtype="unknown",
        )
        return summary.to_termination_message()

    termination.report_usage_errors(parser, failure, PROGRAM, lambda: _ARGV or sys.argv)


def _arch_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--arch-json",
        default=None,
        help="Architecture override (JSON with tpuserve.llama.LlamaArch fields; env TPUSERVE_CONVERT_ARCH): "
        "for tests with a tiny Llama.",
    )


def _arch_json(args: argparse.Namespace) -> str | None:
    from tpuserve.convert.steps import ARCH_ENV

    value: str | None = args.arch_json or os.environ.get(ARCH_ENV) or None
    return str(Path(value).resolve()) if value else None


def _common_options(args: argparse.Namespace) -> dict[str, Any]:
    """What both commands' flags say alike: the model, the output base and the CommonOptions."""
    from tpuserve.convert.layout import DEFAULT_WORK_DIR

    return {
        **_flags(args, "model", "output", "download_workers", "force"),
        "work_dir": args.work_dir or Path(DEFAULT_WORK_DIR),
        "arch_json": _arch_json(args),
    }


def _flags(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The named flags' values, as the options fields of the same names."""
    return {name: getattr(args, name) for name in names}


def _report(args: argparse.Namespace, summary: ConvertSummary) -> int:
    """The summary to the termination message and stdout; the exit code says how it went."""
    text = summary.to_termination_message()
    termination.write(termination.path(args.termination_message_path), text, PROGRAM)
    print(text)
    return summary.exit_code


def _run(args: argparse.Namespace) -> int:
    from tpuserve.convert import stopping
    from tpuserve.convert.run import RunOptions, run
    from tpuserve.convert.steps import STEP_ENV

    stopping.install()
    step = args.step or os.environ.get(STEP_ENV) or "maxtext"
    flags = _flags(args, "source", "weight_dtype", "quantization", "upload_workers")
    return _report(args, run(RunOptions(step=step, **flags, **_common_options(args))))


def _mirror(args: argparse.Namespace) -> int:
    from tpuserve.convert.hf_source import RetryPolicy
    from tpuserve.convert.mirror import mirror, options_from_env

    policy = RetryPolicy(
        budget_seconds=_hub_retry_seconds(args.hub_retry_seconds), initial_seconds=args.hub_retry_initial_seconds
    )
    flags = _flags(args, "repo_id", "revision", "source", "token_source")
    return _report(args, mirror(options_from_env(policy=policy, **flags, **_common_options(args))))


def _hub_retry_seconds(flag: float | None) -> float:
    if flag is not None:
        return flag
    value = os.environ.get(HUB_RETRY_ENV)
    try:
        return float(value) if value else 1800.0
    except ValueError:
        print(
            f"tpuserve convert mirror: ignoring {HUB_RETRY_ENV}={value!r} (not a number); using 1800", file=sys.stderr
        )
        return 1800.0


def _arch_or_none(args: argparse.Namespace, command: str) -> llama.LlamaArch | None:
    """The architecture of --model (or --arch-json's override), or None after saying on stderr why not."""
    from tpuserve.convert.steps import ConversionError, load_arch

    try:
        return load_arch(args.model, _arch_json(args))
    except (ConversionError, ValueError) as exc:
        print(f"{PROGRAM} {command}: {exc}", file=sys.stderr)
        return None


def _verify(args: argparse.Namespace) -> int:
    from tpuserve.convert.expected import Layout
    from tpuserve.convert.verify import verify_checkpoint, verify_quantized

    arch = _arch_or_none(args, "verify")
    if arch is None:
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
    from tpuserve.convert.source import check_source

    arch = _arch_or_none(args, "check-source")
    if arch is None:
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
    arguments = ["convert", *(sys.argv[1:] if argv is None else argv)]
    _ARGV[:] = arguments
    try:
        args = parser.parse_args(arguments)
    finally:
        _ARGV.clear()  # only this parse's usage errors may read them; a later in-process parse has its own
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
