"""tpuserve: declarative Llama serving and benchmarking on GKE TPU node pools."""

__version__ = "0.1.0"
