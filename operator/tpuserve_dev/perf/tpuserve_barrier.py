"""`tpuserve bench` whose measurement starts only once $TPUSERVE_START_BARRIER exists (after it writes
PATH.tpuserve.ready), as vllm_bench_serve.py does for `vllm bench serve`: the fidelity experiment's paired rounds.

    python -m tpuserve_dev.perf.tpuserve_barrier run --target ... [tpuserve bench run flags]
"""

from __future__ import annotations

from tpuserve.bench import cli, run
from tpuserve.bench.datasets import Request
from tpuserve.bench.runner import Runner
from tpuserve_dev.perf.vllm_bench_serve import start_barrier


def main() -> int:
    measure = run.Session.measure

    async def after_barrier(self: run.Session, runner: Runner, requests: list[Request]) -> None:
        await start_barrier("tpuserve")
        await measure(self, runner, requests)

    run.Session.measure = after_barrier  # type: ignore[method-assign]
    return cli.main()


if __name__ == "__main__":
    raise SystemExit(main())
