#!/usr/bin/env bash
# Make (once) the small random-weight Llama-3-architecture model the vLLM CPU server serves, cached outside the
# repository keyed by the maker script and the vLLM venv, and print its directory.
# Optional LAYERS HIDDEN make a larger model of the same architecture (the fidelity experiment's paced model,
# whose decode steps are slow enough on this CPU for every token to stream on its own).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="$(bash "$here/setup-venv.sh")"
CACHE_ROOT="${TPUSERVE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tpuserve-tools}"
KEY="$(cat "$here/make_model.py" <(echo "$python") | sha1sum | cut -c1-8)"
if [[ $# -eq 2 ]]; then
  MODEL="${CACHE_ROOT}/llama3-L$1-H$2-${KEY}"
else
  MODEL="${CACHE_ROOT}/llama3-tiny-${KEY}"
fi
if [[ ! -f "$MODEL/.tpuserve-complete" ]]; then
  rm -rf "$MODEL"
  "$python" "$here/make_model.py" "$MODEL" "$@" >&2
  touch "$MODEL/.tpuserve-complete"
fi
echo "$MODEL"
