"""The controllers stay readable: no function in operator/tpuserve/controllers over 60 lines (issue 14)."""

from __future__ import annotations

import ast
from pathlib import Path

CONTROLLERS = Path(__file__).resolve().parents[2] / "operator" / "tpuserve" / "controllers"
MAX_FUNCTION_LINES = 60


def long_functions(folder: Path, limit: int) -> list[str]:
    """`file:function (n lines)` for every function or method longer than `limit` lines (decorators excluded)."""
    found = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.name}:{node.name} ({lines} lines)")
    return found


def test_no_controller_function_is_over_60_lines() -> None:
    assert long_functions(CONTROLLERS, MAX_FUNCTION_LINES) == []


def test_the_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "long.py").write_text(f"def long():\n{body}\n")
    assert long_functions(tmp_path, MAX_FUNCTION_LINES) == ["long.py:long (61 lines)"]
    assert long_functions(tmp_path, MAX_FUNCTION_LINES + 1) == []
