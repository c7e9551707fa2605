"""The one termination-message module shared by `tpuserve bench` and `tpuserve convert`: where the message goes,
how it is cut to fit, and that a usage error of either command still leaves a parseable failure summary."""

from __future__ import annotations

from pathlib import Path

import pytest
from tpuserve import termination
from tpuserve.bench import cli as bench_cli
from tpuserve.convert import cli as convert_cli
from tpuserve.convert.summary import ConvertSummary, FailureReason
from tpuserve.results import BenchmarkSummary


def test_path_prefers_the_flag_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(termination.PATH_ENV, raising=False)
    assert termination.path(None) == termination.DEFAULT_PATH
    monkeypatch.setenv(termination.PATH_ENV, "/env/path")
    assert termination.path(None) == "/env/path"
    assert termination.path("/flag/path") == "/flag/path"
    assert termination.path_from_argv(["run", termination.PATH_FLAG, "/a"]) == "/a"
    assert termination.path_from_argv(["run", f"{termination.PATH_FLAG}=/b"]) == "/b"
    assert termination.path_from_argv(["run", termination.PATH_FLAG]) == "/env/path"  # flag without a value


def test_write_creates_parents_and_warns_instead_of_raising(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "a" / "b" / "message"
    termination.write(str(target), "{}", "tpuserve test")
    assert target.read_text() == "{}"
    termination.write(str(tmp_path), "{}", "tpuserve test")  # a directory: cannot be written
    assert f"tpuserve test: cannot write the termination message to {tmp_path}" in capsys.readouterr().err


def test_shrink_to_fit_applies_the_first_shrink_that_still_cuts() -> None:
    items = ["x" * 1000] * 10
    calls: list[str] = []

    def fewer() -> bool:
        calls.append("fewer")
        if len(items) <= 2:
            return False
        items.pop()
        return True

    def never() -> bool:
        calls.append("never")
        return False

    text = termination.shrink_to_fit(lambda: "".join(items), fewer, never)
    assert termination.size(text) <= termination.MAX_BYTES < termination.size(text) + 1000
    assert calls == ["fewer"] * 6  # 10 -> 4 items; `never` was not needed
    # When no shrink can cut any more, the last rendering comes back as it is (the caller decides).
    big = termination.shrink_to_fit(lambda: "y" * (termination.MAX_BYTES + 1), never)
    assert termination.size(big) == termination.MAX_BYTES + 1


def test_bench_usage_error_writes_a_failure_summary(tmp_path: Path) -> None:
    target = tmp_path / "bench-message"
    with pytest.raises(SystemExit) as exited:
        bench_cli.main(["run", "--target", "h:1", "--num-prompts", "0", termination.PATH_FLAG, str(target)])
    assert exited.value.code == 2
    summary = BenchmarkSummary.from_termination_message(target.read_text())
    assert summary.message is not None
    assert summary.message.startswith("invalid arguments: argument --num-prompts")
    assert summary.successful_requests == 0


def test_convert_usage_error_writes_a_failure_summary(tmp_path: Path) -> None:
    target = tmp_path / "convert-message"
    with pytest.raises(SystemExit) as exited:
        convert_cli.main(["run", "--model", "llama2-7b", f"{termination.PATH_FLAG}={target}"])
    assert exited.value.code == 2
    summary = ConvertSummary.from_termination_message(target.read_text())
    assert not summary.ok
    assert summary.reason == FailureReason.ERROR
    assert summary.message is not None
    assert "bad command line" in summary.message
    assert "--source" in summary.message


def test_summaries_are_cut_to_the_limit() -> None:
    from tpuserve.convert.summary import Outcome

    long = ConvertSummary(
        ok=False,
        outcome=Outcome.FAILED,
        reason=FailureReason.VERIFICATION_FAILED,
        message="m" * 5000,
        model="llama2-7b",
        weight_dtype="bfloat16",
        mismatches=["z" * 500] * 50,
        missing=["f" * 500] * 50,
    )
    text = long.to_termination_message()
    assert termination.size(text) <= termination.MAX_BYTES
    assert ConvertSummary.from_termination_message(text).mismatches  # the first mismatch is kept
