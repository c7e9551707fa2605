"""The other OpenAI-protocol load clients the speed experiment compares with: kubernetes-sigs/inference-perf and
guidellm, each from PyPI in its own cached virtualenv, each run pinned like the others and asked for the same load
(the given number of requests of `prompt` / `output` tokens behind the same concurrency cap, streamed, ignore_eos
where the tool has it). Their throughput is read from their own reports; output tokens are the server's usage
counts (64 per request from the Go server), since both tools also re-tokenize the returned text.

    python -m tpuserve_dev.perf.openai_peers install    # make both virtualenvs (once; cached)

inference-perf 0.7.0 needs Python >= 3.12 (PyPI has no release for 3.11), so its venv is made with `python3.12`
from PATH (or pyenv); guidellm 0.8.1 runs on 3.11.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tpuserve_dev import tools_cache

CACHE = tools_cache()
INFERENCE_PERF = ("inference-perf==0.7.0", CACHE / "inference-perf-venv", "3.12")
GUIDELLM = ("guidellm==0.8.1", CACHE / "guidellm-venv", "3.11")


def _python(version: str) -> str:
    found = shutil.which(f"python{version}") or next(
        (str(p) for p in sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))), None
    )
    if not found:
        raise SystemExit(f"python{version} is needed for this tool's venv and is not on PATH (nor in pyenv)")
    return found


def venv(spec: tuple[str, Path, str]) -> Path:
    """The tool's venv bin/ directory, made on first use."""
    package, directory, version = spec
    binary = directory / "bin" / package.split("==")[0]
    if not binary.exists():
        subprocess.run([_python(version), "-m", "venv", str(directory)], check=True)
        subprocess.run([str(directory / "bin" / "pip"), "install", "-q", package], check=True)
    return directory / "bin"


def _pinned(cpu: str | None, command: list[str]) -> list[str]:
    return (["taskset", "-c", cpu] if cpu else []) + command


def inference_perf(
    url: str, tokenizer: str, requests: int, concurrency: int, prompt: int, output: int, cpu: str | None
) -> dict[str, Any]:
    """One inference-perf run (one worker process: the client is pinned to one core)."""
    with tempfile.TemporaryDirectory() as tmp:
        # Lengths a little around `prompt`: the generator retries exact lengths 20 times and drops the request
        # when the tokenizer cannot hit one (it could not always hit 32 with the test model's small vocabulary).
        config = {
            "api": {"type": "completion", "streaming": True},
            "server": {"type": "vllm", "model_name": "fastserver", "base_url": url, "ignore_eos": True},
            "tokenizer": {"pretrained_model_name_or_path": tokenizer},
            "data": {
                "type": "random",
                "input_distribution": {"min": prompt - 4, "max": prompt + 4, "mean": prompt, "std_dev": 2},
                "output_distribution": {"min": output, "max": output, "mean": output, "std_dev": 0, "type": "fixed"},
            },
            "load": {
                "type": "concurrent",
                "num_workers": 1,
                "worker_max_concurrency": concurrency,
                "stages": [{"num_requests": requests, "concurrency_level": concurrency}],
            },
            "storage": {"local_storage": {"path": f"{tmp}/out"}},
        }
        (Path(tmp) / "config.json").write_text(json.dumps(config))
        binary = venv(INFERENCE_PERF) / "inference-perf"
        command = [str(binary), "--config_file", f"{tmp}/config.json"]
        subprocess.run(_pinned(cpu, command), check=True, capture_output=True, cwd=tmp)
        stage = json.loads((Path(tmp) / "out" / "stage_0_lifecycle_metrics.json").read_text())
    ok = stage["successes"]
    return {
        "completed": ok["count"],
        "request_throughput": ok["throughput"]["requests_per_sec"],
        "output_throughput": ok["throughput"]["requests_per_sec"] * ok["output_tokens"]["mean"],
    }


def guidellm(
    url: str, tokenizer: str, requests: int, concurrency: int, prompt: int, output: int, cpu: str | None
) -> dict[str, Any]:
    """One guidellm run: its `concurrent` profile with `concurrency` streams, stopped after `requests`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        command = [
            str(venv(GUIDELLM) / "guidellm"), "run",
            "--backend", f"kind=openai_http,target={url},request_format=/v1/completions",
            "--profile", f"kind=concurrent,streams={concurrency}",
            "--data", f"kind=synthetic_text,prompt_tokens={prompt},output_tokens={output}",
            "--tokenizer", f"kind=hf_auto,model={tokenizer}",
            "--constraint", f"kind=max_requests,count={requests}",
            "--output", f"kind=json,path={out}", "--disable-progress",
        ]  # fmt: skip
        subprocess.run(_pinned(cpu, command), check=True, capture_output=True, cwd=tmp)
        report = json.loads(out.read_text())
    return guidellm_figures(report)


def guidellm_figures(report: dict[str, Any]) -> dict[str, Any]:
    metrics = report["benchmarks"][0]["metrics"]
    totals = metrics.get("request_totals", {})

    def mean(name: str) -> float:
        return float(metrics[name]["successful"]["mean"])

    return {
        "completed": totals.get("successful"),
        "request_throughput": mean("requests_per_second"),
        "output_throughput": mean("output_tokens_per_second"),
    }


PEERS = {"inference-perf": inference_perf, "guidellm": guidellm}


def main() -> int:
    if sys.argv[1:] != ["install"]:
        print(__doc__, file=sys.stderr)
        return 2
    for spec in (INFERENCE_PERF, GUIDELLM):
        print(venv(spec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
