#!/usr/bin/env bash
# Builds the monitoring and autoscaling parts the cluster suites deploy into the single-node
# cluster of `cluster.sh`, outside the repository, once, and makes their images locally (no
# registry can be reached):
#
#   quay.io/prometheus/prometheus:<version>             Prometheus 3 (github.com/prometheus/prometheus,
#                                                       module v0.3MM.P = release v3.MM.P), with only
#                                                       the Kubernetes service discovery and no web
#                                                       UI assets (the HTTP API is complete); promtool
#                                                       beside it, for checking rule files
#   ghcr.io/kedacore/keda:<version>                     the KEDA operator (github.com/kedacore/keda/v2)
#   ghcr.io/kedacore/keda-metrics-apiserver:<version>   KEDA's metrics server (the external metrics API)
#   registry.k8s.io/metrics-server/metrics-server:<v>   metrics-server (sigs.k8s.io/metrics-server):
#                                                       the resource metrics API (HPA on CPU)
#
# Every image is one static binary in a minimal root file system, under the upstream name, so
# the same manifests run on a cluster that can pull. KEDA's go.mod has replace and exclude
# directives (`go install` refuses it): its module is copied out of the module cache and built as
# the main module, exactly as upstream builds it. The projects' own manifests, for `kubectl
# kustomize`, are printed too: KEDA_CONFIG (CRDs, RBAC, Deployments, APIService) and
# METRICS_SERVER_MANIFESTS.
#
# Versions are the newest on the proxy that this machine's Go toolchain builds and that match the
# cluster's Kubernetes minor (1.33): KEDA 2.21.1 and metrics-server 0.9 need Go 1.26.10+.
#
# Idempotent: a second run only checks the cached files (about a second). Concurrent runs wait on
# a lock. Progress and time per part go to stderr; stdout gets KEY=VALUE lines (paths and image
# names).
#
#   EDFS_CACHE              cache root (default ~/.cache/edfs); parts land in $EDFS_CACHE/monitoring
#   PROMETHEUS_VERSION      Prometheus module version (default below; v0.316.0 is Prometheus 3.16.0)
#   KEDA_VERSION            KEDA release (default below)
#   METRICS_SERVER_VERSION  metrics-server release (default below)
set -euo pipefail
shopt -s inherit_errexit

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${EDFS_CACHE:-$HOME/.cache/edfs}"
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
KEDA_VERSION="${KEDA_VERSION:-v2.21.0}"
METRICS_SERVER_VERSION="${METRICS_SERVER_VERSION:-v0.8.1}"
ROOT="$CACHE/monitoring"
BIN_DIR="$ROOT/bin"
IMAGE_DIR="$ROOT/images"

