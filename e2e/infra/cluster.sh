#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, for the suites that need pods: its own
# containerd (CRI, runc, cgroupfs), etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubelet, kube-proxy (iptables), CoreDNS and Traefik v3 as the Ingress controller. The parts come
# from `cluster-parts.sh` (built once, cached); everything runs from one run directory and is
# stopped by pid.
#
#   cluster.sh up [--owner PID]   cleans up whatever an earlier run left, starts the cluster, waits
#                                 until the node is Ready and CoreDNS and Traefik serve, and prints
#                                 KEY=VALUE lines (KUBECONFIG, SERVER, NODE_IP, INGRESS_URL, ...).
#                                 Refuses (exit status 75) while another live owner's
#                                 cluster runs.
#   cluster.sh down               stops everything it started and undoes its changes to the host:
#                                 pods (through the CRI, so their network is torn down), processes,
#                                 mounts, iptables chains, the bridge, the kubelet's cgroups.
#   cluster.sh load-image IMAGE...  copies images from the local Docker engine into the node
#                                 (`docker save IMAGE | ctr -n k8s.io images import -`)
#   cluster.sh import ARCHIVE...  imports `docker save`-style archives into the node (once per
#                                 archive content)
#   cluster.sh env                the KEY=VALUE lines of the running cluster
#   cluster.sh kubectl ARGS...    kubectl with the cluster's admin kubeconfig
#
# Layout (one cluster per machine: the bridge, the iptables chains and the node's ports are
# machine-wide):
#   node IP         the address of the default route's interface (EDFS_CLUSTER_NODE_IP to choose)
#   kube-apiserver  https://NODE_IP:6443 (EDFS_CLUSTER_API_PORT); a CA made per run; the
#                   aggregation layer on (a front-proxy CA and client certificate, routing to
#                   endpoints), so APIServices such as metrics-server's and KEDA's are served
#   Ingress         http://NODE_IP:30080 (EDFS_CLUSTER_INGRESS_PORT, a NodePort of Traefik),
#                   IngressClass `traefik` (the default class)
#   pods            10.244.0.0/24 on bridge edfs0; Services 10.96.0.0/16; DNS 10.96.0.10
#                   (cluster.local)
#   etcd            127.0.0.1:12379 and :12380; kubelet NODE_IP:10250 (healthz :10248);
#                   kube-proxy NODE_IP:10249 and :10256. Ports below the ephemeral range and on the
#                   node IP, so they never take a 127.0.0.1 port that other tests get from the OS.
#   run directory   EDFS_CLUSTER_DIR (default /tmp/edfs-cluster); logs in $EDFS_CLUSTER_DIR/logs,
#                   kept after `down` in $EDFS_CLUSTER_DIR.last-logs
#   image store     $EDFS_CACHE/cluster/node: containerd's content and snapshots, kept across runs
#                   so an image is imported once (`down` leaves no pod or container in it)
#
# Needs root, no other kubelet on the machine, and Debian's containerd (1.6 or later), runc,
# containernetworking-plugins, iptables, conntrack and curl (installed when missing). Checked on
# the cgroup v1 hierarchy (cgroupfs driver; the kubelet only warns about v1). The kernel settings
# the node changes (ip_forward, and the kubelet's kernel.panic, kernel.panic_on_oops,
# vm.overcommit_memory) are put back by `down`.
set -euo pipefail
shopt -s inherit_errexit

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${EDFS_CACHE:-$HOME/.cache/edfs}"
RUN="${EDFS_CLUSTER_DIR:-/tmp/edfs-cluster}"
# containerd's content and snapshots outlive a run, so images are imported once, not per start
# (`down` removes every pod and container; only images stay). Stamps name what each holds.
NODE_STORE="$CACHE/cluster/node"
CONTAINERD_ROOT="$NODE_STORE/containerd"
IMAGE_STAMPS="$NODE_STORE/images"
API_PORT="${EDFS_CLUSTER_API_PORT:-6443}"
INGRESS_PORT="${EDFS_CLUSTER_INGRESS_PORT:-30080}"
NODE_NAME=edfs-node
POD_CIDR=10.244.0.0/24
POD_GATEWAY=10.244.0.1
CLUSTER_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
BRIDGE=edfs0
CNI_NETWORK=edfs-pods
CNI_BIN_DIR=/usr/lib/cni
ETCD_PORT=12379
ETCD_PEER_PORT=12380
CHAIN_FORWARD=EDFS-CLUSTER-FORWARD
CHAIN_MASQ=EDFS-CLUSTER-MASQ
SOCK="$RUN/containerd/containerd.sock"
LOGS="$RUN/logs"
PIDS="$RUN/pids"
PKI="$RUN/pki"
READY_TIMEOUT="${EDFS_CLUSTER_READY_TIMEOUT:-180}"

