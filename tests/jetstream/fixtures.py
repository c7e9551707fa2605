"""Pytest fixtures that start JetStream 0.2.2 (its mock-engine server) from its own venv (issue 5)."""
