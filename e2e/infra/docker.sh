#!/usr/bin/env bash
# Makes sure a Docker engine answers, for building and running the project's images in tests.
#
# When `docker info` works (Docker Desktop, a system service, an earlier run of this script), this
# does nothing. Otherwise, as root, it starts Debian's dockerd by hand in the background (machines
# without systemd) and waits until it answers on the default socket (/var/run/docker.sock).
#
# Why its own containerd: dockerd 20.10 uses the system containerd whenever
# /run/containerd/containerd.sock exists, and a Kubernetes node on the same machine runs exactly
# that containerd (for its kubelet, with its own config). Sharing it would tie Docker to the
# node's lifecycle and configuration, so this script starts a separate containerd with its own
# socket, root and state (and the CRI plugin off) and points dockerd at it.
#
# Why no bridge and no iptables: dockerd's default bridge sets the FORWARD chain's policy to DROP,
# which silently breaks pod-to-pod traffic of a CNI bridge on the same machine. The project's
# builds and test containers all use `--network host`, so the engine is started with
# `--bridge=none --iptables=false` (containers without `--network host` get loopback only).
#
# Files (everything is findable, and stopped by pid with `docker.sh stop`):
#   $EDFS_CACHE/docker/data          dockerd's data root (images, layer cache)
#   $EDFS_CACHE/docker/containerd    containerd's root
#   $EDFS_CACHE/docker/{dockerd,containerd}.{pid,log}
#   /run/edfs-docker                 runtime state (sockets; a short path: sockets have a length limit)
#
#   docker.sh          ensure a Docker engine answers (idempotent; milliseconds when it does)
#   docker.sh stop     stop the dockerd and containerd this script started (by pid)
#
#   EDFS_CACHE   cache root (default ~/.cache/edfs)
set -euo pipefail

CACHE="${EDFS_CACHE:-$HOME/.cache/edfs}"
DIR="$CACHE/docker"
RUN_DIR=/run/edfs-docker
CONTAINERD_SOCK="$RUN_DIR/containerd/containerd.sock"
DOCKER_SOCK=/var/run/docker.sock
READY_TIMEOUT_S=60

log() { echo "docker.sh: $*" >&2; }

running_pid() {
  local file=$1 pid
  [[ -f "$file" ]] || return 1
  pid="$(cat "$file" 2>/dev/null || true)"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# The engine answers and can run builds: `docker info` alone is not enough, since dockerd keeps
# answering it after the containerd of ours it builds with has gone (it then fails every RUN step).
engine_ok() {
  docker info >/dev/null 2>&1 || return 1
  [[ -f "$DIR/containerd.pid" ]] || return 0 # not an engine of ours: its own business
  running_pid "$DIR/containerd.pid" >/dev/null && [[ -S "$CONTAINERD_SOCK" ]]
}

stop_pid() {
  local name=$1 file=$2 pid
  if pid="$(running_pid "$file")"; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) did not stop within 10 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$file"
}

if [[ "${1:-}" == stop ]]; then
  stop_pid dockerd "$DIR/dockerd.pid"
  stop_pid containerd "$DIR/containerd.pid"
  # dockerd leaves mounts behind (its data root bound onto itself, the default netns file); with
  # them gone the cache directory can be removed.
  awk -v data="$DIR/data" -v run="$RUN_DIR" \
    'index($2, data) == 1 || index($2, run) == 1 { print $2 }' /proc/self/mounts |
    sort -r | while read -r mountpoint; do umount -l "$mountpoint" || true; done
  exit 0
fi

if engine_ok; then
  exit 0
fi

command -v docker >/dev/null 2>&1 || {
  log "no docker client; install Docker (Debian: apt-get install -y docker.io)"
  exit 1
}
if [[ -n "${DOCKER_HOST:-}" && "$DOCKER_HOST" != "unix://$DOCKER_SOCK" ]]; then
  log "DOCKER_HOST=$DOCKER_HOST does not answer; not starting a local engine in its place"
  exit 1
fi
if [[ "$(id -u)" != 0 ]]; then
  log "no Docker engine answers and starting one needs root; start Docker yourself, then rerun"
  exit 1
fi
for bin in dockerd containerd runc; do
  command -v "$bin" >/dev/null 2>&1 || {
    log "$bin not found (Debian: apt-get install -y docker.io containerd runc)"
    exit 1
  }
done

mkdir -p "$DIR/data" "$DIR/containerd" "$RUN_DIR/containerd" "$RUN_DIR/exec"

# Concurrent runs: one starts the engine, the others wait for it and find it answering.
exec 9>"$DIR/.lock"
if ! flock -n 9; then
  log "another run is starting the engine; waiting for it"
  flock 9
fi
if engine_ok; then
  exit 0
fi

# A dockerd of ours that is alive but does not answer (yet, or any more), or whose containerd is
# gone: start over.
if running_pid "$DIR/dockerd.pid" >/dev/null; then
  log "dockerd of an earlier run is alive but cannot build (no answer, or its containerd is gone); restarting it"
fi
stop_pid dockerd "$DIR/dockerd.pid" # also removes a stale pid file, which dockerd refuses

if ! running_pid "$DIR/containerd.pid" >/dev/null; then
  cat >"$RUN_DIR/containerd.toml" <<EOF
version = 2
root = "$DIR/containerd"
state = "$RUN_DIR/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"

[debug]
  address = "$RUN_DIR/containerd/debug.sock"
EOF
  rm -f "$CONTAINERD_SOCK" # left by a containerd that did not exit cleanly
  log "starting containerd for Docker (socket $CONTAINERD_SOCK, log $DIR/containerd.log)"
  nohup containerd --config "$RUN_DIR/containerd.toml" >>"$DIR/containerd.log" 2>&1 </dev/null 9>&- &
  echo $! >"$DIR/containerd.pid"
  for _ in $(seq 1 $((READY_TIMEOUT_S * 10))); do
    [[ -S "$CONTAINERD_SOCK" ]] && break
    running_pid "$DIR/containerd.pid" >/dev/null || {
      log "containerd exited; last lines of $DIR/containerd.log:"
      tail -20 "$DIR/containerd.log" >&2
      exit 1
    }
    sleep 0.1
  done
fi

log "starting dockerd (data $DIR/data, log $DIR/dockerd.log)"
nohup dockerd \
  --host "unix://$DOCKER_SOCK" \
  --data-root "$DIR/data" \
  --exec-root "$RUN_DIR/exec" \
  --pidfile "$DIR/dockerd.pid" \
  --containerd "$CONTAINERD_SOCK" \
  --bridge=none \
  --iptables=false \
  --ip-masq=false \
  >>"$DIR/dockerd.log" 2>&1 </dev/null 9>&- &
dockerd_pid=$! # dockerd writes its pid file itself (and refuses to start when one exists)

started=$SECONDS
until docker info >/dev/null 2>&1; do
  if ! kill -0 "$dockerd_pid" 2>/dev/null; then
    log "dockerd exited; last lines of $DIR/dockerd.log:"
    tail -20 "$DIR/dockerd.log" >&2
    exit 1
  fi
  if ((SECONDS - started > READY_TIMEOUT_S)); then
    log "dockerd does not answer after ${READY_TIMEOUT_S} s; last lines of $DIR/dockerd.log:"
    tail -20 "$DIR/dockerd.log" >&2
    exit 1
  fi
  sleep 0.2
done
log "Docker engine ready ($(docker version --format '{{.Server.Version}}' 2>/dev/null), $((SECONDS - started)) s)"
