#!/usr/bin/env bash
# Builds every part of the single-node cluster that `cluster.sh` runs, outside the repository,
# once: the Kubernetes components (through `kube.sh`), CoreDNS, Traefik v3 (the Ingress
# controller), crictl, and the container images the cluster needs, all made locally because no
# registry can be reached:
#
#   registry.k8s.io/pause:3.10                 every pod's pause container: a static build of
#                                              a pause.c that does what Kubernetes' own does
#   registry.k8s.io/coredns/coredns:<version>  CoreDNS, built from the Go module proxy
#   docker.io/library/traefik:<version>        Traefik v3, built from the Go module proxy
#   docker.io/library/busybox:<version>        Debian's static busybox (sh, wget, nslookup, httpd):
#                                              a small image for test workloads
#
# The images carry the upstream names and versions, so the same manifests run on a cluster that
# can pull (kind); they are written as `docker save`-style archives that `ctr images import` reads,
# so making them needs no container engine.
#
# CoreDNS and crictl have no replace directives (`go install` works). Traefik's go.mod has
# replace and exclude directives, so a wrapper module requires it and copies them.
#
# Idempotent: a second run only checks the cached files (about a second). Concurrent runs wait on
# a lock. Progress and time per part go to stderr; stdout gets KEY=VALUE lines (paths and image
# names) for `cluster.sh`.
#
#   EDFS_CACHE        cache root (default ~/.cache/edfs); parts land in $EDFS_CACHE/cluster
#   COREDNS_VERSION   CoreDNS release (default below)
#   TRAEFIK_VERSION   Traefik v3 release (default below)
#   CRICTL_VERSION    cri-tools release (default below)
set -euo pipefail
shopt -s inherit_errexit

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${EDFS_CACHE:-$HOME/.cache/edfs}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.7}"
TRAEFIK_VERSION="${TRAEFIK_VERSION:-v3.6.12}"
CRICTL_VERSION="${CRICTL_VERSION:-v1.34.0}"
PAUSE_VERSION="3.10"
ROOT="$CACHE/cluster"
BIN_DIR="$ROOT/bin"
IMAGE_DIR="$ROOT/images"

PAUSE_IMAGE="registry.k8s.io/pause:$PAUSE_VERSION"
COREDNS_IMAGE="registry.k8s.io/coredns/coredns:$COREDNS_VERSION"
TRAEFIK_IMAGE="docker.io/library/traefik:$TRAEFIK_VERSION"

