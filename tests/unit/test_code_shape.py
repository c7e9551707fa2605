"""The code stays readable (issue 14): no function in operator/tpuserve/controllers (its render package included) over
60 lines, no hand-written file in operator/ over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

OPERATOR = Path(__file__).resolve().parents[2] / "operator"
CONTROLLERS = OPERATOR / "tpuserve" / "controllers"
MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 400


def long_functions(folder: Path, limit: int) -> list[str]:
    """`file:function (n lines)` for every function or method longer than `limit` lines (decorators excluded)."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(folder)}:{node.name} ({lines} lines)")
    return found


def test_no_controller_function_is_over_60_lines() -> None:
    assert long_functions(CONTROLLERS, MAX_FUNCTION_LINES) == []


def test_the_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "long.py").write_text(f"def long():\n{body}\n")
    assert long_functions(tmp_path, MAX_FUNCTION_LINES) == ["long.py:long (61 lines)"]
    assert long_functions(tmp_path, MAX_FUNCTION_LINES + 1) == []


def long_files(folder: Path, limit: int) -> list[str]:
    """`path (n lines)` for every Python file over `limit` lines; grpcio-tools' generated *_pb2*.py excepted."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        if lines > limit and "_pb2" not in path.name:
            found.append(f"{path.relative_to(folder)} ({lines} lines)")
    return found


def test_no_file_in_operator_is_over_400_lines() -> None:
    assert long_files(OPERATOR, MAX_FILE_LINES) == []


def test_the_check_sees_a_long_file(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "long.py").write_text("x = 1\n" * (MAX_FILE_LINES + 1))
    (tmp_path / "pkg" / "api_pb2.py").write_text("x = 1\n" * (MAX_FILE_LINES + 1))
    assert long_files(tmp_path, MAX_FILE_LINES) == ["pkg/long.py (401 lines)"]
