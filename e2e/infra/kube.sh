#!/usr/bin/env bash
# Builds real Kubernetes components outside the repository, once: etcd and kube-apiserver for the
# envtest-style control plane of the operator tests, and the rest of a node (controller-manager,
# scheduler, kubelet, kube-proxy, kubectl) for the single-node cluster of `cluster.sh`.
#
# kube-apiserver: `k8s.io/kubernetes` cannot be `go install`ed (its go.mod points every staging
# repository, k8s.io/api, k8s.io/apiserver, ..., at ./staging and requires them as v0.0.0), so a
# wrapper module requires it and replaces each staging module it names with the published
# v0.<minor>.<patch> tag. The list is read from that release's own go.mod (a hand-kept list
# drifts: sample-cli-plugin and sample-controller are replaced but never required, and their
# tags are not always on the proxy). The wrapper also copies the release's `go` and `godebug`
# lines, so the binary runs with the runtime defaults Kubernetes was released with, and stamps
# the version into component-base (the apiserver derives its binary/emulation version from it).
# etcd: a wrapper module around go.etcd.io/etcd/server/v3 (its go.mod has ../api-style replace
# directives, so `go install` refuses it).
#
# Idempotent: binaries are cached per version; a second run only checks `--version` (milliseconds).
# Concurrent runs wait on a lock instead of building twice. Progress goes to stderr; stdout gets
# one absolute path per requested component, in order, so the last line is the last binary.
#
#   kube.sh [COMPONENT...]   (default: etcd kube-apiserver)
#   COMPONENT: etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
#
#   EDFS_CACHE     cache root (default ~/.cache/edfs); binaries land in $EDFS_CACHE/kube/bin
#   KUBE_VERSION   Kubernetes release to build (default below); staging modules use v0.<minor>.<patch>
#   ETCD_VERSION   etcd 3.5 release to build (default below)
set -euo pipefail
shopt -s inherit_errexit

CACHE="${EDFS_CACHE:-$HOME/.cache/edfs}"
KUBE_VERSION="${KUBE_VERSION:-v1.33.13}"
ETCD_VERSION="${ETCD_VERSION:-v3.5.21}"
ROOT="$CACHE/kube"
BIN_DIR="$ROOT/bin"

log() { echo "kube.sh: $*" >&2; }
die() { log "$*"; exit 1; }

COMPONENTS=("$@")
[[ ${#COMPONENTS[@]} -gt 0 ]] || COMPONENTS=(etcd kube-apiserver)
for c in "${COMPONENTS[@]}"; do
  case "$c" in
    etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kube-proxy | kubectl) ;;
    *) die "unknown component '$c' (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl)" ;;
  esac
done

[[ "$KUBE_VERSION" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "KUBE_VERSION must look like v1.33.13, got '$KUBE_VERSION'"
KUBE_MINOR="${BASH_REMATCH[1]}"
STAGING_VERSION="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"

bin_path() {
  case "$1" in
    etcd) echo "$BIN_DIR/etcd-$ETCD_VERSION" ;;
    *) echo "$BIN_DIR/$1-$KUBE_VERSION" ;;
  esac
}

# A cached binary counts only if it runs and reports the expected version. (The output is read
# whole: piping it into `grep -q` would, under pipefail, fail at random on SIGPIPE.)
is_built() {
  local bin version
  bin="$(bin_path "$1")"
  [[ -x "$bin" ]] || return 1
  version="$(version_of "$1" "$bin")" || return 1
  case "$1" in
    etcd) [[ "$version" == *"etcd Version: ${ETCD_VERSION#v}"$'\n'* ]] ;;
    kubectl) [[ "$version" == "Client Version: $KUBE_VERSION"$'\n'* ]] ;;
    *) [[ "$version" == "Kubernetes $KUBE_VERSION" ]] ;;
  esac
}

# kubectl has no --version flag.
version_of() {
  case "$1" in
    kubectl) "$2" version --client 2>/dev/null ;;
    *) "$2" --version 2>/dev/null ;;
  esac
}

all_built() {
  local c
  for c in "${COMPONENTS[@]}"; do is_built "$c" || return 1; done
}

print_paths() {
  local c
  for c in "${COMPONENTS[@]}"; do bin_path "$c"; done
}

if all_built; then
  print_paths
  exit 0
fi

