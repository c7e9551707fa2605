"""Fixtures of the image tier (pytest -m images): a private Docker daemon, the local base image, the built images.

Building is part of the tier: the first test that needs an image builds it (cached layers make a second run fast).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest

from tests.images.bases import ensure_local_base
from tests.images.build import IMAGES, BuildResult, build, prune_dangling
from tests.images.chain import Converted, Workspace, convert, make_workspace
from tests.images.docker import DockerDaemon, running_daemon


@pytest.fixture(scope="session")
def docker_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerDaemon]:
    with running_daemon(tmp_path_factory.mktemp("dockerd")) as daemon:
        yield daemon
        prune_dangling(daemon)


@pytest.fixture(scope="session")
def local_base(docker_daemon: DockerDaemon) -> str:
    return ensure_local_base(docker_daemon)


@pytest.fixture(scope="session")
def built_image(
    docker_daemon: DockerDaemon, local_base: str, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], BuildResult]:
    """`built_image(name)` builds images/<name>.Dockerfile once per session and returns the result."""
    results: dict[str, BuildResult] = {}
    log_dir = tmp_path_factory.mktemp("image-builds")

    def get(name: str) -> BuildResult:
        if name not in results:
            results[name] = build(docker_daemon, IMAGES[name], local_base, log_dir)
        return results[name]

    return get


@pytest.fixture(scope="session")
def workspace() -> Iterator[Workspace]:
    """A directory the images' user can write, with the in-container scripts (tests/images/chain.py)."""
    made = make_workspace()
    yield made
    shutil.rmtree(made.host, ignore_errors=True)


@pytest.fixture(scope="session")
def converted(
    docker_daemon: DockerDaemon, built_image: Callable[[str], BuildResult], workspace: Workspace
) -> Converted:
    """The real MaxText conversion of the tiny Meta checkpoint (scanned, then unscanned), once per session."""
    return convert(docker_daemon, built_image("converter").tag, workspace)
