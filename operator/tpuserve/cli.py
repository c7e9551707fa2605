"""The `tpuserve` command. Each subcommand lives in its own module, which exposes
`register(subparsers)`; registration must stay cheap (heavy imports go inside the handlers)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tpuserve import __version__

# subcommand -> module exposing register(subparsers: argparse._SubParsersAction) -> None,
# which adds a parser whose `func(args) -> int` runs the command.
SUBCOMMAND_MODULES: dict[str, str] = {
    "operator": "tpuserve.controllers.cli",
    "bench": "tpuserve.bench.cli",
    "convert": "tpuserve.convert.cli",
    "crds": "tpuserve.api.generate",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tpuserve",
        description="Serve and benchmark Llama on GKE TPU node pools: the operator and its workloads.",
    )
    parser.add_argument("--version", action="version", version=f"tpuserve {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES.values():
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
