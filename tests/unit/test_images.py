"""Image references: which ones are this project's workload images (the local test node runs only those)."""

from __future__ import annotations

import pytest

from tpuserve import images


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("ghcr.io/tpuserve/bench:0.1.0", "ghcr.io/tpuserve/bench"),
        ("ghcr.io/tpuserve/bench@sha256:abc", "ghcr.io/tpuserve/bench"),
        ("ghcr.io/tpuserve/converter:0.1.0@sha256:abc", "ghcr.io/tpuserve/converter"),
        ("localhost:5000/tpuserve/bench", "localhost:5000/tpuserve/bench"),
        ("localhost:5000/tpuserve/bench:dev", "localhost:5000/tpuserve/bench"),
        ("busybox", "busybox"),
    ],
)
def test_image_repository(image: str, repository: str) -> None:
    assert images.image_repository(image) == repository


def test_workload_images_are_recognised_whatever_the_tag() -> None:
    assert images.is_tpuserve_workload_image(images.BENCH_IMAGE)
    assert images.is_tpuserve_workload_image(images.CONVERTER_IMAGE)
    assert images.is_tpuserve_workload_image("ghcr.io/tpuserve/bench@sha256:0123")
    assert not images.is_tpuserve_workload_image(images.OPERATOR_IMAGE)
    assert not images.is_tpuserve_workload_image(images.GOOGLE_SERVER_IMAGE)
    assert not images.is_tpuserve_workload_image("ghcr.io/tpuserve/bench-evil:0.1.0")
