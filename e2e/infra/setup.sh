#!/usr/bin/env bash
# Prepares every real part the test suites run against, before Jest starts, so a cold machine
# builds each once (with progress) instead of inside a test's timeout:
#   nats-server (Go module proxy), etcd + kube-apiserver (Go module proxy), helm (Go module proxy),
#   gitops-health (Argo CD's Lua health evaluation and Flux's kstatus; Go module proxy),
#   Apache Kafka (Maven Central), Chromium (Debian), the parts of the single-node cluster
#   (the other Kubernetes components, CoreDNS, Traefik, crictl, locally made images), and what the
#   autoscaling suite deploys into it (Prometheus, KEDA, metrics-server: Go module proxy).
# Everything is cached outside the repository (${EDFS_CACHE:-$HOME/.cache/edfs}); on a warm
# machine this takes about a second. A part that cannot be prepared stops the run with its error.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
step() {
  local name=$1
  shift
  local started=$SECONDS
  echo "setup: $name ..." >&2
  "$@" >/dev/null
  echo "setup: $name ready ($((SECONDS - started)) s)" >&2
}
step "nats-server" bash "$HERE/nats.sh"
step "helm" bash "$HERE/helm.sh"
step "etcd and kube-apiserver (first build: ~10-15 min on 2 cores)" bash "$HERE/kube.sh"
step "gitops-health (first build: ~1-2 min)" bash "$HERE/gitops-health.sh"
step "Apache Kafka" bash "$HERE/kafka.sh"
step "Chromium" bash "$HERE/chromium.sh"
# A Docker engine (started when none answers), the node:24-slim base image (made locally when no
# registry answers) and the project's images built from this working tree (images.sh: :dev tags).
step "Docker engine and images: router, operator, examples, nats (first build: ~5 min)" bash "$HERE/images.sh"
step "single-node cluster parts: Kubernetes node components, CoreDNS, Traefik, images (first build: ~15-20 min on 2 cores)" bash "$HERE/cluster-parts.sh"
step "monitoring parts: Prometheus, KEDA, metrics-server and their images (first build: ~15-20 min on 2 cores)" bash "$HERE/monitoring-parts.sh"