command -v go >/dev/null 2>&1 || die "go is required to build the control plane (Go toolchain not found)"
mkdir -p "$BIN_DIR"

# One builder at a time; whoever waited rechecks and usually finds the binaries ready.
exec 9>"$ROOT/.lock"
if ! flock -n 9; then
  log "another kube.sh is building; waiting for it"
  flock 9
fi

export GOMODCACHE="$CACHE/go/mod"
export GOCACHE="$CACHE/go/build"
export GOFLAGS="$(go env GOFLAGS) -mod=mod -modcacherw"
export CGO_ENABLED=0
export GOTOOLCHAIN=local
NICE=(nice -n 10)

build_etcd() {
  local dir="$ROOT/src/etcd-$ETCD_VERSION" out
  out="$(bin_path etcd)"
  log "building etcd $ETCD_VERSION: first run takes ~1-2 min on 2 cores"
  mkdir -p "$dir"
  (
    cd "$dir"
    [[ -f go.mod ]] || go mod init local/etcdbin >&2 2>/dev/null
    "${NICE[@]}" go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
    "${NICE[@]}" go build -trimpath -ldflags "-s -w" -o "$out.tmp" go.etcd.io/etcd/server/v3 >&2
  )
  mv -f "$out.tmp" "$out"
  local version
  version="$("$out" --version)"
  log "built ${version%%$'\n'*} at $out"
}

# Prepares the wrapper module for $KUBE_VERSION in $KUBE_WRAPPER (once).
KUBE_WRAPPER="$ROOT/src/kubernetes-$KUBE_VERSION"
kube_wrapper() {
  local dir="$KUBE_WRAPPER"
  [[ -f "$dir/.ready" ]] && return
  mkdir -p "$dir"
  (
    cd "$dir"
    rm -f go.mod go.sum
    go mod init local/k8sbin >&2 2>/dev/null
    log "resolving k8s.io/kubernetes@$KUBE_VERSION (downloads ~1 GB of modules on the first run)"
    local kmod
    kmod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
    [[ -f "$kmod" ]] || die "could not read the go.mod of k8s.io/kubernetes@$KUBE_VERSION"
    local staging
    staging="$(awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$kmod")"
    [[ -n "$staging" ]] || die "no staging replace directives in $kmod"
    local goline godebug m edits=()
    goline="$(awk '$1 == "go" { print $2; exit }' "$kmod")"
    godebug="$(awk '$1 == "godebug" && $2 != "(" { print $2 }' "$kmod")"
    [[ -n "$goline" ]] && edits+=("-go=$goline")
    for m in $godebug; do edits+=("-godebug=$m"); done
    for m in $staging; do
      # Only modules k8s.io/kubernetes requires matter; replacing others would make `go` look
      # for tags the proxy may not serve.
      grep -qE "^[[:space:]]*(require[[:space:]]+)?$m[[:space:]]+v0\.0\.0\$" "$kmod" || continue
      edits+=("-replace=$m=$m@$STAGING_VERSION")
    done
    go mod edit "${edits[@]}"
    "${NICE[@]}" go get "k8s.io/kubernetes@$KUBE_VERSION" >&2
    touch .ready
  )
}

build_kube() {
  local component="$1" dir out ldf
  out="$(bin_path "$component")"
  kube_wrapper
  dir="$KUBE_WRAPPER"
  case "$component" in
    kube-apiserver) log "building kube-apiserver $KUBE_VERSION: first run takes ~10-15 min on 2 cores" ;;
    *) log "building $component $KUBE_VERSION: a few minutes (reuses the kube-apiserver build cache)" ;;
  esac
  ldf="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$KUBE_MINOR"
    ldf+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (
    cd "$dir"
    "${NICE[@]}" go build -trimpath -tags notest -ldflags "$ldf" -o "$out.tmp" "k8s.io/kubernetes/cmd/$component" >&2
  )
  mv -f "$out.tmp" "$out"
  local version
  version="$(version_of "$component" "$out")"
  log "built ${version%%$'\n'*} at $out"
}

for c in "${COMPONENTS[@]}"; do
  is_built "$c" && continue
  start=$SECONDS
  case "$c" in
    etcd) build_etcd ;;
    *) build_kube "$c" ;;
  esac
  log "$c took $((SECONDS - start)) s"
done

print_paths
