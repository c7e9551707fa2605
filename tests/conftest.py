"""Shared pytest plugins: the local Kubernetes test cluster, the GCS emulator and JetStream and vLLM servers."""

pytest_plugins = ["tests.cluster.fixtures", "tests.gcs_fixtures", "tests.jetstream.fixtures", "tests.vllm.fixtures"]
