"""Converter performance on this machine: staging throughput from the GCS emulator, and verify time and peak
memory on synthetic checkpoints with Llama2-7B layer shapes but fewer layers.

    .venv/bin/python -m tpuserve_dev.perf.convert_perf [--source-mb 512] [--layers 1 3] [--out results.json]

Not a test (nothing asserted): it prints and optionally saves the figures. Everything is real: the GCS emulator
subprocess, google-cloud-storage ranged reads, orbax-checkpoint writing the checkpoints, tensorstore reading
their OCDBT index. Verify runs in a fresh subprocess per measurement so its peak RSS (VmHWM) is its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tpuserve import llama
from tpuserve_dev.gcs_emulator import make_client, running_gcs_emulator

_VERIFY_CHILD = """
import json, sys, time
from tpuserve import llama
from tpuserve.convert.expected import Layout
from tpuserve.convert.verify import verify_checkpoint
def peak_mb():
    # VmHWM is this process's own high-water mark (ru_maxrss can carry the parent's value across fork+exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
arch = llama.LlamaArch(**json.loads(sys.argv[2]))
t = time.monotonic()
report = verify_checkpoint(sys.argv[1], arch, Layout(sys.argv[3]))
elapsed = time.monotonic() - t
print(json.dumps({"ok": report.ok, "mismatches": report.mismatches[:3], "seconds": elapsed,
                  "bytes": report.checkpoint_bytes,
                  "peak_rss_mb": peak_mb()}))
"""


def _arch(layers: int) -> llama.LlamaArch:
    return dataclasses.replace(llama.arch("llama2-7b"), num_layers=layers)


def _verify(path: str, arch: llama.LlamaArch, layout: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _VERIFY_CHILD, path, json.dumps(dataclasses.asdict(arch)), layout],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _write_checkpoints(root: Path, arch: llama.LlamaArch) -> tuple[Path, Path, float]:
    root.mkdir(parents=True, exist_ok=True)
    arch_json = root / "arch.json"
    arch_json.write_text(json.dumps(dataclasses.asdict(arch)))
    started = time.monotonic()
    base = [sys.executable, "-m", "tpuserve.convert.synthetic"]
    subprocess.run(
        [*base, "scanned", "--model", "llama2-7b", "--arch-json", str(arch_json), "--output", str(root / "s")],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *base,
            "unscanned",
            "--model",
            "llama2-7b",
            "--arch-json",
            str(arch_json),
            "--output",
            str(root / "u"),
            "--scanned-items",
            str(root / "s/0/items"),
        ],
        check=True,
        capture_output=True,
    )
    return root / "s/0/items", root / "u/0/items", time.monotonic() - started


def measure_staging(
    client: Any, bucket: str, tmp: Path, source_mb: int, workers_list: list[int]
) -> list[dict[str, Any]]:
    from tpuserve.convert.source import stage_source
    from tpuserve.convert.storage import GcsStore

    arch = llama.arch("llama2-7b")
    src = tmp / "meta"
    src.mkdir()
    with (src / "consolidated.00.pth").open("wb") as handle:
        for _ in range(source_mb):
            handle.write(os.urandom(1024 * 1024))
    (src / "params.json").write_text("{}")
    for path in src.iterdir():
        client.bucket(bucket).blob(f"meta/{path.name}", chunk_size=64 * 1024 * 1024).upload_from_filename(str(path))
        path.unlink()
    results = []
    for workers in workers_list:
        dest = tmp / f"staged-{workers}"
        files, seconds = stage_source(
            GcsStore(f"gs://{bucket}/meta", client), arch, dest, workers=workers, progress_interval=3600
        )
        total = sum(f.bytes for f in files)
        mbps = round(total / 1e6 / seconds, 1)
        results.append({"workers": workers, "bytes": total, "seconds": round(seconds, 3), "MBps": mbps})
        for f in dest.iterdir():
            f.unlink()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-mb", type=int, default=512, help="size of the synthetic consolidated.00.pth")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 3], help="7B-shaped checkpoints to verify")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    with tempfile.TemporaryDirectory(prefix="tpuserve-perf-") as tmp_name, running_gcs_emulator() as endpoint:
        tmp = Path(tmp_name)
        client = make_client(endpoint)
        client.create_bucket("perf")
        results["staging"] = measure_staging(client, "perf", tmp, args.source_mb, args.workers)
        print(json.dumps({"staging": results["staging"]}), flush=True)
        results["verify"] = []
        for layers in args.layers:
            arch = _arch(layers)
            root = tmp / f"ckpt-{layers}"
            scanned, unscanned, write_seconds = _write_checkpoints(root, arch)
            local = _verify(str(unscanned), arch, "unscanned")
            local_scanned = _verify(str(scanned), arch, "scanned")
            for path in sorted(unscanned.parent.rglob("*")):
                if path.is_file():
                    rel = path.relative_to(unscanned.parent.parent).as_posix()
                    client.bucket("perf").blob(f"ck{layers}/{rel}", chunk_size=64 * 1024 * 1024).upload_from_filename(
                        str(path)
                    )
            remote = _verify(f"gs://perf/ck{layers}/0/items", arch, "unscanned")
            entry = {
                "layers": layers,
                "parameters": arch.num_parameters,
                "write_seconds": round(write_seconds, 1),
                "unscanned_local": local,
                "scanned_local": local_scanned,
                "unscanned_gcs_emulator": remote,
            }
            results["verify"].append(entry)
            print(json.dumps(entry), flush=True)
            subprocess.run(["rm", "-rf", str(root)], check=True)
    results["self_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
