"""Every image builds from scratch on a Debian base, runs as uid 65532, and its entry point starts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.images.build import IMAGES, BuildResult
from tests.images.docker import DockerDaemon

# Building an image from scratch takes minutes (the converter more than ten on a busy 2-core machine).
pytestmark = [pytest.mark.images, pytest.mark.slow, pytest.mark.timeout(3600)]

# What each image's entry point prints with --help (tpuserve's images) or imports (the server, whose entry
# point starts serving at once).
ENTRYPOINT_CHECKS: dict[str, tuple[list[str], str]] = {
    "operator": (["operator", "--help"], "--standalone"),
    "bench": (["bench", "run", "--help"], "--target HOST:PORT"),
    "converter": (["convert", "run", "--help"], "--source"),
    "server": (
        [
            "--entrypoint",
            "python3",
            "IMAGE",
            "-c",
            "import jetstream.core.server_lib, maxtext.inference.maxengine.maxengine_server as m; print(m.__name__)",
        ],
        "maxtext.inference.maxengine.maxengine_server",
    ),
}


@pytest.mark.parametrize("name", list(IMAGES))
def test_image_builds_and_its_entrypoint_runs_as_non_root(
    name: str, built_image: Callable[[str], BuildResult], docker_daemon: DockerDaemon
) -> None:
    result = built_image(name)
    user = docker_daemon.run("image", "inspect", "--format", "{{.Config.User}}", result.tag).stdout.strip()
    assert user == "65532:65532"
    args, expected = ENTRYPOINT_CHECKS[name]
    argv = [result.tag if a == "IMAGE" else a for a in args] if "IMAGE" in args else [result.tag, *args]
    run = docker_daemon.run("run", "--rm", "--network", "none", *argv, check=False, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert expected in run.stdout
    assert (
        docker_daemon.run("run", "--rm", "--network", "none", "--entrypoint", "id", result.tag, "-u").stdout.strip()
        == "65532"
    )
