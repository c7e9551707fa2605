#!/usr/bin/env bash
# Obtain the test-cluster binaries for one pinned Kubernetes version, cached outside the repo.
# Idempotent: each binary is built only when missing from the cache.
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl <- k8s.io/kubernetes (Go module proxy)
#   etcd                                                     <- go.etcd.io/etcd/server/v3
#   kwok                                                     <- sigs.k8s.io/kwok
#   helm                                                     <- helm.sh/helm/v3
# Prints the bin directory on its last line.
#   --check   build nothing: print the bin directory and exit 0 if every binary is there, else exit 1.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.35.4}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-0.8.0}"
HELM_VERSION="${HELM_VERSION:-3.22.0}"
CACHE_ROOT="${TPUSERVE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tpuserve-tools}"
BIN="$CACHE_ROOT/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION/bin"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
log() { printf '[build-tools] %s\n' "$*" >&2; }
ALL_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok helm)

if [ "${1:-}" = "--check" ]; then
  for b in "${ALL_BINARIES[@]}"; do
    [ -x "$BIN/$b" ] || { log "missing $BIN/$b: run 'make tools' (bash operator/localcluster/build-tools.sh)"; exit 1; }
  done
  echo "$BIN"
  exit 0
fi
mkdir -p "$BIN"

build_k8s() {
  local need=()
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    [ -x "$BIN/$b" ] || need+=("k8s.io/kubernetes/cmd/$b")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  log "building ${need[*]} v$K8S_VERSION (cold: tens of minutes on 2 cores)"
  local work; work=$(mktemp -d)
  (
    cd "$work"
    go mod init example.invalid/k8sbuild >/dev/null 2>&1
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    # k8s.io/kubernetes points its staging modules at ./staging; a dependent module must pin the
    # published versions instead (kubernetes/kubernetes#79384): v1.X.Y <-> v0.X.Y.
    for m in $(sed -n 's|.*\(k8s.io/[^ ]*\) => ./staging/.*|\1|p' "$gomod"); do
      go mod edit -replace="$m=$m@v0.${K8S_VERSION#1.}"
    done
    # `go get` of the command packages (not just the module) records every module their imports need.
    go get "${need[@]/%/@v$K8S_VERSION}" >&2
    go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION \
      -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${K8S_VERSION#1.}" \
      -o "$BIN/" "${need[@]}" >&2
  )
  rm -rf "$work"
}

go_install() {  # name module@version
  local name=$1 pkg=$2
  [ -x "$BIN/$name" ] && return 0
  log "building $name from $pkg"
  local gobin; gobin=$(mktemp -d)
  local rc=0
  GOBIN="$gobin" go install -trimpath -ldflags "-s -w" "$pkg" >&2 &&
    mv "$gobin/$(basename "${pkg%@*}")" "$BIN/$name" || rc=$?
  rm -rf "$gobin"
  return $rc
}

build_etcd() {
  [ -x "$BIN/etcd" ] && return 0
  # etcd's server module carries replace directives, so `go install mod@v` is refused; build it
  # from a throw-away module that requires the published versions of its siblings instead.
  log "building etcd v$ETCD_VERSION"
  local work; work=$(mktemp -d)
  (cd "$work" && go mod init example.invalid/etcdbuild >/dev/null 2>&1 &&
    go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >&2 &&
    go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3 >&2)
  rm -rf "$work"
}

start=$(date +%s)
build_etcd
go_install kwok "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
go_install helm "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
build_k8s
log "tools ready in $(( $(date +%s) - start ))s; cache $(du -sh "$BIN" | cut -f1)"
echo "$BIN"
