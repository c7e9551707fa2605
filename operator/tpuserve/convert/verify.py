"""Check an Orbax checkpoint's parameter tree against a Llama architecture, from metadata only."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from tpuserve import llama
from tpuserve.convert.expected import PARAMS_ROOT, STORED_DTYPE, Layout, ParamSpec, expected_params
from tpuserve.convert.orbax_meta import CheckpointMeta, read_checkpoint_meta

_UNSCANNED_LAYER = re.compile(r"^decoder\.layers_\d+\.")
_SCANNED_LAYER = re.compile(r"^decoder\.layers\.")


@dataclass
class VerifyReport:
    path: str
    model: str
    expected_layout: Layout
    found_layout: Layout | None
    dtype: str
    mismatches: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    params_checked: int = 0
    parameter_count: int = 0
    checkpoint_bytes: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def render(self) -> str:
        head = (
            f"{self.path}: {'OK' if self.ok else 'MISMATCH'} — {self.model}, {self.expected_layout.value} layout, "
            f"{self.dtype}; {self.params_checked} params checked, {self.parameter_count:,} parameters, "
            f"{self.checkpoint_bytes / 1e9:.2f} GB in files, {self.seconds:.2f} s"
        )
        lines = [head]
        if self.mismatches:
            lines.append(f"{len(self.mismatches)} mismatch(es):")
            lines += [f"  - {m}" for m in self.mismatches]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _fmt(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def detect_layout(names: list[str]) -> Layout | None:
    if any(_SCANNED_LAYER.match(n) for n in names):
        return Layout.SCANNED
    if any(_UNSCANNED_LAYER.match(n) for n in names):
        return Layout.UNSCANNED
    return None


def compare(meta: CheckpointMeta, arch: llama.LlamaArch, layout: Layout, dtype: str = STORED_DTYPE) -> VerifyReport:
    """Pure: every difference between the checkpoint's metadata and the architecture, in one list."""
    params = {name[len(PARAMS_ROOT) :]: a for name, a in meta.arrays.items() if name.startswith(PARAMS_ROOT)}
    found_layout = detect_layout(list(params))
    report = VerifyReport(meta.path, arch.name, layout, found_layout, dtype, checkpoint_bytes=meta.total_bytes)
    report.mismatches += meta.problems
    report.warnings += meta.warnings
    if not meta.arrays:
        # Nothing readable: the integrity problems say why; listing every expected key would only add noise.
        report.mismatches += [] if meta.problems else ["no arrays found in the checkpoint"]
        return report
    if not params:
        roots = sorted({n.split(".", 1)[0] for n in meta.arrays})
        report.mismatches.append(
            f"no parameters under '{PARAMS_ROOT}' (top-level keys: {', '.join(roots)}); not a MaxText Linen checkpoint"
        )
        return report
    compare_layout = layout
    if found_layout is not None and found_layout is not layout:
        report.mismatches.append(
            f"layout: the checkpoint is {found_layout.value} ("
            + ("decoder.layers.* stacked on axis 1" if found_layout is Layout.SCANNED else "decoder.layers_N.*")
            + f") but {layout.value} is expected"
            + (
                "; a server loads the unscanned checkpoint (…/unscanned/checkpoints/0/items)"
                if layout is Layout.UNSCANNED
                else ""
            )
        )
        compare_layout = found_layout  # still check everything else against what it claims to be
    expected = expected_params(arch, compare_layout, dtype)
    missing_layers: dict[int, list[str]] = {}
    for name, spec in expected.items():
        array = params.get(name)
        if array is None:
            match = re.match(r"^decoder\.layers_(\d+)\.(.+)$", name)
            if match:
                missing_layers.setdefault(int(match.group(1)), []).append(match.group(2))
            else:
                report.mismatches.append(f"missing {name} (expected {_fmt(spec.shape)} {spec.dtype})")
            continue
        report.params_checked += 1
        _compare_one(report, name, spec, array, meta.stores_fill_value_chunks)
    layer_param_count = len(expected) and sum(1 for n in expected if n.startswith("decoder.layers_0."))
    whole = [i for i, names in sorted(missing_layers.items()) if len(names) == layer_param_count]
    for first, last in _runs(whole):
        if first == last:
            report.mismatches.append(f"missing layer decoder.layers_{first} (all {layer_param_count} of its params)")
        else:
            report.mismatches.append(
                f"missing layers decoder.layers_{first} … decoder.layers_{last} ({last - first + 1} layers, "
                f"all {layer_param_count} params of each)"
            )
    for index, names in sorted(missing_layers.items()):
        if len(names) != layer_param_count:
            report.mismatches += [f"missing decoder.layers_{index}.{n}" for n in sorted(names)]
    unexpected = sorted(set(params) - set(expected))
    for name in unexpected:
        a = params[name]
        report.mismatches.append(f"unexpected {name} {_fmt(a.shape)} {a.dtype} (not in {arch.name})")
    tree = {k[len(PARAMS_ROOT) :] for k in meta.tree_keys if k.startswith(PARAMS_ROOT)}
    if meta.tree_keys:
        for name in sorted(tree - set(params)):
            if name in expected:
                report.mismatches.append(f"{name} is listed in _METADATA but its array is absent")
    report.parameter_count = sum(_numel(a.shape) for a in params.values())
    return report


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """[0, 1, 2, 5] -> [(0, 2), (5, 5)]"""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _compare_one(report: VerifyReport, name: str, spec: ParamSpec, array: Any, strict_chunks: bool) -> None:
    if tuple(array.shape) != spec.shape:
        report.mismatches.append(f"wrong shape {name}: {_fmt(array.shape)}, expected {_fmt(spec.shape)}")
    if array.dtype != spec.dtype:
        report.mismatches.append(f"wrong dtype {name}: {array.dtype}, expected {spec.dtype}")
    expected_chunks = array.chunks_expected
    if expected_chunks is not None and array.chunks_found < expected_chunks:
        text = f"incomplete {name}: {array.chunks_found} of {expected_chunks} chunks stored"
        if strict_chunks:
            report.mismatches.append(text)
        else:
            report.warnings.append(text + " (fill-value chunks may be omitted)")


