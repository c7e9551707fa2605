"""Hugging Face mirror performance on this machine: a model with Llama-3.1-8B layer shapes but fewer layers, served
by the tests' local hub (operator/tpuserve_dev/hub_server.py) and mirrored into the GCS emulator; then the reuse run and
the in-place header verification alone.

    .venv/bin/python -m tpuserve_dev.perf.mirror_perf [--layers 1] [--shards 2] [--out results.json]

Not a test (nothing asserted): it prints and optionally saves the figures. Real: huggingface_hub downloading over
HTTP from the local hub, SHA-256 and CRC32C of every file, google-cloud-storage uploads to the emulator, the
header reads (two ranged reads per shard).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from tpuserve import llama
from tpuserve.convert import hf_expected
from tpuserve.convert.hf_source import RetryPolicy
from tpuserve.convert.mirror import MirrorOptions, mirror
from tpuserve.convert.safetensors_header import compare_headers, read_header
from tpuserve.convert.storage import open_store
from tpuserve_dev.gcs_emulator import make_client, running_gcs_emulator
from tpuserve_dev.hf_model import arch_json, hf_model_files
from tpuserve_dev.hub_server import HubRepo, LocalHub, running_hub


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    arch = dataclasses.replace(llama.arch("llama3.1-8b"), num_layers=args.layers)
    files = hf_model_files(arch, shards=args.shards)
    total = sum(len(v) for v in files.values())
    results: dict[str, float] = {"layers": args.layers, "model_mb": round(total / 1e6, 1)}
    with tempfile.TemporaryDirectory() as tmp, running_gcs_emulator() as endpoint:
        client = make_client(endpoint)
        client.create_bucket("perf")
        with running_hub(LocalHub(repos={"meta-llama/Llama-3.1-8B": HubRepo(files=files)})) as hub:
            options = MirrorOptions(
                model="llama3.1-8b",
                output="gs://perf/m",
                repo_id="meta-llama/Llama-3.1-8B",
                endpoint=hub.endpoint,
                work_dir=Path(tmp) / "work",
                arch_json=str(arch_json(arch, Path(tmp) / "arch.json")),
                policy=RetryPolicy(initial_seconds=0.1),
                client=client,
            )
            started = time.monotonic()
            first = mirror(options)
            results["mirror_seconds"] = round(time.monotonic() - started, 2)
            assert first.ok, first.message
            results["mirror_mb_per_s"] = round(total / 1e6 / results["mirror_seconds"], 1)
            started = time.monotonic()
            again = mirror(options)
            results["reuse_seconds"] = round(time.monotonic() - started, 2)
            assert again.outcome == "reused", again.message
        store = open_store("gs://perf/m/hf", client)
        listing = store.list()
        started = time.monotonic()
        headers = [read_header(store, n, i.size) for n, i in listing.items() if n.endswith(".safetensors")]
        problems = compare_headers(headers, hf_expected.tensor_shapes(arch), hf_expected.dtype(arch), None)
        results["verify_headers_seconds"] = round(time.monotonic() - started, 3)
        assert not problems, problems
    print(json.dumps(results, indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
