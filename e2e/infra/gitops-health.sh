#!/usr/bin/env bash
# Builds gitops-health (e2e/infra/gitops-health/: Argo CD's Lua health evaluation on gopher-lua and
# Flux's kstatus, from the Go module proxy) outside the repository, once per version of its
# sources: the binary is named after a digest of main.go, go.mod and go.sum, so an edit rebuilds
# it and an unchanged tree reuses it. go.sum pins every module, so the build is reproducible.
#
# Idempotent: a second run only hashes three files (milliseconds). Concurrent runs wait on a lock.
# Progress goes to stderr; the last line on stdout is the absolute path of the binary.
#
#   EDFS_CACHE   cache root (default ~/.cache/edfs); the binary lands in $EDFS_CACHE/bin
set -euo pipefail
shopt -s inherit_errexit

SRC="$(cd "$(dirname "$0")/gitops-health" && pwd)"
CACHE="${EDFS_CACHE:-$HOME/.cache/edfs}"
BIN_DIR="$CACHE/bin"

log() { echo "gitops-health.sh: $*" >&2; }

DIGEST="$(cat "$SRC/main.go" "$SRC/go.mod" "$SRC/go.sum" | sha256sum | cut -c1-12)"
BIN="$BIN_DIR/gitops-health-$DIGEST"

if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null 2>&1 || { log "go is required to build gitops-health (Go toolchain not found)"; exit 1; }
mkdir -p "$BIN_DIR"
exec 9>"$BIN_DIR/.gitops-health.lock"
if ! flock -n 9; then
  log "another gitops-health.sh is building; waiting for it"
  flock 9
fi
if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

log "building gitops-health ($DIGEST) with $(go version | cut -d' ' -f3): first run takes ~1-2 min on 2 cores"
start=$SECONDS
GOFLAGS="$(go env GOFLAGS) -mod=readonly -modcacherw"
export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOFLAGS
export CGO_ENABLED=0 GOTOOLCHAIN=local
(cd "$SRC" && nice -n 10 go build -trimpath -ldflags "-s -w" -o "$BIN.tmp" .) >&2
mv -f "$BIN.tmp" "$BIN"
log "built $BIN in $((SECONDS - start)) s"
echo "$BIN"
