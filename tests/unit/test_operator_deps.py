"""The operator image installs only the base dependencies ([project].dependencies in pyproject.toml): everything the
operator imports, at start-up and lazily while it reconciles, must come from them or from what they require. The
workloads' dependencies (grpc, protobuf's gencode pins, sentencepiece, numpy, pandas, ...) are the bench and convert
extras; images/operator.Dockerfile installs the base list only."""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from tpuserve_dev import REPO

PACKAGE_ROOT = REPO / "operator"
ENTRY_POINTS = ("tpuserve.cli", "tpuserve.controllers.cli")  # `tpuserve operator ...`
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _name(spec: str) -> str:
    return Requirement(spec).name.lower().replace("_", "-")


def _module_file(module: str) -> Path | None:
    for path in (
        PACKAGE_ROOT / f"{module.replace('.', '/')}.py",
        PACKAGE_ROOT / module.replace(".", "/") / "__init__.py",
    ):
        if path.is_file():
            return path
    return None


def operator_imports() -> tuple[list[str], dict[str, set[str]]]:
    """(tpuserve modules the operator can import, third-party top-level name -> the modules importing it): every
    import statement, module-level or inside a function, followed through tpuserve's own modules."""
    seen: set[str] = set()
    external: dict[str, set[str]] = {}
    pending = list(ENTRY_POINTS)
    while pending:
        module = pending.pop()
        path = _module_file(module)
        if module in seen or path is None:
            continue
        seen.add(module)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "tpuserve":
                    pending.append(name)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    external.setdefault(top, set()).add(module)
    return sorted(seen), external


def base_closure() -> set[str]:
    """The base dependencies and, transitively, what they require (installed metadata; extras not taken)."""
    found: set[str] = set()
    pending = [_name(spec) for spec in PROJECT["dependencies"]]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found.add(name)
        for spec in importlib.metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name.lower().replace("_", "-"))
    return found


def test_every_import_of_the_operator_comes_from_the_base_dependencies() -> None:
    allowed = base_closure()
    providers = importlib.metadata.packages_distributions()
    modules, external = operator_imports()
    assert "tpuserve.controllers.checkpoint" in modules  # the walk reaches the reconcilers
    for top, importers in sorted(external.items()):
        distributions = {d.lower().replace("_", "-") for d in providers.get(top, [])}
        assert distributions & allowed, (
            f"{top} (imported by {', '.join(sorted(importers))}) comes from {sorted(distributions) or 'nothing'}, "
            "not from a base dependency: make it one, or keep it out of the operator's imports"
        )


def test_the_workload_dependencies_are_extras_not_base() -> None:
    base = {_name(spec) for spec in PROJECT["dependencies"]}
    bench = {_name(spec) for spec in PROJECT["optional-dependencies"]["bench"]}
    assert {"grpcio", "protobuf", "sentencepiece", "numpy"} <= bench
    assert not {"grpcio", "protobuf", "sentencepiece", "numpy"} & base


def test_the_operator_loads_and_starts_with_the_workload_dependencies_missing() -> None:
    """Every module the operator can import, imported in a process where the workload-only packages cannot be
    imported (as in the operator image), then `tpuserve operator --help` through the real entry point."""
    allowed = base_closure()
    workload = {_name(s) for extra in ("bench", "convert") for s in PROJECT["optional-dependencies"][extra]}
    providers = importlib.metadata.packages_distributions()
    blocked = sorted(
        top
        for top, distributions in providers.items()
        if {d.lower().replace("_", "-") for d in distributions} <= workload - allowed
    )
    assert {"grpc", "sentencepiece", "numpy", "pandas"} <= set(blocked)
    modules, _ = operator_imports()
    script = f"""
import importlib, sys
BLOCKED = set({blocked!r})

class WorkloadOnly:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{{name}} is not installed in the operator image", name=name)
        return None

sys.meta_path.insert(0, WorkloadOnly())
for module in {modules!r}:
    importlib.import_module(module)
from tpuserve import cli
cli.main(["operator", "--help"])
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "run the tpuserve operator" in result.stdout.lower(), result.stdout


def test_the_wheel_ships_only_the_operator_package() -> None:
    """operator/localcluster and operator/tpuserve_dev are development-only: not in the wheel, not in any image."""
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    root = REPO / find["where"][0]
    packages = [".".join(init.parent.relative_to(root).parts) for init in root.rglob("__init__.py")]
    assert {"localcluster", "tpuserve_dev"} <= set(packages)
    # setuptools' packages.find matches `include` as fnmatch patterns.
    shipped = [p for p in packages if any(fnmatch.fnmatchcase(p, pattern) for pattern in find["include"])]
    assert "tpuserve.controllers" in shipped
    assert all(package == "tpuserve" or package.startswith("tpuserve.") for package in shipped), shipped
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert {"operator/localcluster/", "operator/tpuserve_dev/"} <= set(ignored)
