"""tpuserve: declarative Llama serving and benchmarking on GKE TPU node pools."""

# The one version string: pyproject.toml reads it (dynamic version); the chart's version and appVersion, the image
# tags in images/ and the docs' examples must equal it (tests/unit/test_version.py).
__version__ = "0.1.0"
