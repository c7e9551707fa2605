"""Peak memory of the real MaxText conversion (converter image) at Llama-architecture sizes that fit this machine,
and a straight-line extrapolation to Llama2-7B/13B/70B. A measurement script, not a test (figures: docs/images.md).

    python -m tests.images.measure_conversion [tiny medium large]

Each size: a Meta-format checkpoint with seeded random weights (in the image, with torch), then MaxText's two
steps exactly as tests/images/test_maxtext_chain.py runs them, each under peak_rss.py (the largest process's
VmHWM, i.e. ru_maxrss). Needs the converter image built (python -m tests.images.build converter).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

from tests.images import tiny
from tests.images.build import IMAGES
from tests.images.docker import DockerDaemon, running_daemon
from tpuserve import llama
from tpuserve.convert import maxtext

SCRIPTS = Path(__file__).parent / "in_container"
# ~0.44e9 parameters: its unscanned step peaks near 7 GiB, which leaves room for the other work on a shared
# 24 GiB machine.
LARGE = llama.LlamaArch("llama2-7b", 12, 1536, 12, 12, 128, 4096, 32000, 1, "assets/tokenizer.llama2")
SIZES = {"tiny": tiny.TINY, "medium": tiny.MEDIUM, "large": LARGE}


def _in_converter(daemon: DockerDaemon, work: Path, *args: str) -> None:
    image = IMAGES["converter"].tag
    result = daemon.run(
        "run", "--rm", "--network", "none", "-v", f"{work}:/work", "--entrypoint", "python3", image, *args,
        check=False, timeout=7200,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{args[:4]} exited {result.returncode}:\n{result.stderr[-4000:]}")


def measure(daemon: DockerDaemon, name: str, arch: llama.LlamaArch) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix=f"tpuserve-measure-{name}-"))
    try:
        work.chmod(0o777)
        shutil.copytree(SCRIPTS, work / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
        (work / "arch.json").write_text(json.dumps(dataclasses.asdict(arch)))
        (work / "entry.json").write_text(json.dumps(tiny.converter_table_entry(arch)))
        for path in [work, *work.rglob("*")]:
            path.chmod(0o777 if path.is_dir() else 0o666)
        _in_converter(daemon, work, "/work/scripts/make_meta_checkpoint.py", "/work/meta", "/work/arch.json")
        paths = maxtext.ConversionPaths(
            "/work/meta", "/work/out/scanned", "/work/out/scanned/0/items", "/work/out", "u"
        )
        scanned = maxtext.scanned_argv("python3", f"llama2-{name}", paths)
        module_args = scanned[scanned.index(maxtext.SCANNED_MODULE) + 1 :]
        _in_converter(
            daemon, work, "/work/scripts/peak_rss.py", "/work/scanned.json", "--",
            "python3", "/work/scripts/convert_scanned.py", f"llama2-{name}", "/work/entry.json", "--", *module_args,
        )  # fmt: skip
        config = "/opt/venv/lib/python3.13/site-packages/maxtext/configs/base.yml"
        unscanned = maxtext.unscanned_argv("python3", config, "llama2-7b", "bfloat16", paths)
        overrides = [o for o in tiny.maxtext_overrides(arch) if not o.startswith("model_name=")]
        _in_converter(daemon, work, "/work/scripts/peak_rss.py", "/work/unscanned.json", "--", *unscanned, *overrides)
        steps = {step: json.loads((work / f"{step}.json").read_text()) for step in ("scanned", "unscanned")}
        meta_bytes = (work / "meta" / "consolidated.00.pth").stat().st_size
        return {"size": name, "parameters": arch.num_parameters, "meta_checkpoint_bytes": meta_bytes, **steps}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def extrapolate(results: list[dict[str, object]]) -> dict[str, dict[str, float]]:
    """Least-squares line peak_rss = a + b * parameters per step, evaluated at the catalog's models."""
    out: dict[str, dict[str, float]] = {}
    for step in ("scanned", "unscanned"):
        xs = [float(r["parameters"]) for r in results]  # type: ignore[arg-type]
        ys = [float(r[step]["peak_rss_bytes"]) for r in results]  # type: ignore[index]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
            (x - mean_x) ** 2 for x in xs
        )
        fixed = mean_y - slope * mean_x
        out[step] = {"fixed_gib": fixed / 2**30, "bytes_per_parameter": slope}
        for model, arch in llama.MODELS.items():
            out[step][f"{model}_gib"] = (fixed + slope * arch.num_parameters) / 2**30
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", default=["tiny", "medium"])
    options = parser.parse_args()
    with running_daemon(Path(tempfile.mkdtemp(prefix="tpuserve-measure-log-"))) as daemon:
        results = []
        for name in options.sizes:
            results.append(measure(daemon, name, SIZES[name]))
            print(json.dumps(results[-1]), flush=True)
    if len(results) > 1:
        print(json.dumps(extrapolate(results), indent=1))


if __name__ == "__main__":
    main()