log() { echo "monitoring-parts.sh: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# shellcheck source=image-lib.sh
source "$HERE/image-lib.sh"

[[ "$PROMETHEUS_VERSION" =~ ^v0\.3([0-9]{2})\.([0-9]+)$ ]] ||
  die "PROMETHEUS_VERSION must be a Prometheus 3 module version like v0.316.0, got '$PROMETHEUS_VERSION'"
PROMETHEUS_RELEASE="3.$((10#${BASH_REMATCH[1]})).${BASH_REMATCH[2]}"

PROMETHEUS_IMAGE="quay.io/prometheus/prometheus:v$PROMETHEUS_RELEASE"
KEDA_IMAGE="ghcr.io/kedacore/keda:${KEDA_VERSION#v}"
KEDA_ADAPTER_IMAGE="ghcr.io/kedacore/keda-metrics-apiserver:${KEDA_VERSION#v}"
METRICS_SERVER_IMAGE="registry.k8s.io/metrics-server/metrics-server:$METRICS_SERVER_VERSION"

PROMETHEUS="$BIN_DIR/prometheus-v$PROMETHEUS_RELEASE"
PROMTOOL="$BIN_DIR/promtool-v$PROMETHEUS_RELEASE"
KEDA="$BIN_DIR/keda-$KEDA_VERSION"
KEDA_ADAPTER="$BIN_DIR/keda-adapter-$KEDA_VERSION"
METRICS_SERVER="$BIN_DIR/metrics-server-$METRICS_SERVER_VERSION"
KEDA_SRC="$ROOT/src/keda-$KEDA_VERSION"

mkdir -p "$BIN_DIR" "$IMAGE_DIR" "$ROOT/src"
exec 9>"$ROOT/.lock"
if ! flock -n 9; then
  log "another monitoring-parts.sh is building; waiting for it"
  flock 9
fi

export GOMODCACHE="$CACHE/go/mod"
export GOCACHE="$CACHE/go/build"
export GOFLAGS="-modcacherw"
export CGO_ENABLED=0
export GOTOOLCHAIN=local
NICE=(nice -n 10)

need_go() { command -v go >/dev/null 2>&1 || die "go is required to build the monitoring parts (Go toolchain not found)"; }

# The Go version a module's go.mod asks for must not be newer than the local toolchain.
check_go_line() {
  local module=$1 gomod=$2 want have
  want="$(awk '$1 == "go" { print $2; exit }' "$gomod")"
  have="$(go env GOVERSION)"
  have="${have#go}"
  [[ -z "$want" ]] && return
  if [[ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | tail -n1)" != "$have" ]]; then
    die "$module needs Go $want, this machine has $have (GOTOOLCHAIN=local); choose an older release"
  fi
}

mod_file() { go mod download -json "$1" | sed -n 's/^[[:space:]]*"'"$2"'": "\(.*\)",\{0,1\}$/\1/p'; }

build_prometheus() {
  [[ -x "$PROMETHEUS" && -x "$PROMTOOL" ]] && return
  need_go
  log "building Prometheus v$PROMETHEUS_RELEASE and promtool (first run: ~10-15 min on 2 cores)"
  local module="github.com/prometheus/prometheus@$PROMETHEUS_VERSION" gobin
  check_go_line "$module" "$(mod_file "$module" GoMod)"
  gobin="$(mktemp -d "$ROOT/gobin.XXXXXX")"
  local v=github.com/prometheus/common/version
  # remove_all_sd + enable_kubernetes_sd: only the Kubernetes service discovery (the others pull
  # in every cloud SDK). Without the builtinassets tag the web UI is not embedded; the API is.
  (cd "$ROOT" && GOBIN="$gobin" "${NICE[@]}" go install -trimpath -tags remove_all_sd,enable_kubernetes_sd \
    -ldflags "-s -w -X $v.Version=$PROMETHEUS_RELEASE -X $v.Branch=HEAD -X $v.BuildUser=edfs -X $v.BuildDate=19700101-00:00:00" \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION" >&2)
  mv -f "$gobin/promtool" "$PROMTOOL"
  mv -f "$gobin/prometheus" "$PROMETHEUS"
  rmdir "$gobin"
}

build_keda() {
  [[ -x "$KEDA" && -x "$KEDA_ADAPTER" && -f "$KEDA_SRC/.ready" ]] && return
  need_go
  log "building KEDA $KEDA_VERSION operator and metrics server (first run: ~15-25 min on 2 cores, ~1 GB of modules)"
  local module="github.com/kedacore/keda/v2@$KEDA_VERSION" dir
  dir="$(mod_file "$module" Dir)"
  [[ -d "$dir" ]] || die "could not download $module"
  check_go_line "$module" "$dir/go.mod"
  if [[ ! -f "$KEDA_SRC/.ready" ]]; then
    rm -rf "$KEDA_SRC"
    cp -r "$dir" "$KEDA_SRC"
    chmod -R u+w "$KEDA_SRC"
    touch "$KEDA_SRC/.ready"
  fi
  local out
  out="$(mktemp -d "$ROOT/gobin.XXXXXX")"
  (
    cd "$KEDA_SRC"
    local v=github.com/kedacore/keda/v2/version
    "${NICE[@]}" go build -mod=mod -trimpath -ldflags "-s -w -X $v.Version=${KEDA_VERSION#v} -X $v.GitCommit=$KEDA_VERSION" \
      -o "$out/" ./cmd/operator ./cmd/adapter >&2
  )
  mv -f "$out/adapter" "$KEDA_ADAPTER"
  mv -f "$out/operator" "$KEDA"
  rmdir "$out"
}

build_metrics_server() {
  [[ -x "$METRICS_SERVER" ]] && return
  need_go
  log "building metrics-server $METRICS_SERVER_VERSION (first run: ~5-8 min on 2 cores)"
  local module="sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION" gobin
  check_go_line "$module" "$(mod_file "$module" GoMod)"
  gobin="$(mktemp -d "$ROOT/gobin.XXXXXX")"
  (cd "$ROOT" && GOBIN="$gobin" "${NICE[@]}" go install -trimpath \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$METRICS_SERVER_VERSION" \
    "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION" >&2)
  mv -f "$gobin/metrics-server" "$METRICS_SERVER"
  rmdir "$gobin"
}

# image NAME REF BINARY DEST CONFIG [DIR...]: the archive $IMAGE_DIR/NAME.tar of one static
# binary at DEST, plus empty directories DIR (owned by nobody, for the data a container writes),
# rebuilt when the reference or the binary changed.
image() {
  local name=$1 ref=$2 binary=$3 dest=$4 config=$5 out stamp rootfs d
  shift 5
  out="$IMAGE_DIR/$name.tar"
  stamp="$ref $(stat -L -c "%s %Y" "$binary") $*"
  [[ -f "$out" && -f "$out.stamp" && "$(cat "$out.stamp")" == "$stamp" ]] && return
  rootfs="$(base_rootfs)"
  mkdir -p "$rootfs/$(dirname "$dest")"
  cp "$binary" "$rootfs/$dest"
  chmod 755 "$rootfs/$dest"
  for d in "$@"; do
    mkdir -p "$rootfs/$d"
    chown 65534:65534 "$rootfs/$d"
  done
  make_image "$ref" "$rootfs" "$out" "$config"
  rm -rf "$rootfs"
  echo "$stamp" >"$out.stamp"
  log "made image $ref ($(du -h "$out" | cut -f1))"
}

build_images() {
  local path='"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]'
  image prometheus "$PROMETHEUS_IMAGE" "$PROMETHEUS" /bin/prometheus \
    "\"Entrypoint\":[\"/bin/prometheus\"],\"Cmd\":[\"--config.file=/etc/prometheus/prometheus.yml\",\"--storage.tsdb.path=/prometheus\"],\"User\":\"65534\",\"WorkingDir\":\"/prometheus\",$path" \
    /prometheus /etc/prometheus
  image keda "$KEDA_IMAGE" "$KEDA" /keda "\"Entrypoint\":[\"/keda\"],\"User\":\"65532:65532\",$path"
  image keda-metrics-apiserver "$KEDA_ADAPTER_IMAGE" "$KEDA_ADAPTER" /keda-adapter \
    "\"Entrypoint\":[\"/keda-adapter\"],\"User\":\"65532:65532\",$path"
  image metrics-server "$METRICS_SERVER_IMAGE" "$METRICS_SERVER" /metrics-server \
    "\"Entrypoint\":[\"/metrics-server\"],\"User\":\"65534\",$path"
}

part "Prometheus" build_prometheus
part "metrics-server" build_metrics_server
part "KEDA" build_keda
part "images" build_images
exec 9>&-

cat <<EOF
PROMETHEUS=$PROMETHEUS
PROMTOOL=$PROMTOOL
KEDA=$KEDA
KEDA_ADAPTER=$KEDA_ADAPTER
KEDA_CONFIG=$KEDA_SRC/config
METRICS_SERVER=$METRICS_SERVER
METRICS_SERVER_MANIFESTS=$(mod_file "sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION" Dir)/manifests
IMAGE_DIR=$IMAGE_DIR
PROMETHEUS_IMAGE=$PROMETHEUS_IMAGE
KEDA_IMAGE=$KEDA_IMAGE
KEDA_ADAPTER_IMAGE=$KEDA_ADAPTER_IMAGE
METRICS_SERVER_IMAGE=$METRICS_SERVER_IMAGE
EOF
