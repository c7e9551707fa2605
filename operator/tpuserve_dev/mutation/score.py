"""The mutation score per module after `mutmut run` (run by `make mutation` inside .mutation/).

Score = killed / (mutants - equivalent mutants). A mutant with no covering test counts as a survivor. Equivalent
mutants (changes no test can observe, because the behaviour is the same) are listed below by what they change, not
by mutmut's number (numbers shift whenever a function changes), each with the reason it is equivalent.
Fails when any module is under MIN_SCORE, printing every survivor's diff so the next test to write is obvious.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code

MIN_SCORE = 0.90
MODULES = (
    "src/tpuserve/bench/metrics.py",
    "src/tpuserve/tpu.py",
    "src/tpuserve/results.py",
    "src/tpuserve/convert/verify.py",
)


@dataclass(frozen=True)
class Equivalent:
    function: str  # mutmut's function key, e.g. "x_stage_report" or "xǁTpuSliceǁusd_per_hour"
    before: str  # the original line (stripped) the mutant changes
    after: str  # the mutated line (stripped)
    why: str


EQUIVALENTS: tuple[Equivalent, ...] = (
    Equivalent(
        "x_stats_ms",
        "a = np.asarray(values_s, dtype=np.float64) * 1000.0",
        "a = np.asarray(values_s, dtype=None) * 1000.0",
        "numpy makes a list of Python floats float64 anyway (and ints become float64 when multiplied by 1000.0)",
    ),
    Equivalent(
        "x_stats_ms",
        "a = np.asarray(values_s, dtype=np.float64) * 1000.0",
        "a = np.asarray(values_s, ) * 1000.0",
        "the same as dtype=None: float64 is numpy's default for Python floats",
    ),
    Equivalent(
        "x_stage_report",
        'if run.stage.request_rate is None or run.stage.request_rate < float("inf")',
        'if run.stage.request_rate is None or run.stage.request_rate < float("INF")',
        'float() parses "INF" case-insensitively: the same infinity',
    ),
    Equivalent(
        "x_decode_roofline_tokens_per_second",
        "fits = max(int((tpu.hbm_bytes - weight_bytes) // kv_per_sequence), 0) if kv_per_sequence > 0 else batch",
        "fits = max(int((tpu.hbm_bytes - weight_bytes) // kv_per_sequence), 1) if kv_per_sequence > 0 else batch",
        "fits 0 or 1 both end as a batch of 1: the next line maps fits < 1 to 1, and min(batch, 1) is 1",
    ),
    Equivalent(
        "x_decode_roofline_tokens_per_second",
        "batch = min(batch, fits) if fits >= 1 else 1",
        "batch = min(batch, fits) if fits > 1 else 1",
        "they differ only at fits == 1, where min(batch, 1) and the else branch are both 1 (batch >= 1)",
    ),
    Equivalent(
        "x_decode_roofline_tokens_per_second",
        "batch = min(batch, fits) if fits >= 1 else 1",
        "batch = min(batch, fits) if fits >= 2 else 1",
        "likewise: only fits == 1 changes branch, and both branches give 1",
    ),
    Equivalent(
        "x_compare",
        'roots = sorted({n.split(".", 1)[0] for n in meta.arrays})',
        'roots = sorted({n.split(".", )[0] for n in meta.arrays})',
        "only the first dotted part is used: the number of further splits cannot change it",
    ),
    Equivalent(
        "x_compare",
        'roots = sorted({n.split(".", 1)[0] for n in meta.arrays})',
        'roots = sorted({n.split(".", 2)[0] for n in meta.arrays})',
        "likewise",
    ),
    Equivalent(
        "x_verify_quantized",
        "report.mismatches += meta.problems",
        "report.mismatches = meta.problems",
        "the report's list is empty here, and the aliased meta is local to the function (never returned)",
    ),
    Equivalent(
        "x_verify_quantized",
        'report.warnings += [w for w in meta.warnings if "_CHECKPOINT_METADATA" not in w]  # saved without a step dir',
        'report.warnings = [w for w in meta.warnings if "_CHECKPOINT_METADATA" not in w]  # saved without a step dir',
        "the report's warnings are empty here, and the right-hand side is a new list",
    ),
    Equivalent(
        "x_verify_quantized",
        "report.mismatches.append(f\"missing {prefix.rstrip('.')}\")",
        "report.mismatches.append(f\"missing {prefix.rstrip('XX.XX')}\")",
        "rstrip takes a set of characters: {'X', '.'} strips the same from 'token_embedder.' and "
        "'decoder.decoder_norm.', which end in '.' before a letter other than X",
    ),
)


def changed_lines(diff: str) -> tuple[str, str]:
    removed = [line[1:].strip() for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    return " / ".join(removed), " / ".join(added)


def main() -> int:
    failed = False
    matched: set[Equivalent] = set()
    for module in MODULES:
        data = SourceFileMutationData(path=Path(module))
        data.load()
        counts: Counter[str] = Counter()
        survivors: list[tuple[str, str]] = []
        for name, code in sorted(data.exit_code_by_key.items()):
            status = status_by_exit_code[code]
            if status in ("killed", "timeout", "caught by type check", "segfault"):
                counts["killed"] += 1
                continue
            diff = get_diff_for_mutant(name, path=module)
            before, after = changed_lines(diff)
            function = name.rsplit(".", 1)[1].partition("__mutmut_")[0]
            equivalent = next(
                (e for e in EQUIVALENTS if (e.function, e.before, e.after) == (function, before, after)), None
            )
            if equivalent is not None:
                matched.add(equivalent)
                counts["equivalent"] += 1
                continue
            counts[status] += 1
            survivors.append((f"{name}: {status}", diff))
        scored = len(data.exit_code_by_key) - counts["equivalent"]
        score = counts["killed"] / scored if scored else 1.0
        detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        print(f"{module.removeprefix('src/')}: {score:.1%} ({counts['killed']}/{scored}; {detail})")
        failed = failed or score < MIN_SCORE
        if score < MIN_SCORE or "--survivors" in sys.argv:
            for title, diff in survivors:
                print(f"  {title}\n" + "\n".join(f"    {line}" for line in diff.splitlines()[2:]))
    for stale in set(EQUIVALENTS) - matched:
        print(f"listed as equivalent but not found surviving (remove it): {stale.function}: {stale.before}")
    if failed:
        print(f"mutation score under {MIN_SCORE:.0%}: kill the survivors above with tests, or list true equivalents")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
