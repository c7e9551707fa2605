"""Record which requests JetStream's own client selects, for the sampling-parity test (test_sampling.py).

Run with the JetStream 0.2.2 venv's python and a checkout of JetStream's benchmarks/ (not part of this repo):

    JS=$(bash tests/jetstream/setup-venv.sh)
    $JS tests/bench/record_parity.py --benchmark-script /path/to/JetStream/benchmarks/benchmark_serving.py \
        --label v0.2.2 --data tests/bench/data/parity

It imports that benchmark_serving.py (with a stand-in for its `eval_accuracy` import, which needs nltk/evaluate
and is unused here), seeds `random` as its main() does, and calls its own load/sample functions on the committed
datasets and tokenizer, writing what it selected to <data>/expected-<label>.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import random
import shutil
import sys
import tempfile
import types
from pathlib import Path

CASES = [
    # dataset, seed, num_prompts, max_output_length
    ("sharegpt", 0, 40, None),
    ("sharegpt", 1, 40, 16),
    ("sharegpt", 0, 400, None),  # more prompts than the dataset holds: JetStream repeats its sample
    ("openorca", 0, 30, None),
    ("openorca", 3, 60, 8),
]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--benchmark-script", required=True, type=Path)
    parser.add_argument("--label", required=True)
    parser.add_argument("--data", required=True, type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    try:
        script = work / "benchmark_serving.py"
        shutil.copy(args.benchmark_script, script)
        # 0.2.2 reads the openorca pickle next to the script, under this name.
        shutil.copy(args.data / "openorca.pkl", work / "open_orca_gpt4_tokenized_llama.calibration_1000.pkl")
        stub = types.ModuleType("eval_accuracy")
        stub.eval_accuracy = lambda *_args, **_kwargs: {}  # type: ignore[attr-defined]
        sys.modules["eval_accuracy"] = stub
        spec = importlib.util.spec_from_file_location("benchmark_serving", script)
        assert spec
        assert spec.loader
        bs = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bs)
        get_tokenizer_params = inspect.signature(bs.get_tokenizer).parameters
        tok_args = ["llama-2", str(args.data / "tiny.model"), *[False, ""][: len(get_tokenizer_params) - 2]]
        tokenizer = bs.get_tokenizer(*tok_args)
        out = []
        for dataset, seed, num, max_out in CASES:
            random.seed(seed)
            if dataset == "sharegpt":
                data = bs.load_sharegpt_dataset(str(args.data / "sharegpt.json"), "human")
            else:
                params = inspect.signature(bs.load_openorca_dataset_pkl).parameters
                data = bs.load_openorca_dataset_pkl(*([""] if params else []))
            params = inspect.signature(bs.sample_requests).parameters
            kwargs = {"dataset": data, "tokenizer": tokenizer, "num_requests": num, "max_output_length": max_out}
            if "dataset_type" in params:  # newer client
                kwargs.update(
                    use_chat_template=False,
                    dataset_type=dataset,
                    max_output_length=max_out or 0,
                    min_input_length=4,
                    max_input_length=1024,
                    max_target_length=2048,
                )
            requests = bs.sample_requests(**kwargs)
            out.append(
                {
                    "dataset": dataset,
                    "seed": seed,
                    "num_prompts": num,
                    "max_output_length": max_out,
                    "selected": [[r.sample_idx, r.prompt_len, r.output_len] for r in requests],
                }
            )
        target = args.data / f"expected-{args.label}.json"
        target.write_text(json.dumps(out, indent=1) + "\n")
        print(target)
    finally:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
