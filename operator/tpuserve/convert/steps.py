"""The conversion's tools: the steps that run (the pinned MaxText release's modules, or the synthetic stand-in
for tests), the architecture they build (the catalog's, or a tiny override) and the versions a manifest records."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tpuserve import __version__, llama
from tpuserve.convert import layout, maxtext
from tpuserve.convert.manifest import ToolVersions


@dataclass(kw_only=True)
class CommonOptions:
    """What both converter commands (run, mirror) take besides their own options."""

    work_dir: Path = Path(layout.DEFAULT_WORK_DIR)
    download_workers: int = 8
    force: bool = False
    arch_json: str | None = None  # a tiny Llama for tests (load_arch)
    client: Any = None  # google.cloud.storage.Client; None = default credentials (or STORAGE_EMULATOR_HOST)


STEP_ENV = "TPUSERVE_CONVERT_STEP"  # "maxtext" (default) or "synthetic"
ARCH_ENV = "TPUSERVE_CONVERT_ARCH"  # path of an architecture JSON (tests: a tiny Llama)
MAXTEXT_CONFIG_ENV = "TPUSERVE_MAXTEXT_CONFIG"  # MaxText's configs/base.yml, when not found in the package


class ConversionSteps(Protocol):
    name: str

    def scanned(self, model: str, paths: maxtext.ConversionPaths) -> list[str]: ...

    def unscanned(self, model: str, weight_dtype: str, paths: maxtext.ConversionPaths) -> list[str]: ...

    def quantize(self, model: str, quantization: str, unscanned_items: str, output_dir: str) -> list[str]: ...


@dataclass
class MaxTextSteps:
    """The pinned MaxText release's conversion modules (the converter image)."""

    python: str = sys.executable
    base_config: str = ""
    name: str = "maxtext"

    def scanned(self, model: str, paths: maxtext.ConversionPaths) -> list[str]:
        return maxtext.scanned_argv(self.python, model, paths)

    def unscanned(self, model: str, weight_dtype: str, paths: maxtext.ConversionPaths) -> list[str]:
        return maxtext.unscanned_argv(self.python, self.base_config, model, weight_dtype, paths)

    def quantize(self, model: str, quantization: str, unscanned_items: str, output_dir: str) -> list[str]:
        return maxtext.quantize_argv(self.python, self.base_config, model, quantization, unscanned_items, output_dir)


@dataclass
class SyntheticSteps:
    """Test stand-in: real Orbax checkpoints of the right tree, random weights (tpuserve.convert.synthetic)."""

    arch_json: str | None
    python: str = sys.executable
    name: str = "synthetic"

    def _base(self, step: str, model: str) -> list[str]:
        argv = [self.python, "-m", "tpuserve.convert.synthetic", step, "--model", model]
        return argv + (["--arch-json", self.arch_json] if self.arch_json else [])

    def scanned(self, model: str, paths: maxtext.ConversionPaths) -> list[str]:
        return [*self._base("scanned", model), "--output", paths.scanned_dir]

    def unscanned(self, model: str, weight_dtype: str, paths: maxtext.ConversionPaths) -> list[str]:
        del weight_dtype  # the stand-in keeps the dtype it was given
        out = layout.join(paths.unscanned_base, paths.unscanned_run_name, "checkpoints")
        return [*self._base("unscanned", model), "--output", out, "--scanned-items", paths.scanned_items]

    def quantize(self, model: str, quantization: str, unscanned_items: str, output_dir: str) -> list[str]:
        # A stand-in (int8 casts of the unscanned params saved where and how MaxText saves quantized params),
        # not AQT: it exercises the plumbing around the step, not quantization.
        del quantization
        return [*self._base("quantize", model), "--output", output_dir, "--scanned-items", unscanned_items]


class ConversionError(RuntimeError):
    pass


def find_maxtext_config() -> str:
    """MaxText's configs/base.yml: env TPUSERVE_MAXTEXT_CONFIG, else inside the installed `maxtext` package."""
    configured = os.environ.get(MAXTEXT_CONFIG_ENV)
    if configured:
        return configured
    spec = importlib.util.find_spec("maxtext")
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError(
            f"MaxText ({maxtext.MAXTEXT_RELEASE}) is not installed: run in the converter image, set "
            f"{MAXTEXT_CONFIG_ENV}, or use {STEP_ENV}=synthetic for tests"
        )
    return str(Path(next(iter(spec.submodule_search_locations))) / maxtext.BASE_CONFIG_IN_PACKAGE)


def make_steps(step: str, arch_json: str | None) -> ConversionSteps:
    if step == "synthetic":
        return SyntheticSteps(arch_json=arch_json)
    if step == "maxtext":
        return MaxTextSteps(base_config=find_maxtext_config())
    raise ConversionError(f"unknown conversion step {step!r}; use maxtext or synthetic")


def load_arch(model: str, arch_json: str | None) -> llama.LlamaArch:
    """The catalog's architecture, or the override (llama.from_override)."""
    if arch_json:
        try:
            return llama.from_override(model, json.loads(Path(arch_json).read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ConversionError(f"cannot read architecture JSON {arch_json}: {exc}") from exc
    return llama.arch(model)


def tool_versions(step: str) -> ToolVersions:
    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    return ToolVersions(
        tpuserve=__version__,
        maxtext_release=maxtext.MAXTEXT_RELEASE,
        maxtext_commit=maxtext.MAXTEXT_COMMIT,
        conversion_step=step,
        orbax_checkpoint=version("orbax-checkpoint"),
        jax=version("jax"),
        tensorstore=version("tensorstore"),
        torch=version("torch"),
        python=sys.version.split()[0],
    )
