"""Pytest fixtures for the local test cluster (filled in by the test-cluster work, issue 2)."""
