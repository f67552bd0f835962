#!/usr/bin/env bash
# Installs the helm CLI for the chart tests (`helm lint`, `helm template`, `helm install` against
# the test control plane), outside the repository, once: `go install` from the Go module proxy
# (helm.sh/helm/v3 has no replace directives, so it installs directly).
#
# Idempotent: the binary is cached per version; a second run only checks `helm version`.
# Concurrent runs wait on a lock. Progress goes to stderr; the last line on stdout is the absolute
# path of the binary.
#
#   EDFS_CACHE     cache root (default ~/.cache/edfs); the binary lands in $EDFS_CACHE/bin
#   HELM_VERSION   helm 3 release to install (default below: the newest 3.19 patch on the proxy)
set -euo pipefail

CACHE="${EDFS_CACHE:-$HOME/.cache/edfs}"
HELM_VERSION="${HELM_VERSION:-v3.19.5}"
BIN_DIR="$CACHE/bin"
BIN="$BIN_DIR/helm-$HELM_VERSION"

log() { echo "helm.sh: $*" >&2; }

is_built() {
  local version
  [[ -x "$BIN" ]] && version="$("$BIN" version --short 2>/dev/null)" || return 1
  [[ "$version" == "$HELM_VERSION" || "$version" == "$HELM_VERSION+"* ]]
}

if is_built; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null 2>&1 || { log "go is required to install helm (Go toolchain not found)"; exit 1; }
mkdir -p "$BIN_DIR"
cd "$BIN_DIR" # outside any Go module
exec 9>"$BIN_DIR/.helm.lock"
if ! flock -n 9; then
  log "another helm.sh is installing; waiting for it"
  flock 9
fi
if is_built; then
  echo "$BIN"
  exit 0
fi

log "building helm $HELM_VERSION with $(go version | cut -d' ' -f3): first run takes ~2-4 min on 2 cores"
start=$SECONDS
TMP_BIN="$(mktemp -d "$BIN_DIR/.helm-XXXXXX")"
trap 'rm -rf "$TMP_BIN"' EXIT
export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOFLAGS="$(go env GOFLAGS) -modcacherw"
export CGO_ENABLED=0 GOTOOLCHAIN=local
# Stamp what helm's Makefile stamps. Without it `helm version` says "v3.19", and `helm template` /
# `helm lint` assume Kubernetes v1.20 (.Capabilities.KubeVersion, deprecation checks) instead of
# the release helm was built against (client-go v0.X.Y means Kubernetes 1.X).
HELM_GOMOD="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
K8S_MINOR="$(awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2]; exit }' "$HELM_GOMOD")"
[[ "$K8S_MINOR" =~ ^[0-9]+$ ]] || { log "could not read the client-go version from $HELM_GOMOD"; exit 1; }
LDF="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  LDF+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$K8S_MINOR"
done
GOBIN="$TMP_BIN" nice -n 10 go install -trimpath -ldflags "$LDF" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
mv -f "$TMP_BIN/helm" "$BIN"
ln -sfn "helm-$HELM_VERSION" "$BIN_DIR/helm"
log "installed $("$BIN" version --short) in $((SECONDS - start)) s"
echo "$BIN"
