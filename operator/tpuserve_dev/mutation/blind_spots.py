"""Hand-made mutants where mutmut makes none: `@property` bodies and module-level catalog data (run by `make mutation`).

mutmut cannot wrap a property in its trampoline and does not touch module-level data, yet `TpuSlice.hbm_bytes`,
`RequestResult.e2el` or the catalog's HBM figures are numbers users read. Each mutant below is applied to a copy of
operator/ (first on PYTHONPATH, ahead of the editable install), and the same tests as mutmut's run against it.
Fails when a mutant not marked equivalent survives.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tpuserve_dev import REPO

ROOT = REPO


@dataclass(frozen=True)
class HandMutant:
    path: str  # relative to operator/tpuserve
    before: str
    after: str
    what: str
    equivalent: str = ""  # why no test can notice, when none can


MUTANTS = (
    HandMutant(
        "tpu.py",
        "return self.generation.chip.hbm_gib * 2**30 * self.chips",
        "return self.generation.chip.hbm_gib * 1e9 * self.chips",
        "TpuSlice.hbm_bytes: GB for GiB",
    ),
    HandMutant(
        "tpu.py",
        "return self.generation.chip.hbm_gbps * 1e9 * self.chips",
        "return self.generation.chip.hbm_gbps * 2**30 * self.chips",
        "TpuSlice.hbm_bytes_per_second: GiB for GB",
    ),
    HandMutant("tpu.py", "return self.machine.chips", "return self.machine.chips + 1", "TpuSlice.chips"),
    HandMutant(
        "tpu.py",
        "chip=Chip(hbm_gib=16 * GB,",
        "chip=Chip(hbm_gib=16,",
        "catalog: v5e HBM 16 GiB instead of 16 GB",
    ),
    HandMutant("tpu.py", "chip=Chip(hbm_gib=32,", "chip=Chip(hbm_gib=32 * GB,", "catalog: v4 HBM 32 GB for 32 GiB"),
    HandMutant(
        "bench/metrics.py",
        "return self.times[-1] - self.record.send",
        "return self.times[0] - self.record.send",
        "RequestResult.e2el: the first token chunk for the last",
    ),
    HandMutant(
        "bench/metrics.py",
        "if self.times is None or not self.times:",
        "if self.times is None:",
        "RequestResult.e2el: no guard for an empty `times`",
        equivalent="E2EL is read only for requests with a first token, whose `times` is never empty",
    ),
    HandMutant(
        "bench/metrics.py",
        "return arrivals[0] - self.record.send if arrivals else None",
        "return arrivals[-1] - self.record.send if arrivals else None",
        "RequestResult.ttft: the last arrival for the first",
    ),
    HandMutant(
        "bench/metrics.py",
        "return arrivals[1] - self.record.send if len(arrivals) > 1 else None",
        "return arrivals[1] - self.record.send if len(arrivals) > 2 else None",
        "RequestResult.ttst: a two-message stream has none",
    ),
    HandMutant(
        "bench/metrics.py",
        "if ttft is None or self.output_len < 2:",
        "if ttft is None or self.output_len < 1:",
        "RequestResult.decode_tpot: for one-token answers",
    ),
    HandMutant(
        "bench/metrics.py",
        "return (self.e2el - ttft) / (self.output_len - 1)",
        "return (self.latency - ttft) / (self.output_len - 1)",
        "RequestResult.decode_tpot: latency for E2EL",
    ),
    HandMutant(
        "bench/metrics.py",
        "return len(self.output_ids) if self.output_tokens is None else self.output_tokens",
        "return len(self.output_ids)",
        "RequestResult.output_len: usage ignored",
    ),
    HandMutant(
        "bench/metrics.py",
        "return self.record.end - self.record.send",
        "return self.record.end - self.record.send + 0.001",
        "RequestResult.latency: 1 ms more",
    ),
    HandMutant(
        "convert/verify.py",
        "return not self.mismatches",
        "return not self.mismatches and not self.warnings",
        "VerifyReport.ok: warnings fail the check",
    ),
)


def selected_tests() -> list[str]:
    """mutmut's own test selection ([tool.mutmut] in pyproject.toml): one list for both."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    tests: list[str] = config["pytest_add_cli_args_test_selection"]
    return tests


def main() -> int:
    tests = selected_tests()
    failed = False
    with tempfile.TemporaryDirectory(prefix="tpuserve-hand-mutants-") as tmp:
        copy = Path(tmp) / "tpuserve"
        shutil.copytree(ROOT / "operator" / "tpuserve", copy, ignore=shutil.ignore_patterns("__pycache__"))
        env = os.environ | {"PYTHONPATH": tmp, "PYTHONDONTWRITEBYTECODE": "1"}
        pytest = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
        imported = subprocess.run(
            [sys.executable, "-c", "import tpuserve; print(tpuserve.__file__)"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        clean = subprocess.run(pytest, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if not imported.startswith(tmp) or clean.returncode != 0:
            print(f"the unmutated copy must be imported ({imported}) and pass:\n{clean.stdout[-2000:]}")
            return 1
        killed = 0
        for mutant in MUTANTS:
            source = copy / mutant.path
            original = source.read_text()
            if original.count(mutant.before) != 1:
                print(f"stale hand mutant (its line is not in {mutant.path} once): {mutant.what}")
                failed = True
                continue
            source.write_text(original.replace(mutant.before, mutant.after))
            try:
                run = subprocess.run(pytest, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
            finally:
                source.write_text(original)
            if run.returncode not in (0, 1):
                print(run.stdout[-2000:] + run.stderr[-2000:])
                return 1
            if run.returncode == 1:
                killed += 1
            elif mutant.equivalent:
                print(f"  equivalent: {mutant.what} ({mutant.equivalent})")
            else:
                print(f"  SURVIVED: {mutant.what}: {mutant.before!r} -> {mutant.after!r}")
                failed = True
        equivalent = sum(1 for m in MUTANTS if m.equivalent)
        print(f"hand mutants (properties, catalog data): {killed} of {len(MUTANTS) - equivalent} killed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
