#!/usr/bin/env bash
# Installs a nats-server for the test suites, outside the repository, once.
#
# Why this order: a 2.11 server (built from the Go module proxy) supports everything the router
# uses, including multi-filter consumers; Debian's 2.9 package is the fallback when Go or the
# proxy is unavailable. Idempotent: a cached binary is reused, so a second run takes milliseconds.
# Progress goes to stderr; the last line on stdout is the absolute path of the binary.
#
#   EDFS_CACHE       cache root (default ~/.cache/edfs); the binary lands in $EDFS_CACHE/bin
#   NATS_SERVER_VERSION  pin a version (e.g. v2.11.17) instead of the newest 2.11 patch
set -euo pipefail

CACHE="${EDFS_CACHE:-$HOME/.cache/edfs}"
BIN_DIR="$CACHE/bin"
BIN="$BIN_DIR/nats-server"
GO_PROXY_URL="${GOPROXY_URL:-https://proxy.golang.org}"
# Used when the proxy's version list cannot be read (a newer 2.11 patch is preferred when served).
FALLBACK_VERSION="v2.11.17"

log() { echo "nats.sh: $*" >&2; }

if [[ -x "$BIN" ]] && "$BIN" --version >/dev/null 2>&1; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$BIN_DIR"

newest_211() {
  curl -fsS -m 20 "$GO_PROXY_URL/github.com/nats-io/nats-server/v2/@v/list" 2>/dev/null |
    grep -E '^v2\.11\.[0-9]+$' | sort -V | tail -1
}

if command -v go >/dev/null 2>&1; then
  VERSION="${NATS_SERVER_VERSION:-$(newest_211 || true)}"
  VERSION="${VERSION:-$FALLBACK_VERSION}"
  log "building nats-server $VERSION with $(go version | cut -d' ' -f3) (first run: about a minute)"
  if GOBIN="$BIN_DIR" GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOFLAGS="$(go env GOFLAGS) -modcacherw" \
    go install "github.com/nats-io/nats-server/v2@$VERSION" >&2; then
    log "installed $("$BIN" --version)"
    echo "$BIN"
    exit 0
  fi
  log "go install failed; falling back to the Debian package"
else
  log "go not found; falling back to the Debian package"
fi

SYSTEM_BIN="$(command -v nats-server || true)"
if [[ -z "$SYSTEM_BIN" ]]; then
  log "apt-get install -y nats-server"
  if [[ "$(id -u)" != 0 ]]; then
    log "not root: install nats-server yourself or set up Go, then rerun"
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nats-server >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nats-server >&2; }
  SYSTEM_BIN="$(command -v nats-server)"
fi
ln -sf "$SYSTEM_BIN" "$BIN"
log "using $("$BIN" --version) from $SYSTEM_BIN"
echo "$BIN"
