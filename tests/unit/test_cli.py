"""The top-level CLI: every subcommand registers, and one that cannot load fails alone, clearly."""

from __future__ import annotations

import pytest

from tpuserve import cli


def test_every_subcommand_registers() -> None:
    parser = cli.build_parser()
    for command in cli.SUBCOMMAND_MODULES:
        # --help exits 0 only when the subcommand's own parser exists
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([command, "--help"])
        assert exit_info.value.code == 0


def test_broken_subcommand_fails_alone(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(cli.SUBCOMMAND_MODULES, "broken", "tpuserve.no_such_module")
    assert cli.main(["broken", "anything"]) == 1
    assert "cannot load tpuserve.no_such_module" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
