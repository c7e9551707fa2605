"""The one gs:// URI type: the API's pattern, the command lines' early check, and taking a URI apart."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tpuserve import gs_uri
from tpuserve.gs_uri import GsPath

GOOD = ("gs://bucket", "gs://my-bucket/a/b/", "gs://b_1.x/Llama-2-7b/checkpoints/0/items", "gs://abc/k=v@1,2:3~+")
BAD = (
    "gs://",
    "gs://UPPER/x",
    "gs://ab/x",  # bucket too short
    "gs://bucket//x",
    "gs://bucket/../x",
    "gs://bucket/a b",
    "gs://bucket/x*",
    "gs://bucket/x#frag",
    "gs://bucket/" + "x" * gs_uri.MAX_LENGTH,
)


@pytest.mark.parametrize("uri", GOOD)
def test_the_api_pattern_accepts(uri: str) -> None:
    assert gs_uri.check(uri) == uri
    assert gs_uri.location(uri) == uri


@pytest.mark.parametrize("uri", BAD)
def test_the_api_pattern_refuses_and_says_what_to_write(uri: str) -> None:
    with pytest.raises(ValueError, match="is not a usable gs:// URI: write gs://BUCKET/PATH"):
        gs_uri.check(uri)
    with pytest.raises(argparse.ArgumentTypeError, match="bucket name of 3-63"):
        gs_uri.location(uri)


def test_local_paths_pass_the_command_line_check() -> None:
    assert gs_uri.location("/tmp/a b/#x") == "/tmp/a b/#x"


def test_gs_path_takes_a_uri_apart() -> None:
    path = GsPath.parse("gs://bucket/a/b/")
    assert (path.bucket, path.name, path.prefix) == ("bucket", "a/b/", "a/b")
    assert str(path) == "gs://bucket/a/b/"
    assert GsPath.parse("gs://bucket") == GsPath("bucket", "")
    with pytest.raises(ValueError, match="not a gs:// URI"):
        GsPath.parse("/local/path")
    with pytest.raises(ValueError, match="has no bucket name"):
        GsPath.parse("gs:///x")


def test_both_command_lines_refuse_a_bad_uri_at_parse_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tpuserve import cli

    for argv in (
        ["convert", "run", "--model", "llama2-7b", "--source", "gs://b/x y", "--output", "/tmp/o"],
        ["bench", "run", "--target", "h:1", "--output", "gs://Bad/x"],
    ):
        with pytest.raises(SystemExit) as exited:
            cli.main([*argv, "--termination-message-path", str(tmp_path / "message")])
        assert exited.value.code == 2
        assert "is not a usable gs:// URI" in capsys.readouterr().err
