#!/usr/bin/env bash
# Recreate images/vendor/google-jetstream-<commit>.tar.gz from a JetStream git checkout (the repository is
# archived upstream; MaxText maxtext-v0.2.3's requirements name this commit, and PyPI's google-jetstream stops
# at 0.2.2, whose server lacks what MaxText's server calls). The package source only (no tests, no benchmarks),
# with one change: requirements.txt lists what the package's modules import (upstream's also lists its test and
# evaluation tools: coverage, pytest, parameterized, portpicker, blobfile, nltk, evaluate, sympy,
# tensorboard-plugin-profile), so that `pip check` in the server image holds.
#   bash images/vendor/make-jetstream-tarball.sh /path/to/JetStream
set -euo pipefail
COMMIT=29329e8e73820993f77cfc8efe34eb2a73f5de98
RUNTIME_REQUIREMENTS=(absl-py fastapi flax grpcio jax jaxlib numpy pathwaysutils prometheus-client protobuf pydantic
  seqio shortuuid tiktoken transformers uvicorn)
out="$(cd "$(dirname "$0")" && pwd)/google-jetstream-${COMMIT:0:8}.tar.gz"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$1" archive --format=tar --prefix=google-jetstream/ "$COMMIT" -- \
  jetstream setup.py requirements.txt README.md LICENSE ':(exclude)jetstream/tests' | tar -x -C "$work"
printf '%s\n' "${RUNTIME_REQUIREMENTS[@]}" > "$work/google-jetstream/requirements.txt"
tar -C "$work" --sort=name --mtime=2025-01-01T00:00:00Z --owner=0 --group=0 --numeric-owner -cf - google-jetstream \
  | gzip -n9 > "$out"
sha256sum "$out"