log() { echo "cluster-parts.sh: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# shellcheck source=image-lib.sh
source "$HERE/image-lib.sh"

mkdir -p "$BIN_DIR" "$IMAGE_DIR"
exec 9>"$ROOT/.lock"
if ! flock -n 9; then
  log "another cluster-parts.sh is building; waiting for it"
  flock 9
fi

export GOMODCACHE="$CACHE/go/mod"
export GOCACHE="$CACHE/go/build"
export GOFLAGS="-mod=mod -modcacherw"
export CGO_ENABLED=0
export GOTOOLCHAIN=local
NICE=(nice -n 10)

COREDNS="$BIN_DIR/coredns-$COREDNS_VERSION"
TRAEFIK="$BIN_DIR/traefik-$TRAEFIK_VERSION"
CRICTL="$BIN_DIR/crictl-$CRICTL_VERSION"
PAUSE="$BIN_DIR/pause-$PAUSE_VERSION"
BUSYBOX=/bin/busybox

need_go() { command -v go >/dev/null 2>&1 || die "go is required to build the cluster parts (Go toolchain not found)"; }

# `go install MODULE/PKG@VERSION` into a versioned file name.
go_install() {
  local pkg=$1 version=$2 out=$3 ldflags=$4 gobin
  need_go
  gobin="$(mktemp -d "$ROOT/gobin.XXXXXX")"
  GOBIN="$gobin" GOFLAGS="-modcacherw" "${NICE[@]}" go install -trimpath -ldflags "$ldflags" "$pkg@$version" >&2
  mv -f "$gobin/$(basename "$pkg")" "$out"
  rmdir "$gobin"
}

build_coredns() {
  [[ -x "$COREDNS" ]] && [[ "$("$COREDNS" -version 2>/dev/null)" == *"CoreDNS-${COREDNS_VERSION#v}"* ]] && return
  log "building CoreDNS $COREDNS_VERSION (first run: ~2-4 min on 2 cores)"
  go_install github.com/coredns/coredns "$COREDNS_VERSION" "$COREDNS" "-s -w"
}

build_crictl() {
  [[ -x "$CRICTL" ]] && [[ "$("$CRICTL" --version 2>/dev/null)" == "crictl version $CRICTL_VERSION" ]] && return
  log "building crictl $CRICTL_VERSION (first run: ~1-2 min on 2 cores)"
  go_install sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION" "$CRICTL" \
    "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION"
}

build_traefik() {
  local version
  version="$("$TRAEFIK" version 2>/dev/null || true)"
  [[ -x "$TRAEFIK" ]] && [[ "$version" == *"Version:"*"$TRAEFIK_VERSION"* ]] && return
  need_go
  log "building Traefik $TRAEFIK_VERSION (first run: ~5-10 min on 2 cores, ~500 MB of modules)"
  local dir="$ROOT/src/traefik-$TRAEFIK_VERSION"
  mkdir -p "$dir"
  (
    cd "$dir"
    if [[ ! -f .ready ]]; then
      rm -f go.mod go.sum
      go mod init local/traefikbin >&2 2>/dev/null
      local gomod goline edits=()
      gomod="$(go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
      [[ -f "$gomod" ]] || die "could not read the go.mod of github.com/traefik/traefik/v3@$TRAEFIK_VERSION"
      grep -qE '=>[[:space:]]*\.{1,2}/' "$gomod" && die "Traefik $TRAEFIK_VERSION replaces a module with a directory of its repository (not in the module zip); use another release"
      goline="$(awk '$1 == "go" { print $2; exit }' "$gomod")"
      [[ -n "$goline" ]] && edits+=("-go=$goline")
      mapfile -t -O "${#edits[@]}" edits < <(copied_directives "$gomod")
      go mod edit "${edits[@]}"
      "${NICE[@]}" go get "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" >&2
      touch .ready
    fi
    local pkg=github.com/traefik/traefik/v3/pkg/version
    "${NICE[@]}" go build -trimpath -ldflags "-s -w -X $pkg.Version=$TRAEFIK_VERSION -X $pkg.BuildDate=1970-01-01T00:00:00Z" \
      -o "$TRAEFIK.tmp" github.com/traefik/traefik/v3/cmd/traefik >&2
  )
  mv -f "$TRAEFIK.tmp" "$TRAEFIK"
}

# The pause binary of every pod's infrastructure container: holds the pod's namespaces, reaps orphaned children, exits on
# SIGINT/SIGTERM. Static, so the image needs nothing else.
build_pause() {
  [[ -x "$PAUSE" ]] && return
  command -v gcc >/dev/null 2>&1 || die "gcc is required to build the pause binary"
  local src
  src="$(mktemp -d)"
  cat >"$src/pause.c" <<'EOF'
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void sigdown(int signo) {
  psignal(signo, "Shutting down, got signal");
  exit(0);
}

static void sigreap(int signo) {
  (void)signo;
  while (waitpid(-1, NULL, WNOHANG) > 0)
    ;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    printf("pause.c %s\n", VERSION);
    return 0;
  }
  if (getpid() != 1) fprintf(stderr, "Warning: pause should be the first process\n");
  if (sigaction(SIGINT, &(struct sigaction){.sa_handler = sigdown}, NULL) < 0) return 1;
  if (sigaction(SIGTERM, &(struct sigaction){.sa_handler = sigdown}, NULL) < 0) return 2;
  if (sigaction(SIGCHLD, &(struct sigaction){.sa_handler = sigreap, .sa_flags = SA_NOCLDSTOP}, NULL) < 0) return 3;
  for (;;) pause();
  fprintf(stderr, "Error: infinite loop terminated\n");
  return 42;
}
EOF
  gcc -Os -static -DVERSION="\"$PAUSE_VERSION\"" -o "$PAUSE.tmp" "$src/pause.c"
  strip "$PAUSE.tmp" 2>/dev/null || true
  rm -rf "$src"
  mv -f "$PAUSE.tmp" "$PAUSE"
}