def verify_checkpoint(
    uri: str,
    arch: llama.LlamaArch,
    layout: Layout = Layout.UNSCANNED,
    dtype: str = STORED_DTYPE,
    *,
    client: Any = None,
) -> VerifyReport:
    started = time.monotonic()
    meta = read_checkpoint_meta(uri, client=client)
    report = compare(meta, arch, layout, dtype)
    report.seconds = time.monotonic() - started
    return report


def verify_quantized(uri: str, arch: llama.LlamaArch, *, client: Any = None) -> VerifyReport:
    """A quantized (AQT) parameter checkpoint: readable and intact (every index reference inside its data files),
    with every layer and the embedding present. Shapes and dtypes are not compared: the AQT tree differs by mode."""
    started = time.monotonic()
    meta = read_checkpoint_meta(uri, client=client)
    names = [n[len(PARAMS_ROOT) :] for n in meta.arrays if n.startswith(PARAMS_ROOT)]
    report = VerifyReport(uri, arch.name, Layout.UNSCANNED, detect_layout(names), "quantized")
    report.checkpoint_bytes = meta.total_bytes
    report.mismatches += meta.problems
    report.warnings += [w for w in meta.warnings if "_CHECKPOINT_METADATA" not in w]  # saved without a step dir
    if meta.arrays and not names:
        report.mismatches.append(f"no parameters under '{PARAMS_ROOT}'")
    for prefix in ("token_embedder.", "decoder.decoder_norm."):
        if names and not any(n.startswith(prefix) for n in names):
            report.mismatches.append(f"missing {prefix.rstrip('.')}")
    for i in range(arch.num_layers):
        if names and not any(n.startswith(f"decoder.layers_{i}.") for n in names):
            report.mismatches.append(f"missing layer decoder.layers_{i}")
    report.params_checked = len(names)
    report.parameter_count = sum(_numel(meta.arrays[PARAMS_ROOT + n].shape) for n in names)
    report.seconds = time.monotonic() - started
    return report
