"""The termination-message summary: round trip, camelCase, and the 4 KiB limit."""

from __future__ import annotations

import json

from tpuserve.convert.summary import SUMMARY_MAX_BYTES, ConvertSummary, FailureReason, Outcome


def test_round_trip_camel_case() -> None:
    summary = ConvertSummary(
        ok=True,
        outcome=Outcome.CONVERTED,
        model="llama2-7b",
        weight_dtype="bfloat16",
        unscanned_path="gs://b/o/unscanned/checkpoints/0/items",
        parameter_count=6738415616,
    )
    text = summary.to_termination_message()
    data = json.loads(text)
    assert data["unscannedPath"] == "gs://b/o/unscanned/checkpoints/0/items"
    assert data["parameterCount"] == 6738415616
    assert "reason" not in data  # None fields are left out
    assert ConvertSummary.from_termination_message(text) == summary
    assert summary.exit_code == 0


def test_long_failure_fits_4_kib() -> None:
    summary = ConvertSummary(
        ok=False,
        outcome=Outcome.FAILED,
        reason=FailureReason.VERIFICATION_FAILED,
        message="x" * 6000,
        model="llama2-70b",
        weight_dtype="bfloat16",
        mismatches=[f"missing layer decoder.layers_{i} (all 9 of its params) " + "y" * 300 for i in range(80)],
        missing=[f"consolidated.{i:02d}.pth" for i in range(8)],
    )
    text = summary.to_termination_message()
    assert len(text.encode()) <= SUMMARY_MAX_BYTES
    back = ConvertSummary.from_termination_message(text)
    assert back.reason is FailureReason.VERIFICATION_FAILED
    assert back.exit_code == 6
    assert back.mismatches
    assert back.mismatches[0].startswith("missing layer decoder.layers_0")
