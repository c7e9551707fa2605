"""Shared pytest plugins: the local Kubernetes test cluster and the GCS emulator."""

pytest_plugins = ["tests.cluster.fixtures", "tests.gcs_fixtures"]
