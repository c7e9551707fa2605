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
    for command, module_name in SUBCOMMAND_MODULES.items():
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # one broken subcommand must not take the others down with it
            _register_unavailable(subparsers, command, module_name, exc)
        else:
            module.register(subparsers)
    return parser


def _register_unavailable(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], command: str, module_name: str, exc: Exception
) -> None:
    reason = f"{type(exc).__name__}: {exc}"
    sub = subparsers.add_parser(command, help=f"(unavailable: {reason})", add_help=False)
    sub.add_argument("rest", nargs=argparse.REMAINDER)

    def fail(_args: argparse.Namespace) -> int:
        print(f"tpuserve {command}: cannot load {module_name}: {reason}", file=sys.stderr)
        return 1

    sub.set_defaults(func=fail)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
