"""Run INSIDE the vLLM venv: parse argument lists with vLLM's own OpenAI API server parser, as
`python -m vllm.entrypoints.openai.api_server` does (make_arg_parser + validate_parsed_serve_args), and build the
engine's arguments from them (EngineArgs.from_cli_args: every flag maps to an engine setting).

stdin: a JSON list of argv lists. stdout: one JSON object per argv, {"ok": true, "parsed": {...}} with the
parsed values the test checks, or {"ok": false, "error": "..."} with argparse's or vLLM's reason.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from typing import Any

CHECKED = (
    "model",
    "load_format",
    "download_dir",
    "revision",
    "served_model_name",
    "host",
    "port",
    "tensor_parallel_size",
    "max_model_len",
    "max_num_seqs",
    "max_num_batched_tokens",
    "enable_prefix_caching",
    "gpu_memory_utilization",
    "async_scheduling",
    "seed",
)


def parse(argv: list[str]) -> dict[str, Any]:
    from vllm.engine.arg_utils import EngineArgs
    from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = make_arg_parser(FlexibleArgumentParser(description="vLLM OpenAI-Compatible RESTful API server."))
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = parser.parse_args(argv)
        validate_parsed_serve_args(args)
        EngineArgs.from_cli_args(args)
    except SystemExit:
        return {"ok": False, "error": stderr.getvalue().strip().splitlines()[-1:]}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "parsed": {k: getattr(args, k, None) for k in CHECKED}}


def main() -> None:
    results = [parse(argv) for argv in json.load(sys.stdin)]
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
