#!/usr/bin/env bash
# Create (once) a cached virtualenv with JetStream 0.2.2 -- the upstream server (mock engine) and client the
# tests compare against -- OUTSIDE the repository, keyed by version, and print its python path.
# Idempotent: a stamp file marks a complete install; a broken half-install is rebuilt.
# Pins: 0.2.2 calls jax.tree_map, removed in jax 0.6, so jax/jaxlib 0.5.3 + flax 0.10.4; seqio is imported by
# the server (and brings TensorFlow, hence the size); pandas is imported by its benchmark client (tpuserve_dev.perf).
set -euo pipefail

JETSTREAM_VERSION="0.2.2"
PINS=("google-jetstream==${JETSTREAM_VERSION}" "jax==0.5.3" "jaxlib==0.5.3" "flax==0.10.4" "seqio" "pandas")
CACHE_ROOT="${TPUSERVE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tpuserve-tools}"
KEY="$(printf '%s\n' "${PINS[@]}" | sha1sum | cut -c1-8)"
VENV="${CACHE_ROOT}/jetstream-${JETSTREAM_VERSION}-${KEY}-venv"
STAMP="${VENV}/.tpuserve-complete"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [[ ! -f "$STAMP" ]]; then
  echo "setup-venv: installing JetStream ${JETSTREAM_VERSION} into ${VENV} (large: TensorFlow via seqio)" >&2
  rm -rf "$VENV"
  mkdir -p "$CACHE_ROOT"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  "$VENV/bin/python" -m pip install --quiet "${PINS[@]}" >&2
  # Prove the server module imports before declaring the venv good.
  "$VENV/bin/python" -c "import jetstream.core.implementations.mock.server, jetstream.core.proto.jetstream_pb2_grpc" >&2
  touch "$STAMP"
fi
echo "${VENV}/bin/python"