# Debian's busybox-static (one static binary with sh, wget, nslookup, httpd, ...).
ensure_busybox() {
  if dpkg -s busybox-static >/dev/null 2>&1 && [[ -x "$BUSYBOX" ]]; then return; fi
  command -v apt-get >/dev/null 2>&1 || die "$BUSYBOX (Debian's busybox-static) is missing and apt-get is not available"
  [[ "$(id -u)" -eq 0 ]] || die "installing busybox-static needs root"
  log "installing Debian's busybox-static"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends busybox-static >&2 ||
    { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends busybox-static >&2; }
}

busybox_version() {
  local v
  v="$(dpkg-query -W -f '${Version}' busybox-static)" # e.g. 1:1.35.0-4+deb12u1+b1
  v="${v#*:}"
  echo "${v%%-*}"
}

# image NAME REF BINARY CONFIG [DEST_IN_IMAGE]: the archive $IMAGE_DIR/NAME.tar of one static
# binary, rebuilt when the reference or the binary changed.
image() {
  local name=$1 ref=$2 binary=$3 config=$4 dest=${5:-/$(basename "$2" | cut -d: -f1)} out stamp rootfs
  out="$IMAGE_DIR/$name.tar"
  stamp="$ref $(stat -L -c "%s %Y" "$binary")"
  [[ -f "$out" && -f "$out.stamp" && "$(cat "$out.stamp")" == "$stamp" ]] && return
  rootfs="$(base_rootfs)"
  mkdir -p "$rootfs/$(dirname "$dest")"
  cp "$binary" "$rootfs/$dest"
  chmod 755 "$rootfs/$dest"
  if [[ "$name" == busybox ]]; then
    local applet
    for applet in $("$binary" --list); do
      [[ -e "$rootfs/bin/$applet" ]] || ln -s busybox "$rootfs/bin/$applet"
    done
  fi
  make_image "$ref" "$rootfs" "$out" "$config"
  rm -rf "$rootfs"
  echo "$stamp" >"$out.stamp"
  log "made image $ref ($(du -h "$out" | cut -f1))"
}

build_images() {
  local path='"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]'
  image pause "$PAUSE_IMAGE" "$PAUSE" '"Entrypoint":["/pause"],"User":"65535:65535"'
  image coredns "$COREDNS_IMAGE" "$COREDNS" "\"Entrypoint\":[\"/coredns\"],$path"
  image traefik "$TRAEFIK_IMAGE" "$TRAEFIK" "\"Entrypoint\":[\"/usr/local/bin/traefik\"],$path" /usr/local/bin/traefik
  image busybox "$BUSYBOX_IMAGE" "$BUSYBOX" "\"Cmd\":[\"sh\"],$path" /bin/busybox
}

part "pause" build_pause
part "crictl" build_crictl
part "CoreDNS" build_coredns
part "Traefik" build_traefik
ensure_busybox
BUSYBOX_IMAGE="docker.io/library/busybox:$(busybox_version)"
part "images" build_images
exec 9>&-

# The Kubernetes components (kube.sh has its own cache, lock and progress).
KUBE_COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
mapfile -t KUBE_PATHS < <(bash "$HERE/kube.sh" "${KUBE_COMPONENTS[@]}")
[[ ${#KUBE_PATHS[@]} -eq ${#KUBE_COMPONENTS[@]} ]] || die "kube.sh printed ${#KUBE_PATHS[@]} paths, expected ${#KUBE_COMPONENTS[@]}"

names=(ETCD KUBE_APISERVER KUBE_CONTROLLER_MANAGER KUBE_SCHEDULER KUBELET KUBE_PROXY KUBECTL)
for i in "${!names[@]}"; do echo "${names[$i]}=${KUBE_PATHS[$i]}"; done
cat <<EOF
COREDNS=$COREDNS
TRAEFIK=$TRAEFIK
CRICTL=$CRICTL
IMAGE_DIR=$IMAGE_DIR
PAUSE_IMAGE=$PAUSE_IMAGE
COREDNS_IMAGE=$COREDNS_IMAGE
TRAEFIK_IMAGE=$TRAEFIK_IMAGE
BUSYBOX_IMAGE=$BUSYBOX_IMAGE
EOF