log() { echo "cluster.sh: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# ---------------------------------------------------------------------------------------------
# Parts and host requirements

# Loads the KEY=VALUE lines of cluster-parts.sh (building the parts on a cold machine).
load_parts() {
  local line
  while IFS= read -r line; do
    [[ "$line" == *=* ]] || continue
    printf -v "PART_${line%%=*}" '%s' "${line#*=}"
  done < <(bash "$HERE/cluster-parts.sh")
  [[ -n "${PART_KUBELET:-}" && -n "${PART_TRAEFIK:-}" ]] || die "cluster-parts.sh did not print the parts"
}

ensure_host_packages() {
  local missing=()
  command -v containerd >/dev/null 2>&1 || missing+=(containerd)
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  [[ -x "$CNI_BIN_DIR/bridge" ]] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null 2>&1 || missing+=(iptables)
  command -v conntrack >/dev/null 2>&1 || missing+=(conntrack)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  [[ ${#missing[@]} -eq 0 ]] && return
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available"
  log "installing ${missing[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
    { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
}

node_ip() {
  if [[ -n "${EDFS_CLUSTER_NODE_IP:-}" ]]; then
    echo "$EDFS_CLUSTER_NODE_IP"
    return
  fi
  local dev ip
  dev="$(ip -4 route show default | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')"
  [[ -n "$dev" ]] && ip="$(ip -4 -o addr show dev "$dev" scope global | awk '{ sub(/\/.*/, "", $4); print $4; exit }')"
  [[ -z "${ip:-}" ]] && ip="$(ip -4 -o addr show scope global | awk '{ sub(/\/.*/, "", $4); print $4; exit }')"
  [[ -n "${ip:-}" ]] || die "no global IPv4 address for the node (set EDFS_CLUSTER_NODE_IP)"
  echo "$ip"
}

# ---------------------------------------------------------------------------------------------
# Processes: started detached (setsid, so a Ctrl-C of the test run does not kill half of them),
# pid in $PIDS/NAME, log in $LOGS/NAME.log; stopped by that pid.

start_daemon() {
  local name=$1
  shift
  setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 &
  echo "$!" >"$PIDS/$name"
  echo "$1" >"$PIDS/$name.bin"
}

# The pid of NAME when it is still the process we started (not a reused pid).
live_pid() {
  local name=$1 pid bin exe
  [[ -f "$PIDS/$name" ]] || return 1
  pid="$(cat "$PIDS/$name")"
  bin="$(cat "$PIDS/$name.bin" 2>/dev/null || true)"
  [[ -n "$pid" ]] && alive "$pid" || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  [[ -z "$bin" || "$exe" == "$(readlink -f "$bin")"* ]] || return 1
  echo "$pid"
}

# Running, not a zombie (a daemon of an earlier run is reparented to init, which may reap late).
alive() {
  local state
  state="$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z ]]
}

# stop_daemons GRACE NAME...: SIGTERM to each, SIGKILL to those still running after GRACE seconds.
stop_daemons() {
  local grace=$1 name pid pids=() i
  shift
  for name in "$@"; do
    if pid="$(live_pid "$name")"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
    rm -f "$PIDS/$name"
  done
  [[ ${#pids[@]} -gt 0 ]] || return 0
  for ((i = 0; i < grace * 20; i++)); do
    any_alive "${pids[@]}" || return 0
    sleep 0.05
  done
  for pid in "${pids[@]}"; do alive "$pid" && kill -KILL "$pid" 2>/dev/null; done
  for ((i = 0; i < 100; i++)); do
    any_alive "${pids[@]}" || return 0
    sleep 0.05
  done
}

any_alive() {
  local pid
  for pid in "$@"; do alive "$pid" && return 0; done
  return 1
}

# Fails with the tail of NAME's log when it is no longer running.
check_alive() {
  live_pid "$1" >/dev/null && return 0
  log "$1 exited; the end of its log:"
  tail -n 40 "$LOGS/$1.log" >&2 || true
  return 1
}

# wait_for WHAT TIMEOUT DAEMON COMMAND...: polls COMMAND every 0.2 s.
wait_for() {
  local what=$1 timeout=$2 daemon=$3 deadline
  shift 3
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [[ -z "$daemon" ]] || check_alive "$daemon" || die "$what: $daemon is not running"
    ((SECONDS < deadline)) || die "$what: not ready after $timeout s (logs in $LOGS)"
    sleep 0.2
  done
}

ctr_() { ctr --address "$SOCK" -n k8s.io "$@"; }
crictl_() { "$PART_CRICTL" --runtime-endpoint "unix://$SOCK" --timeout 20s "$@"; }
kubectl_() { "$PART_KUBECTL" --kubeconfig "$RUN/admin.kubeconfig" "$@"; }

# ---------------------------------------------------------------------------------------------
# Files

write_pki() {
  mkdir -p "$PKI"
  local ip=$1
  (
    cd "$PKI"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -subj /CN=edfs-cluster-ca -days 30 -out ca.crt 2>/dev/null
    cert() {
      local name=$1 subj=$2 ext=$3
      openssl ecparam -name prime256v1 -genkey -noout -out "$name.key" 2>/dev/null
      openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr" 2>/dev/null
      printf '%s\n' "$ext" >"$name.ext"
      openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
        -extfile "$name.ext" -out "$name.crt" 2>/dev/null
      rm -f "$name.csr" "$name.ext"
    }
    cert apiserver /CN=kube-apiserver "$(
      printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" \
        "subjectAltName=IP:$ip,IP:$API_SERVICE_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    )"
    cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$(
      printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=clientAuth"
    )"
    # The aggregation layer (APIServices: metrics-server, KEDA's external metrics): the API server
    # proxies to an extension API server with a client certificate of its own CA, which the
    # extension server trusts for the X-Remote-User/-Group headers it forwards.
    openssl ecparam -name prime256v1 -genkey -noout -out front-proxy-ca.key 2>/dev/null
    openssl req -x509 -new -key front-proxy-ca.key -subj /CN=edfs-front-proxy-ca -days 30 -out front-proxy-ca.crt 2>/dev/null
    openssl ecparam -name prime256v1 -genkey -noout -out front-proxy-client.key 2>/dev/null
    openssl req -new -key front-proxy-client.key -subj /CN=front-proxy-client -out front-proxy-client.csr 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=clientAuth" >front-proxy-client.ext
    openssl x509 -req -in front-proxy-client.csr -CA front-proxy-ca.crt -CAkey front-proxy-ca.key -CAcreateserial -days 30 \
      -extfile front-proxy-client.ext -out front-proxy-client.crt 2>/dev/null
    rm -f front-proxy-client.csr front-proxy-client.ext
    openssl ecparam -name prime256v1 -genkey -noout -out sa.key 2>/dev/null
    openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
    # One static token per component, each with the identity Kubernetes' bootstrap RBAC expects.
    local entry file user group token
    : >tokens.csv
    for entry in "admin|admin|system:masters" "kubelet|system:node:$NODE_NAME|system:nodes" \
      "kube-proxy|system:kube-proxy|" "kube-controller-manager|system:kube-controller-manager|" \
      "kube-scheduler|system:kube-scheduler|"; do
      IFS='|' read -r file user group <<<"$entry"
      token="$(openssl rand -hex 24)"
      echo "$token" >"$file.token"
      echo "$token,$user,$user${group:+,\"$group\"}" >>tokens.csv
    done
    chmod 600 ./*.key ./*.token tokens.csv
  )
}

kubeconfig() {
  local file=$1 server=$2 token
  token="$(cat "$PKI/$3.token")"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: edfs
  cluster:
    server: $server
    certificate-authority: $PKI/ca.crt
users:
- name: $3
  user:
    token: $token
contexts:
- name: edfs
  context:
    cluster: edfs
    user: $3
current-context: edfs
EOF
  chmod 600 "$file"
}

write_containerd_config() {
  mkdir -p "$CONTAINERD_ROOT" "$IMAGE_STAMPS" "$RUN/containerd/state" "$RUN/cni/net.d" "$RUN/cni/ipam"
  cat >"$RUN/containerd/config.toml" <<EOF
version = 2
root = "$CONTAINERD_ROOT"
state = "$RUN/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$SOCK"

[ttrpc]
  address = "$SOCK.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$RUN/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PART_PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # Where root lacks CAP_SYS_RESOURCE, nothing can lower oom_score_adj, and the -998 of every
  # pod's pause container would fail every pod: keep each container at or above containerd's own.
  restrict_oom_score_adj = true
  max_container_log_line_size = 65536

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$RUN/cni/net.d"
    max_conf_num = 1
EOF
  # Pods on one bridge, addresses from host-local; hostPort through portmap. Masquerading and
  # forwarding are two chains of our own (cleaned up by name), not per-pod chains.
  cat >"$RUN/cni/net.d/10-edfs.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$RUN/cni/ipam",
        "ranges": [[{ "subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
}

write_kubelet_config() {
  local ip=$1
  mkdir -p "$RUN/kubelet" "$RUN/pod-logs"
  awk '$1 == "nameserver" { print; exit }' /etc/resolv.conf >"$RUN/resolv.conf"
  cat >"$RUN/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip
port: 10250
readOnlyPort: 0
healthzBindAddress: $ip
healthzPort: 10248
containerRuntimeEndpoint: unix://$SOCK
cgroupDriver: cgroupfs
failSwapOn: false
oomScoreAdj: 0
failCgroupV1: false
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: cluster.local
resolvConf: $RUN/resolv.conf
podLogsDir: $RUN/pod-logs
volumePluginDir: $RUN/kubelet/volume-plugins
syncFrequency: 5s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 4s
nodeStatusReportFrequency: 30s
configMapAndSecretChangeDetectionStrategy: Watch
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 1Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $PKI/ca.crt
authorization:
  mode: Webhook
EOF
}

manifests() {
  local ip=$1
  cat <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: { name: coredns, namespace: kube-system }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: "system:coredns" }
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: "system:coredns" }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns" }
subjects: [{ kind: ServiceAccount, name: coredns, namespace: kube-system }]
---
apiVersion: v1
kind: ConfigMap
metadata: { name: coredns, namespace: kube-system }
data:
  Corefile: |
    .:53 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 5
        }
        cache 5
        reload
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: { k8s-app: kube-dns }
spec:
  replicas: 1
  selector: { matchLabels: { k8s-app: kube-dns } }
  template:
    metadata: { labels: { k8s-app: kube-dns } }
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      containers:
        - name: coredns
          image: $PART_COREDNS_IMAGE
          imagePullPolicy: IfNotPresent
          args: [-conf, /etc/coredns/Corefile]
          ports:
            - { name: dns, containerPort: 53, protocol: UDP }
            - { name: dns-tcp, containerPort: 53, protocol: TCP }
          readinessProbe:
            httpGet: { path: /ready, port: 8181 }
            periodSeconds: 2
          livenessProbe:
            httpGet: { path: /health, port: 8080 }
            periodSeconds: 10
          volumeMounts: [{ name: config, mountPath: /etc/coredns, readOnly: true }]
      volumes:
        - name: config
          configMap: { name: coredns }
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: { k8s-app: kube-dns }
spec:
  clusterIP: $DNS_SERVICE_IP
  selector: { k8s-app: kube-dns }
  ports:
    - { name: dns, port: 53, protocol: UDP }
    - { name: dns-tcp, port: 53, protocol: TCP }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: traefik, namespace: kube-system }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: traefik }
rules:
  - apiGroups: [""]
    resources: [services, endpoints, secrets, nodes]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [ingresses, ingressclasses]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [ingresses/status]
    verbs: [update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: traefik }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: traefik }
subjects: [{ kind: ServiceAccount, name: traefik, namespace: kube-system }]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: traefik
  annotations: { ingressclass.kubernetes.io/is-default-class: "true" }
spec:
  controller: traefik.io/ingress-controller
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: traefik
  namespace: kube-system
  labels: { app.kubernetes.io/name: traefik }
spec:
  replicas: 1
  selector: { matchLabels: { app.kubernetes.io/name: traefik } }
  template:
    metadata: { labels: { app.kubernetes.io/name: traefik } }
    spec:
      serviceAccountName: traefik
      priorityClassName: system-cluster-critical
      containers:
        - name: traefik
          image: $PART_TRAEFIK_IMAGE
          imagePullPolicy: IfNotPresent
          args:
            - --global.checkNewVersion=false
            - --global.sendAnonymousUsage=false
            - --log.level=INFO
            - --log.noColor=true
            - --ping=true
            - --entryPoints.traefik.address=:8080
            - --entryPoints.web.address=:8000
            # No deadline on reading requests: WebSocket and SSE connections stay open.
            - --entryPoints.web.transport.respondingTimeouts.readTimeout=0
            - --providers.kubernetesIngress=true
            - --providers.kubernetesIngress.ingressEndpoint.ip=$ip
          ports:
            - { name: web, containerPort: 8000 }
            - { name: admin, containerPort: 8080 }
          readinessProbe:
            httpGet: { path: /ping, port: 8080 }
            periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata:
  name: traefik
  namespace: kube-system
spec:
  type: NodePort
  selector: { app.kubernetes.io/name: traefik }
  ports:
    - { name: web, port: 80, targetPort: web, nodePort: $INGRESS_PORT }
EOF
}

# ---------------------------------------------------------------------------------------------
# Host changes and their undoing

# The kernel settings the node changes (the kubelet sets kernel.panic, kernel.panic_on_oops and
# vm.overcommit_memory to its defaults), saved once per run directory and restored by `down`.
SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables kernel.panic kernel.panic_on_oops vm.overcommit_memory)

save_sysctls() {
  local key value
  [[ -f "$RUN/sysctls" ]] && return
  for key in "${SYSCTLS[@]}"; do
    value="$(sysctl -n "$key" 2>/dev/null)" && echo "$key=$value"
  done >"$RUN/sysctls.tmp"
  mv "$RUN/sysctls.tmp" "$RUN/sysctls"
}

restore_sysctls() {
  local line
  [[ -f "$RUN/sysctls" ]] || return 0
  while IFS= read -r line; do sysctl -qw "$line" 2>/dev/null || true; done <"$RUN/sysctls"
}

host_network_up() {
  save_sysctls
  sysctl -qw net.ipv4.ip_forward=1
  if [[ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
    modprobe br_netfilter 2>/dev/null || true
  fi
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] && sysctl -qw net.bridge.bridge-nf-call-iptables=1
  # Pod traffic is forwarded even when another tool (Docker) sets the FORWARD policy to DROP;
  # traffic leaving the pod network is masqueraded.
  iptables -w -N "$CHAIN_FORWARD"
  iptables -w -A "$CHAIN_FORWARD" -s "$POD_CIDR" -j ACCEPT
  iptables -w -A "$CHAIN_FORWARD" -d "$POD_CIDR" -j ACCEPT
  iptables -w -I FORWARD 1 -j "$CHAIN_FORWARD"
  iptables -w -t nat -N "$CHAIN_MASQ"
  iptables -w -t nat -A "$CHAIN_MASQ" -s "$POD_CIDR" -d "$CLUSTER_CIDR" -j RETURN
  iptables -w -t nat -A "$CHAIN_MASQ" -s "$POD_CIDR" -j MASQUERADE
  iptables -w -t nat -A POSTROUTING -j "$CHAIN_MASQ"
}

# Removes, in the filter, nat and mangle tables of iptables and ip6tables, every chain this
# cluster's parts create (kubelet and kube-proxy: KUBE-*, CNI's portmap: CNI-HOSTPORT-* and
# CNI-DN-*, ours: EDFS-CLUSTER-*) and every rule that jumps to one. One iptables-restore per table.
delete_chains() {
  local cmd table rules script
  for cmd in iptables ip6tables; do
    command -v "$cmd-restore" >/dev/null 2>&1 || continue
    for table in filter nat mangle; do
      rules="$("$cmd" -w -t "$table" -S 2>/dev/null)" || continue
      script="$(awk -v table="$table" '
        function ours(chain) { return chain ~ /^(KUBE-|CNI-HOSTPORT-|CNI-DN-|EDFS-CLUSTER-)/ }
        $1 == "-N" && ours($2) { chains[++n] = $2 }
        $1 == "-A" && !ours($2) { for (i = 3; i < NF; i++) if ($i == "-j" && ours($(i + 1))) { sub(/^-A/, "-D"); jumps[++m] = $0; break } }
        END {
          if (n + m == 0) exit
          print "*" table
          for (i = 1; i <= m; i++) print jumps[i]
          for (i = 1; i <= n; i++) print "-F " chains[i]
          for (i = 1; i <= n; i++) print "-X " chains[i]
          print "COMMIT"
        }' <<<"$rules")"
      [[ -z "$script" ]] || "$cmd-restore" -w --noflush <<<"$script" || log "could not remove the chains of $cmd's $table table"
    done
  done
}

host_network_down() {
  delete_chains
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE" 2>/dev/null || true
}

# Every process of a container still alive in the kubelet's cgroups (when the runtime could not
# stop them), then the cgroups themselves.
kill_pod_processes() {
  local dirs=() d pids
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d "$d" ]] && dirs+=("$d")
  done
  [[ ${#dirs[@]} -eq 0 ]] && return
  for _ in 1 2 3 4 5; do
    pids="$(find "${dirs[@]}" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)"
    [[ -z "$pids" ]] && break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.2
  done
  for d in "${dirs[@]}"; do
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

# Whatever still runs from $RUN although its pid file is gone (a lost pid file, containerd's shims,
# a daemon of a crashed run), found by the run directory in its command line and killed by pid.
kill_leftovers() {
  local p cmd pids=()
  for p in /proc/[0-9]*; do
    [[ "${p#/proc/}" == "$$" ]] && continue
    cmd="$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null || true)"
    [[ "$cmd" == *" $RUN/"* || "$cmd" == *"=$RUN/"* ]] || continue
    [[ "$cmd" == *cluster.sh* ]] && continue
    pids+=("${p#/proc/}")
  done
  [[ ${#pids[@]} -gt 0 ]] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  sleep 1
  kill -KILL "${pids[@]}" 2>/dev/null || true
}

unmount_under() {
  local dir=$1 m
  [[ -d "$dir" ]] || return 0
  # Deepest first; lazily when busy.
  awk -v root="$dir" '$5 == root || index($5, root "/") == 1 { print $5 }' /proc/self/mountinfo |
    awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2- | while IFS= read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

# Pods through the CRI (stops their containers and tears down their network: veth, IPAM,
# portmap rules, network namespace). Starts our containerd for it when it is not running.
remove_pods() {
  [[ -f "$RUN/containerd/config.toml" ]] || return 0
  [[ -n "${PART_CRICTL:-}" ]] || return 0
  if ! live_pid containerd >/dev/null && ! ctr_ version >/dev/null 2>&1; then
    start_daemon containerd "$(command -v containerd)" --config "$RUN/containerd/config.toml"
    local i
    for ((i = 0; i < 100; i++)); do
      ctr_ version >/dev/null 2>&1 && break
      sleep 0.1
    done
  fi
  local ids
  ids="$(crictl_ pods -q 2>/dev/null || true)"
  if [[ -n "$ids" ]]; then
    # shellcheck disable=SC2086
    crictl_ stopp $ids >/dev/null 2>&1 || true
    # shellcheck disable=SC2086
    crictl_ rmp -f $ids >/dev/null 2>&1 || true
  fi
}

# Stops whatever runs from $RUN and undoes the host changes. Safe on a partial or crashed run.
down() {
  mkdir -p "$LOGS" "$PIDS"
  stop_daemons 10 kubelet
  remove_pods
  stop_daemons 10 kube-proxy kube-scheduler kube-controller-manager
  stop_daemons 10 kube-apiserver
  stop_daemons 10 etcd containerd
  kill_leftovers
  kill_pod_processes
  host_network_down
  restore_sysctls
  unmount_under "$RUN"
  # Paths the kubelet does not take from its root directory: links to every container log, and
  # the device plugins' directory (with its socket and checkpoint).
  local f
  for f in /var/log/containers/*.log; do
    [[ -L "$f" && "$(readlink "$f")" == "$RUN/"* ]] && rm -f "$f"
  done
  rm -f /var/lib/kubelet/device-plugins/kubelet.sock /var/lib/kubelet/device-plugins/kubelet_internal_checkpoint
  rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet 2>/dev/null || true
  rm -rf "$RUN.last-logs"
  mv "$LOGS" "$RUN.last-logs" 2>/dev/null || true
  rm -rf "$RUN"
}

# ---------------------------------------------------------------------------------------------
# up

env_lines() {
  cat <<EOF
KUBECONFIG=$RUN/admin.kubeconfig
SERVER=https://$NODE_IP:$API_PORT
NODE_IP=$NODE_IP
NODE_NAME=$NODE_NAME
INGRESS_URL=http://$NODE_IP:$INGRESS_PORT
INGRESS_ADDRESS=$NODE_IP
INGRESS_PORT=$INGRESS_PORT
CONTAINERD_ADDRESS=$SOCK
KUBECTL=$PART_KUBECTL
CRICTL=$PART_CRICTL
RUN_DIR=$RUN
LOG_DIR=$LOGS
PAUSE_IMAGE=$PART_PAUSE_IMAGE
COREDNS_IMAGE=$PART_COREDNS_IMAGE
TRAEFIK_IMAGE=$PART_TRAEFIK_IMAGE
BUSYBOX_IMAGE=$PART_BUSYBOX_IMAGE
EOF
}

timed() {
  local what=$1 started=$SECONDS
  shift
  "$@"
  log "$what ($((SECONDS - started)) s)"
}

start_containerd() {
  start_daemon containerd "$(command -v containerd)" --config "$RUN/containerd/config.toml"
  if ! (wait_for "containerd" 30 containerd ctr_ version); then
    # A store a crash left unusable: start over with an empty one (images are imported again).
    log "containerd did not start on $CONTAINERD_ROOT; starting again with an empty store"
    stop_daemons 10 containerd
    rm -rf "$NODE_STORE"
    mkdir -p "$CONTAINERD_ROOT" "$IMAGE_STAMPS"
    start_daemon containerd "$(command -v containerd)" --config "$RUN/containerd/config.toml"
    wait_for "containerd" 30 containerd ctr_ version
  fi
  # Pods a crashed run left in the store (their network is torn down through the CRI).
  remove_pods
  local archive ref
  for archive in pause coredns traefik busybox; do
    ref="PART_${archive^^}_IMAGE"
    import_once "${!ref}" "$(cat "$PART_IMAGE_DIR/$archive.tar.stamp")" ctr_ images import "$PART_IMAGE_DIR/$archive.tar"
  done
}

# The name containerd gives a Docker-style reference (docker.io/library/NAME:latest for NAME).
normalized_ref() {
  local ref=$1 first
  [[ "${ref##*/}" == *:* || "$ref" == *@* ]] || ref="$ref:latest"
  first="${ref%%/*}"
  if [[ "$ref" != */* ]]; then
    ref="docker.io/library/$ref"
  elif [[ "$first" != *.* && "$first" != *:* && "$first" != localhost ]]; then
    ref="docker.io/$ref"
  fi
  echo "$ref"
}

# import_once REF STAMP COMMAND...: runs the import COMMAND unless the node already holds REF as
# of STAMP (an image ID or an archive's stamp); records STAMP afterwards.
import_once() {
  local ref stamp=$2 file
  ref="$(normalized_ref "$1")"
  shift 2
  file="$IMAGE_STAMPS/$(echo "$ref" | tr '/:@' '___')"
  if [[ -f "$file" && "$(cat "$file")" == "$stamp" ]] && ctr_ images ls -q | grep -Fxq "$ref"; then
    return 0
  fi
  rm -f "$file"
  # containerd may fail an unpack whose parent snapshot another unpack of a shared layer is still
  # committing ("failed to prepare extraction snapshot ... parent snapshot ... does not exist");
  # the import is whole or nothing, so it is tried again, a few times.
  local attempt err
  for attempt in 1 2 3; do
    if err="$("$@" 2>&1 >/dev/null)"; then
      echo "$stamp" >"$file"
      return 0
    fi
    [[ "$err" == *"snapshot"* && $attempt -lt 3 ]] || { echo "$err" >&2; return 1; }
    log "importing $ref again (attempt $((attempt + 1))): ${err##*$'\n'}"
    sleep 2
  done
}

start_control_plane() {
  start_daemon etcd "$PART_ETCD" --name=edfs --data-dir="$RUN/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="edfs=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync=true --log-level=warn
  wait_for "etcd" 30 etcd curl -fsS "http://127.0.0.1:$ETCD_PORT/health"
  start_daemon kube-apiserver "$PART_KUBE_APISERVER" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port="$API_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --allow-privileged=true \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --token-auth-file="$PKI/tokens.csv" \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
    --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --enable-aggregator-routing=true \
    --profiling=false
  wait_for "kube-apiserver" 90 kube-apiserver kubectl_ get --raw /readyz
}

start_node() {
  kubeconfig "$RUN/kube-controller-manager.kubeconfig" "https://$NODE_IP:$API_PORT" kube-controller-manager
  kubeconfig "$RUN/kube-scheduler.kubeconfig" "https://$NODE_IP:$API_PORT" kube-scheduler
  kubeconfig "$RUN/kube-proxy.kubeconfig" "https://$NODE_IP:$API_PORT" kube-proxy
  kubeconfig "$RUN/kubelet.kubeconfig" "https://$NODE_IP:$API_PORT" kubelet
  start_daemon kube-controller-manager "$PART_KUBE_CONTROLLER_MANAGER" \
    --kubeconfig="$RUN/kube-controller-manager.kubeconfig" \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --use-service-account-credentials=true --leader-elect=false --secure-port=0 \
    --controllers='*' --cluster-name=edfs --profiling=false \
    --flex-volume-plugin-dir="$RUN/kubelet/volume-plugins"
  start_daemon kube-scheduler "$PART_KUBE_SCHEDULER" \
    --kubeconfig="$RUN/kube-scheduler.kubeconfig" --leader-elect=false --secure-port=0 --profiling=false
  start_daemon kube-proxy "$PART_KUBE_PROXY" \
    --kubeconfig="$RUN/kube-proxy.kubeconfig" --proxy-mode=iptables --hostname-override="$NODE_NAME" \
    --cluster-cidr="$CLUSTER_CIDR" --nodeport-addresses="$NODE_IP/32" \
    --metrics-bind-address="$NODE_IP:10249" --healthz-bind-address="$NODE_IP:10256" \
    --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0s --conntrack-tcp-timeout-close-wait=0s \
    --oom-score-adj=0
  start_daemon kubelet "$PART_KUBELET" \
    --config="$RUN/kubelet.yaml" --kubeconfig="$RUN/kubelet.kubeconfig" --root-dir="$RUN/kubelet" \
    --cert-dir="$RUN/kubelet/pki" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP"
  wait_for "node $NODE_NAME Ready" 90 kubelet node_ready
}

node_ready() {
  [[ "$(kubectl_ get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

start_addons() {
  manifests "$NODE_IP" | kubectl_ apply --server-side --force-conflicts -f - >/dev/null
  wait_for "CoreDNS" "$READY_TIMEOUT" kubelet deployment_available coredns
  wait_for "Traefik" "$READY_TIMEOUT" kubelet deployment_available traefik
  # Traefik answers 404 for a host no Ingress routes: the NodePort path works.
  wait_for "the Ingress port" 60 kube-proxy curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$NODE_IP:$INGRESS_PORT/"
}

deployment_available() {
  [[ "$(kubectl_ -n kube-system get deployment "$1" -o 'jsonpath={.status.availableReplicas}' 2>/dev/null)" -ge 1 ]]
}

up() {
  local owner=${1:-}
  [[ "$(id -u)" -eq 0 ]] || die "the cluster needs root (containerd, kubelet, iptables)"
  local started=$SECONDS
  load_parts
  ensure_host_packages
  if [[ -d "$RUN" ]]; then
    local previous
    previous="$(cat "$RUN/owner" 2>/dev/null || true)"
    if [[ -n "$previous" && "$previous" != "$owner" ]] && kill -0 "$previous" 2>/dev/null; then
      # A distinct status, so a caller knows the cluster is someone else's and leaves it alone.
      log "a cluster of process $previous runs from $RUN; stop it first (cluster.sh down)"
      exit 75
    fi
    log "cleaning up what an earlier run left in $RUN"
    timed "cleaned up" down
  fi
  NODE_IP="$(node_ip)"
  mkdir -p "$RUN" "$LOGS" "$PIDS"
  # Leftovers of a run whose directory is gone (the bridge, our chains, kube-proxy's rules).
  host_network_down
  kill_pod_processes
  echo "${owner:-$$}" >"$RUN/owner"
  log "starting a single-node cluster at https://$NODE_IP:$API_PORT (logs in $LOGS)"
  write_pki "$NODE_IP"
  kubeconfig "$RUN/admin.kubeconfig" "https://$NODE_IP:$API_PORT" admin
  write_containerd_config
  write_kubelet_config "$NODE_IP"
  host_network_up
  timed "containerd up, images imported" start_containerd
  timed "etcd and kube-apiserver up" start_control_plane
  timed "node $NODE_NAME Ready" start_node
  timed "CoreDNS and Traefik ready" start_addons
  env_lines >"$RUN/env"
  log "cluster ready in $((SECONDS - started)) s: export KUBECONFIG=$RUN/admin.kubeconfig; Ingress at http://$NODE_IP:$INGRESS_PORT"
  cat "$RUN/env"
}

# ---------------------------------------------------------------------------------------------

running_env() {
  [[ -f "$RUN/env" ]] || die "no cluster runs from $RUN (cluster.sh up)"
  local line
  while IFS= read -r line; do printf -v "RUN_${line%%=*}" '%s' "${line#*=}"; done <"$RUN/env"
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case "$cmd" in
  up)
    owner=""
    if [[ "${1:-}" == --owner ]]; then owner=${2:?--owner needs a pid}; fi
    up "$owner"
    ;;
  down)
    if [[ -d "$RUN" ]]; then
      load_parts >/dev/null 2>&1 || true
      down
      log "stopped; logs of the last run in $RUN.last-logs"
    fi
    ;;
  env)
    running_env
    cat "$RUN/env"
    ;;
  kubectl)
    running_env
    exec "$RUN_KUBECTL" --kubeconfig "$RUN_KUBECONFIG" "$@"
    ;;
  load-image)
    running_env
    command -v docker >/dev/null 2>&1 || die "load-image needs the docker CLI and a running Docker engine"
    for image in "$@"; do
      started=$SECONDS
      id="$(docker image inspect -f '{{.Id}}' "$image")" || die "no image $image in the Docker engine"
      import_once "$image" "$id" sh -c 'docker save "$1" | ctr --address "$2" -n k8s.io images import -' \
        load-image "$image" "$SOCK"
      log "$image is in the node ($((SECONDS - started)) s)"
    done
    ;;
  import)
    running_env
    for archive in "$@"; do
      started=$SECONDS
      # Once per content: the archive's image reference and its stamp file (the parts scripts
      # write ARCHIVE.stamp), else its size and time.
      ref="$(tar -xOf "$archive" manifest.json | sed -n 's/.*"RepoTags":\["\([^"]*\)".*/\1/p')"
      [[ -n "$ref" ]] || die "$archive names no image (no RepoTags in its manifest.json)"
      stamp="$(cat "$archive.stamp" 2>/dev/null || stat -L -c "%s %Y" "$archive")"
      import_once "$ref" "$stamp" ctr_ images import "$archive"
      log "$ref is in the node ($((SECONDS - started)) s)"
    done
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
