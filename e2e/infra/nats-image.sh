#!/usr/bin/env bash
# Makes a nats-server container image locally (no registry needed): one static nats-server binary
# in an otherwise empty image, for running NATS as a pod in a test cluster.
#
# The binary is the release `nats.sh` installed for the test suites, rebuilt with CGO_ENABLED=0 (the
# `go install` of nats.sh links libc dynamically, which an empty image does not have) from the same
# module cache, so it takes about a minute once and nothing after. The image holds /nats-server,
# /tmp and /data (owned by uid 1000, where it runs), entrypoint nats-server, no default arguments:
#
#   docker run --network host IMAGE -a 127.0.0.1 -p 4222 -js -sd /data
#
# Idempotent: an existing image is kept, the static binary is cached per version
# ($EDFS_CACHE/images/nats-<version>/nats-server). Progress goes to stderr; stdout gets the image
# name. The image is also tagged with the nats-server version (edfs-e2e/nats:v2.11.17).
#
#   nats-image.sh [IMAGE]   default edfs-e2e/nats:dev
#
#   EDFS_CACHE   cache root (default ~/.cache/edfs)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
IMAGE="${1:-edfs-e2e/nats:dev}"
CACHE="${EDFS_CACHE:-$HOME/.cache/edfs}"

log() { echo "nats-image.sh: $*" >&2; }

bash "$HERE/docker.sh" >&2
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE"
  exit 0
fi

# Concurrent runs: one makes the image, the others wait for it and find it.
mkdir -p "$CACHE/images"
exec 9>"$CACHE/images/.nats.lock"
if ! flock -n 9; then
  log "another run is making the image; waiting for it"
  flock 9
fi
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE"
  exit 0
fi

HOST_BIN="$(bash "$HERE/nats.sh" | tail -1)"
VERSION="$("$HOST_BIN" --version | awk '{ print $NF }')"
[[ "$VERSION" == v* ]] || VERSION="v$VERSION"
DIR="$CACHE/images/nats-$VERSION"
BIN="$DIR/nats-server"

is_static() { [[ -x "$1" ]] && ! ldd "$1" >/dev/null 2>&1; }

if ! is_static "$BIN"; then
  if is_static "$HOST_BIN"; then
    mkdir -p "$DIR"
    cp "$HOST_BIN" "$BIN"
  else
    command -v go >/dev/null 2>&1 || {
      log "$HOST_BIN is dynamically linked and Go is not installed to build a static one"
      exit 1
    }
    started=$SECONDS
    log "building a static nats-server $VERSION (CGO_ENABLED=0; first run: about a minute)"
    mkdir -p "$DIR"
    CGO_ENABLED=0 GOBIN="$DIR" GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" \
      GOFLAGS="$(go env GOFLAGS) -modcacherw" go install -ldflags '-s -w' \
      "github.com/nats-io/nats-server/v2@$VERSION" >&2
    is_static "$BIN" || {
      log "$BIN is not statically linked"
      exit 1
    }
    log "built $BIN ($((SECONDS - started)) s)"
  fi
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/root/tmp" "$WORK/root/data"
chmod 1777 "$WORK/root/tmp"
install -m 0755 "$BIN" "$WORK/root/nats-server"
tar --numeric-owner --owner=0 --group=0 -C "$WORK/root" -cf "$WORK/root.tar" nats-server tmp
tar --numeric-owner --owner=1000 --group=1000 -C "$WORK/root" -rf "$WORK/root.tar" data
docker import \
  --change 'ENTRYPOINT ["/nats-server"]' \
  --change 'USER 1000:1000' \
  --change 'EXPOSE 4222 6222 8222' \
  --change "LABEL org.opencontainers.image.description=\"nats-server $VERSION (static), made locally by e2e/infra/nats-image.sh\"" \
  "$WORK/root.tar" "$IMAGE" >/dev/null
docker tag "$IMAGE" "${IMAGE%:*}:$VERSION"
docker run --rm "$IMAGE" --version >&2
log "made $IMAGE (nats-server $VERSION)"
echo "$IMAGE"
