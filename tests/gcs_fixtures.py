"""Pytest fixtures for a local GCS API emulator (filled in by the converter work, issue 6)."""
