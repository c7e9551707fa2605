"""Regenerate jetstream_pb2.py from jetstream.proto (needs the `test` extra: grpcio-tools). The service side is
orchestrator.py, by hand: no grpc_python_out.

Usage: python -m tpuserve.proto.generate [OUT_DIR]   (default: this package's directory)
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
PROTO_NAME = "jetstream.proto"
GENERATED = ("jetstream_pb2.py",)


def generate(out_dir: Path) -> list[Path]:
    """Run protoc (from grpcio-tools) so the modules import as `tpuserve.proto.jetstream_pb2`."""
    from grpc_tools import protoc  # type: ignore[import-untyped]  # test-only: import here

    root = PROTO_DIR.parent.parent  # the directory holding the `tpuserve` package
    # protoc names outputs after the proto's path under the include root (tpuserve/proto/...).
    staging = out_dir / "_staging"
    staging.mkdir(parents=True, exist_ok=True)
    rel = (PROTO_DIR / PROTO_NAME).relative_to(root)
    code = protoc.main(["grpc_tools.protoc", f"-I{root}", f"--python_out={staging}", str(rel)])
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    written = []
    for name in GENERATED:
        target = out_dir / name
        (staging / rel.parent / name).replace(target)
        written.append(target)
    for path in sorted(staging.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    staging.rmdir()
    return written


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0]) if argv else PROTO_DIR
    for path in generate(out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
