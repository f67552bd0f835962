#!/usr/bin/env bash
# Builds the project's container images into the local Docker engine, for tests and for loading
# into a local cluster:
#
#   edfs-router:$TAG     Dockerfile.router      the router (`edfs-router -c /etc/edfs/router.yaml`)
#   edfs-operator:$TAG   Dockerfile.operator    the `edfs` CLI (`edfs operator --leader-elect`)
#   edfs-examples:$TAG   examples/Dockerfile    the example subgraphs (pods name the server to run)
#   edfs-e2e/nats:$TAG   nats-image.sh          a static nats-server (not built from the context)
#
# TAG is `dev` unless EDFS_IMAGE_TAG says otherwise. First it makes sure a Docker engine answers
# (docker.sh) and that the Dockerfiles' base image exists (base-image.sh makes node:24-slim when no
# registry can be reached). Builds use the classic builder with host networking
# (`DOCKER_BUILDKIT=0 docker build --network host`), which needs nothing from a registry.
#
# Idempotent and quick when nothing changed: Docker's layer cache keys on file contents, so a warm
# run takes seconds, from any copy of the sources. Progress and time per image go to stderr (a
# failed build prints the end of its log); stdout gets the four image names in the order above.
#
#   images.sh [CONTEXT_DIR]   default: the repository this script is in
#
#   EDFS_IMAGE_TAG   tag of the four images (default dev)
#   NODE_IMAGE       base image of the Dockerfiles (default: theirs, node:24-slim)
#   EDFS_CACHE       cache root (default ~/.cache/edfs)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CONTEXT="$(cd "${1:-$HERE/../..}" && pwd)"
TAG="${EDFS_IMAGE_TAG:-dev}"
NODE_IMAGE="${NODE_IMAGE:-node:24-slim}"

log() { echo "images.sh: $*" >&2; }

started=$SECONDS
bash "$HERE/docker.sh" >&2
bash "$HERE/base-image.sh" "$NODE_IMAGE" >/dev/null
log "base image $NODE_IMAGE ready ($((SECONDS - started)) s)"

LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT

build() {
  local image=$1 dockerfile=$2 t0=$SECONDS
  log "building $image from $CONTEXT/$dockerfile (cold: 1-2 min)"
  if ! DOCKER_BUILDKIT=0 docker build --network host --build-arg "NODE_IMAGE=$NODE_IMAGE" \
    -f "$CONTEXT/$dockerfile" -t "$image" "$CONTEXT" >"$LOG" 2>&1; then
    log "building $image failed; last lines of the build:"
    tail -40 "$LOG" >&2
    exit 1
  fi
  log "built $image ($((SECONDS - t0)) s)"
}

build "edfs-router:$TAG" Dockerfile.router
build "edfs-operator:$TAG" Dockerfile.operator
build "edfs-examples:$TAG" examples/Dockerfile
t0=$SECONDS
bash "$HERE/nats-image.sh" "edfs-e2e/nats:$TAG" >/dev/null
log "edfs-e2e/nats:$TAG ready ($((SECONDS - t0)) s)"
log "all images ready ($((SECONDS - started)) s)"

echo "edfs-router:$TAG"
echo "edfs-operator:$TAG"
echo "edfs-examples:$TAG"
echo "edfs-e2e/nats:$TAG"
