"""`tpuserve convert run` end to end against the GCS emulator, with the synthetic step in place of MaxText.

Exercised for real: the source check, staging by parallel ranged reads with checksums, running the steps as
subprocesses, real Orbax checkpoints (orbax-checkpoint writes them; the unscanned one is a real unroll of the
scanned one), verification, upload, the manifest, reuse, partial-output replacement, the termination message.
Not exercised: MaxText itself (needs Python >= 3.12), reading real Meta .pth weights (no torch).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tpuserve import llama
from tpuserve.convert import layout
from tpuserve.convert.cli import register
from tpuserve.convert.expected import Layout
from tpuserve.convert.manifest import find_verified_output, read_manifest
from tpuserve.convert.run import RunOptions, run, run_subprocess
from tpuserve.convert.summary import ConvertSummary, FailureReason, Outcome
from tpuserve.convert.verify import verify_checkpoint
from tpuserve_dev.tiny_checkpoint import TINY, upload_dir, write_meta_source


@pytest.fixture
def gcs_source(gcs_client: Any, gcs_bucket: str, tmp_path: Path) -> str:
    write_meta_source(tmp_path / "meta", TINY, size=300_000)
    upload_dir(gcs_client, gcs_bucket, tmp_path / "meta", "meta/llama-2-7b")
    return f"gs://{gcs_bucket}/meta/llama-2-7b"


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


class CountingRunner:
    def __init__(self, fail_on: str | None = None, rewrite: Callable[[list[str]], list[str]] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail_on = fail_on
        self.rewrite = rewrite

    def __call__(self, argv: list[str], env: dict[str, str]) -> int:
        self.calls.append(argv)
        if self.fail_on and self.fail_on in argv:
            return 17
        return run_subprocess(self.rewrite(argv) if self.rewrite else argv, env)


def _options(source: str, output: str, tmp_path: Path, arch_json: Path, client: Any, **kw: Any) -> RunOptions:
    return RunOptions(
        model="llama2-7b",
        source=source,
        output=output,
        work_dir=tmp_path / "work",
        step="synthetic",
        arch_json=str(arch_json),
        client=client,
        progress_interval=0.0,
        **kw,
    )


def test_cli_converts_from_gcs_to_gcs_and_then_reuses(
    gcs_client: Any,
    gcs_bucket: str,
    gcs_source: str,
    tmp_path: Path,
    tiny_arch_json: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = f"gs://{gcs_bucket}/maxtext/llama2-7b"
    message = tmp_path / "termination-log"
    monkeypatch.setenv("TPUSERVE_TERMINATION_MESSAGE_PATH", str(message))
    monkeypatch.setenv("TPUSERVE_CONVERT_STEP", "synthetic")
    monkeypatch.setenv("TPUSERVE_CONVERT_ARCH", str(tiny_arch_json))
    argv = ["convert", "run", "--model", "llama2-7b", "--source", gcs_source, "--output", output]
    argv += ["--work-dir", str(tmp_path / "work"), "--download-workers", "3"]
    assert _cli(argv) == 0
    summary = ConvertSummary.from_termination_message(message.read_text())
    assert summary.ok
    assert summary.outcome is Outcome.CONVERTED
    assert summary.unscanned_path == f"{output}/unscanned/checkpoints/0/items"
    assert summary.scanned_path == f"{output}/scanned/0/items"
    assert summary.parameter_count == TINY.num_parameters
    assert len(message.read_bytes()) <= 4096
    assert "staging source:" in capsys.readouterr().err

    manifest = read_manifest(output, client=gcs_client)
    assert manifest is not None
    assert manifest.verified
    assert [s.name for s in manifest.sources] == ["consolidated.00.pth", "params.json", "tokenizer.model"]
    blob = gcs_client.bucket(gcs_bucket).get_blob("meta/llama-2-7b/consolidated.00.pth")
    assert manifest.sources[0].bytes == blob.size
    assert manifest.sources[0].crc32c == blob.crc32c
    assert manifest.tools.conversion_step == "synthetic"
    assert manifest.tools.maxtext_release == "maxtext-v0.2.3"
    assert manifest.timings.staging_bytes == sum(s.bytes for s in manifest.sources)
    assert {c.path for c in manifest.checkpoints} == {summary.scanned_path, summary.unscanned_path}
    report = verify_checkpoint(summary.unscanned_path or "", TINY, Layout.UNSCANNED, client=gcs_client)
    assert report.ok, report.mismatches
    assert not list((tmp_path / "work").glob("run-*"))  # scratch removed after success

    # Second run: the verified output is reused, nothing is converted.
    assert _cli(argv) == 0
    again = ConvertSummary.from_termination_message(message.read_text())
    assert again.outcome is Outcome.REUSED
    assert again.unscanned_path == summary.unscanned_path


def test_partial_output_is_replaced(
    gcs_client: Any, gcs_bucket: str, gcs_source: str, tmp_path: Path, tiny_arch_json: Path
) -> None:
    output = f"gs://{gcs_bucket}/out"
    first = run(_options(gcs_source, output, tmp_path, tiny_arch_json, gcs_client))
    assert first.ok
    # An interrupted run: manifest not yet written, some files missing, a stray file left behind.
    bucket = gcs_client.bucket(gcs_bucket)
    bucket.blob("out/tpuserve-manifest.json").delete()
    victims = [b for b in gcs_client.list_blobs(gcs_bucket, prefix="out/unscanned/") if "/d/" in b.name]
    victims[0].delete()
    bucket.blob("out/scanned/0/items/d/stray").upload_from_string(b"half written")
    assert find_verified_output(output, "llama2-7b", "bfloat16", client=gcs_client) is None

    runner = CountingRunner()
    second = run(_options(gcs_source, output, tmp_path, tiny_arch_json, gcs_client), runner=runner)
    assert second.ok
    assert second.outcome is Outcome.CONVERTED
    assert len(runner.calls) == 2  # scanned and unscanned were rebuilt
    assert bucket.get_blob("out/scanned/0/items/d/stray") is None
    found = find_verified_output(output, "llama2-7b", "bfloat16", client=gcs_client)
    assert found is not None


def test_damaged_verified_output_is_not_reused(
    gcs_client: Any, gcs_bucket: str, gcs_source: str, tmp_path: Path, tiny_arch_json: Path
) -> None:
    output = f"gs://{gcs_bucket}/out"
    assert run(_options(gcs_source, output, tmp_path, tiny_arch_json, gcs_client)).ok
    blob = next(b for b in gcs_client.list_blobs(gcs_bucket, prefix="out/unscanned/") if "/d/" in b.name)
    blob.upload_from_string(blob.download_as_bytes()[:10])  # truncated after the manifest was written
    assert find_verified_output(output, "llama2-7b", "bfloat16", client=gcs_client) is None
    runner = CountingRunner()
    summary = run(_options(gcs_source, output, tmp_path, tiny_arch_json, gcs_client), runner=runner)
    assert summary.outcome is Outcome.CONVERTED
    assert len(runner.calls) == 2


def test_incomplete_source_fails_before_touching_output(
    gcs_client: Any, gcs_bucket: str, tmp_path: Path, tiny_arch_json: Path
) -> None:
    write_meta_source(tmp_path / "meta", TINY, skip=("params.json",))
    upload_dir(gcs_client, gcs_bucket, tmp_path / "meta", "meta")
    gcs_client.bucket(gcs_bucket).blob("out/scanned/0/items/keep").upload_from_string(b"x")
    message = tmp_path / "tm"
    argv = ["convert", "run", "--model", "llama2-7b", "--source", f"gs://{gcs_bucket}/meta"]
    argv += ["--output", f"gs://{gcs_bucket}/out", "--step", "synthetic", "--arch-json", str(tiny_arch_json)]
    argv += ["--work-dir", str(tmp_path / "w"), "--termination-message-path", str(message)]
    assert _cli(argv) == 3
    summary = ConvertSummary.from_termination_message(message.read_text())
    assert summary.reason is FailureReason.SOURCE_INCOMPLETE
    assert summary.missing == ["params.json"]
    assert "missing params.json" in (summary.message or "")
    assert gcs_client.bucket(gcs_bucket).get_blob("out/scanned/0/items/keep") is not None


def test_source_not_found(gcs_client: Any, gcs_bucket: str, tmp_path: Path, tiny_arch_json: Path) -> None:
    summary = run(_options(f"gs://{gcs_bucket}/nothing", str(tmp_path / "o"), tmp_path, tiny_arch_json, gcs_client))
    assert summary.reason is FailureReason.SOURCE_NOT_FOUND
    assert summary.exit_code == 3


def test_failed_step_reports_and_writes_no_manifest(tmp_path: Path, tiny_arch_json: Path) -> None:
    write_meta_source(tmp_path / "meta", TINY)
    output = str(tmp_path / "out")
    runner = CountingRunner(fail_on="unscanned")
    summary = run(_options(str(tmp_path / "meta"), output, tmp_path, tiny_arch_json, None), runner=runner)
    assert summary.reason is FailureReason.CONVERSION_FAILED
    assert summary.exit_code == 5
    assert "exited with code 17" in (summary.message or "")
    assert not Path(layout.manifest_path(output)).exists()
    assert not list((tmp_path / "work").glob("run-*"))  # scratch removed after a failure too


def test_wrong_tree_fails_verification(tmp_path: Path, tiny_arch_json: Path) -> None:
    """A step that writes a checkpoint of another shape (here: a 2-layer model) is caught before upload."""
    other = tmp_path / "other.json"
    other.write_text(json.dumps(dataclasses.asdict(dataclasses.replace(TINY, num_layers=2))))
    write_meta_source(tmp_path / "meta", TINY)
    output = str(tmp_path / "out")

    def swap_arch(argv: list[str]) -> list[str]:
        return [str(other) if a == str(tiny_arch_json) else a for a in argv]

    summary = run(
        _options(str(tmp_path / "meta"), output, tmp_path, tiny_arch_json, None),
        runner=CountingRunner(rewrite=swap_arch),
    )
    assert summary.reason is FailureReason.VERIFICATION_FAILED
    assert summary.exit_code == 6
    assert any("layers_2" in m for m in summary.mismatches)
    assert not Path(output, "scanned").exists()
    assert not Path(layout.manifest_path(output)).exists()


def test_output_of_another_dtype_is_a_conflict_unless_forced(tmp_path: Path, tiny_arch_json: Path) -> None:
    write_meta_source(tmp_path / "meta", TINY)
    output = str(tmp_path / "out")
    assert run(_options(str(tmp_path / "meta"), output, tmp_path, tiny_arch_json, None)).ok
    conflict = run(_options(str(tmp_path / "meta"), output, tmp_path, tiny_arch_json, None, weight_dtype="float32"))
    assert conflict.reason is FailureReason.OUTPUT_CONFLICT
    assert conflict.exit_code == 4
    forced = run(
        _options(str(tmp_path / "meta"), output, tmp_path, tiny_arch_json, None, weight_dtype="float32", force=True)
    )
    assert forced.ok
    assert forced.outcome is Outcome.CONVERTED
    manifest = read_manifest(output)
    assert manifest is not None
    assert manifest.weight_dtype == "float32"


def test_bad_arguments_give_a_summary(tmp_path: Path) -> None:
    bad = run(RunOptions(model="llama2-7b", source=str(tmp_path), output=str(tmp_path / "o"), quantization="int8w"))
    assert bad.reason is FailureReason.ERROR
    assert "int8w" in (bad.message or "")
    unknown = run(RunOptions(model="llama9", source=str(tmp_path), output=str(tmp_path / "o")))
    assert unknown.reason is FailureReason.ERROR
    assert "unknown model" in (unknown.message or "")


def test_maxtext_step_without_maxtext_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TPUSERVE_MAXTEXT_CONFIG", raising=False)
    write_meta_source(tmp_path / "meta", llama.arch("llama2-7b"))
    summary = run(
        RunOptions(model="llama2-7b", source=str(tmp_path / "meta"), output=str(tmp_path / "o"), step="maxtext")
    )
    assert summary.reason is FailureReason.ERROR
    assert "MaxText (maxtext-v0.2.3) is not installed" in (summary.message or "")


def test_command_line_error_still_writes_a_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = tmp_path / "termination-log"
    monkeypatch.setenv("TPUSERVE_TERMINATION_MESSAGE_PATH", str(message))
    with pytest.raises(SystemExit) as exit_info:
        _cli(["convert", "run", "--model", "llama2-7b", "--source", "gs://bkt/meta"])  # no --output
    assert exit_info.value.code == 2
    summary = ConvertSummary.from_termination_message(message.read_text())
    assert summary.reason is FailureReason.ERROR
    assert "--output" in (summary.message or "")


def test_quantization_step_output_is_checked_uploaded_and_recorded(
    gcs_client: Any, gcs_bucket: str, gcs_source: str, tmp_path: Path, tiny_arch_json: Path
) -> None:
    """The synthetic quantize step is a stand-in (int8 casts, saved where MaxText saves quantized params): this
    tests the plumbing around the step, not AQT."""
    output = f"gs://{gcs_bucket}/q"
    runner = CountingRunner()
    summary = run(
        _options(gcs_source, output, tmp_path, tiny_arch_json, gcs_client, quantization="int8"), runner=runner
    )
    assert summary.ok, summary.message
    assert len(runner.calls) == 3
    assert "quantize" in runner.calls[2]
    assert summary.quantized_path == f"{output}/quantized-int8"
    manifest = find_verified_output(output, "llama2-7b", "bfloat16", "int8", client=gcs_client)
    assert manifest is not None
    assert manifest.quantized_path == summary.quantized_path
    assert summary.quantized_path in {c.path for c in manifest.checkpoints}
    assert find_verified_output(output, "llama2-7b", "bfloat16", None, client=gcs_client) is None


def test_quantized_checkpoint_missing_a_layer_fails(tmp_path: Path, tiny_arch_json: Path) -> None:
    from tpuserve.convert import synthetic

    write_meta_source(tmp_path / "meta", TINY)

    def drop_layer(argv: list[str]) -> list[str]:
        if "quantize" not in argv:
            return argv
        # quantize a checkpoint with one layer fewer (the 2-layer scanned one below unrolls to layers_0..1)
        two = dataclasses.replace(TINY, num_layers=2)
        params = synthetic.unroll(synthetic.random_params(two, Layout.SCANNED), 2)
        out = argv[argv.index("--output") + 1]
        synthetic.save_quantized_stand_in(Path(out), params)
        return [sys.executable, "-c", "pass"]

    summary = run(
        _options(str(tmp_path / "meta"), str(tmp_path / "out"), tmp_path, tiny_arch_json, None, quantization="int8"),
        runner=CountingRunner(rewrite=drop_layer),
    )
    assert summary.reason is FailureReason.VERIFICATION_FAILED
    assert "quantized: missing layer decoder.layers_2" in summary.mismatches
