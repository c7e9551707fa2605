#!/usr/bin/env bash
# Make (once) the small random-weight Llama-3-architecture model the vLLM CPU server serves, cached outside the
# repository keyed by the maker script and the vLLM venv, and print its directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="$(bash "$here/setup-venv.sh")"
CACHE_ROOT="${TPUSERVE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tpuserve-tools}"
KEY="$(cat "$here/make_model.py" <(echo "$python") | sha1sum | cut -c1-8)"
MODEL="${CACHE_ROOT}/llama3-tiny-${KEY}"
if [[ ! -f "$MODEL/.tpuserve-complete" ]]; then
  rm -rf "$MODEL"
  "$python" "$here/make_model.py" "$MODEL" >&2
  touch "$MODEL/.tpuserve-complete"
fi
echo "$MODEL"
