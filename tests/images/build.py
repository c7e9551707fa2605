"""Build the project's images (images/*.Dockerfile) in the private daemon, on the local base, and time them.

The tests tag them with the names the operator and the chart use by default (tpuserve.images), inside the private
daemon only. Build args differ from a user's build in two places, both because of this machine's network (package
registries only): the converter takes torch from PyPI (its CUDA build; the CPU wheel index is unreachable) and
the bench image leaves out the openorca set (GitHub LFS is unreachable).

Measure:  python -m tests.images.build [--no-cache] [NAME ...]   (prints seconds and size per image)
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.images.bases import ensure_local_base
from tests.images.docker import DockerDaemon, running_daemon
from tpuserve import images

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 3600


@dataclass(frozen=True)
class ImageSpec:
    name: str
    tag: str
    build_args: tuple[tuple[str, str], ...] = ()

    @property
    def dockerfile(self) -> Path:
        return ROOT / "images" / f"{self.name}.Dockerfile"


# Build order: converter before server (the server reuses the converter's big dependency layer).
IMAGES = {
    spec.name: spec
    for spec in (
        ImageSpec("operator", images.OPERATOR_IMAGE),
        ImageSpec("bench", images.BENCH_IMAGE, (("OPENORCA_URL", ""),)),
        ImageSpec("converter", images.CONVERTER_IMAGE, (("TORCH_INDEX_URL", "https://pypi.org/simple"),)),
        ImageSpec("server", images.SERVER_IMAGE),
    )
}


@dataclass(frozen=True)
class BuildResult:
    name: str
    tag: str
    seconds: float
    size_bytes: int


def stages(dockerfile: Path) -> list[str]:
    """The named stages (`FROM … AS name`) before the final one."""
    return re.findall(r"(?m)^FROM \S+ AS (\w+)$", dockerfile.read_text())


def build(daemon: DockerDaemon, spec: ImageSpec, base: str, log_dir: Path, no_cache: bool = False) -> BuildResult:
    """Build the image; each named stage is built and tagged first (tpuserve-cache/<image>-<stage>), so that no
    stage the image's layers were made from is left untagged for `prune_dangling` to remove."""
    args = ["build", "--network", "host", "--file", str(spec.dockerfile), "--build-arg", f"BASE={base}"]
    for key, value in spec.build_args:
        args += ["--build-arg", f"{key}={value}"]
    if no_cache:
        args.append("--no-cache")
    targets = [["--target", stage, "--tag", f"tpuserve-cache/{spec.name}-{stage}"] for stage in stages(spec.dockerfile)]
    log_path = log_dir / f"build-{spec.name}.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        for target in [*targets, ["--tag", spec.tag]]:
            code = daemon.stream(*args, *target, str(ROOT), log=log, timeout=BUILD_TIMEOUT)
            if code != 0:
                raise RuntimeError(
                    f"building {spec.name} failed (exit {code}); the end of {log_path}:\n{log_path.read_text()[-6000:]}"
                )
    seconds = time.monotonic() - started
    size = int(daemon.run("image", "inspect", "--format", "{{.Size}}", spec.tag).stdout.strip())
    return BuildResult(spec.name, spec.tag, seconds, size)


def prune_dangling(daemon: DockerDaemon) -> None:
    """Drop images no tag reaches (earlier builds of changed Dockerfiles); every stage of the current images is
    tagged (see build), so the layer cache stays."""
    daemon.run("image", "prune", "--force", timeout=600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", choices=[[], *IMAGES], default=[])
    parser.add_argument("--no-cache", action="store_true", help="rebuild every layer (a cold build)")
    options = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="tpuserve-image-build-"))
    with running_daemon(log_dir) as daemon:
        started = time.monotonic()
        base = ensure_local_base(daemon)
        print(
            json.dumps({"local_base_seconds": round(time.monotonic() - started, 1), "storage": daemon.storage_driver})
        )
        for name in options.names or list(IMAGES):
            result = build(daemon, IMAGES[name], base, log_dir, no_cache=options.no_cache)
            print(
                json.dumps({"image": name, "seconds": round(result.seconds, 1), "size_mb": result.size_bytes // 10**6})
            )
        prune_dangling(daemon)
    print(f"logs: {log_dir}")


if __name__ == "__main__":
    main()
