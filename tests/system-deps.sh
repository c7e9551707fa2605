#!/usr/bin/env bash
# Debian packages the tests need (a real Prometheus; openssl for the test cluster's certificates; a Docker daemon
# and debootstrap for the image tier, tests/images).
# Idempotent: installs only what is missing. Add a package here when a test starts needing it.
set -euo pipefail
PACKAGES=(prometheus openssl docker.io debootstrap)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[system-deps] installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
