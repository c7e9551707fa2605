"""Scripts the image tests run inside the built images (mounted read-only; Python 3.13 with the image's venv)."""
