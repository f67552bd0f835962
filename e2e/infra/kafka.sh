#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft, one node that is both broker and controller) for the test
# suites, built from Maven Central and cached outside the repository.
#
#   kafka.sh [install]      resolve the broker's jars once; the last stdout line is KAFKA_HOME
#   kafka.sh run DIR [--scram 'SCRAM-SHA-256=[name=u,password=p]']...
#                           run a broker from DIR/server.properties (written by the caller, with
#                           log.dirs=DIR/logs) in the foreground; `exec`s java, so the caller's
#                           child pid is the JVM's and it stops the broker by that pid
#
# Why it looks like this: there is no Docker and no Kafka tarball here, but Maven Central is
# reachable, so a throw-away pom resolves kafka_2.13 and a logging binding into a classpath.
# Start-up time matters (every test file starts its own broker), hence:
#   - a formatted, empty log directory is kept as a template and copied (formatting runs a JVM);
#     brokers with SCRAM users are formatted per start, since the users live in the bootstrap
#     metadata;
#   - the JVM runs with C1 only (-XX:TieredStopAtLevel=1) and an application class-data archive
#     recorded once at install, which together cut start-up from ~6 s to 1-2 s;
#   - a small heap (KAFKA_HEAP, default -Xmx256m).
# Idempotent: a complete install is marked by a file and reused; concurrent callers serialize on
# a lock. Progress goes to stderr.
#
#   EDFS_CACHE      cache root (default ~/.cache/edfs); the broker lands in $EDFS_CACHE/kafka/<version>
#   KAFKA_VERSION   kafka_2.13 version (default 3.9.2; 3.9.x speaks every protocol version kafkajs uses)
#   KAFKA_HEAP      JVM heap flags (default "-Xms32m -Xmx256m")
set -euo pipefail

CACHE="${EDFS_CACHE:-$HOME/.cache/edfs}"
VERSION="${KAFKA_VERSION:-3.9.2}"
HOME_DIR="$CACHE/kafka/$VERSION"
HEAP="${KAFKA_HEAP:--Xms32m -Xmx256m}"
JVM_FLAGS=(-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:-UsePerfData -Djava.awt.headless=true)

log() { echo "kafka.sh: $*" >&2; }

need() {
  command -v "$1" >/dev/null 2>&1 || {
    log "$1 not found; $2"
    exit 1
  }
}

# The properties of a plain single-node KRaft broker: $1 client port, $2 controller port, $3 log dir.
broker_properties() {
  cat <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$2
listeners=PLAINTEXT://127.0.0.1:$1,CONTROLLER://127.0.0.1:$2
advertised.listeners=PLAINTEXT://127.0.0.1:$1
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$3
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
EOF
}

install() {
  if [[ -f "$HOME_DIR/.complete" ]]; then
    echo "$HOME_DIR"
    return
  fi
  need java "install a JDK 17 (apt-get install -y openjdk-17-jre-headless)"
  need mvn "install Maven (apt-get install -y maven)"
  mkdir -p "$HOME_DIR"
  exec 9>"$HOME_DIR/.lock"
  flock 9
  if [[ -f "$HOME_DIR/.complete" ]]; then
    echo "$HOME_DIR"
    return
  fi
  local started=$SECONDS
  log "resolving org.apache.kafka:kafka_2.13:$VERSION from Maven Central into $HOME_DIR (first run only)"
  cat >"$HOME_DIR/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.edfs</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
  </dependencies>
</project>
EOF
  rm -rf "$HOME_DIR/libs"
  mvn -q -B -f "$HOME_DIR/pom.xml" -Dmaven.repo.local="$CACHE/kafka/m2" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$HOME_DIR/libs" >&2
  log "jars ready ($(ls "$HOME_DIR/libs" | wc -l) files, $((SECONDS - started)) s)"

  cat >"$HOME_DIR/log4j.properties" <<'EOF'
# Warnings and errors only, plus the line that says the broker is up.
log4j.rootLogger=WARN, stdout
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF

  log "formatting the template log directory"
  local tmp port cport
  tmp="$(mktemp -d)"
  port="$(free_port)"
  cport="$(free_port)"
  broker_properties "$port" "$cport" "$HOME_DIR/template" >"$tmp/server.properties"
  rm -rf "$HOME_DIR/template"
  java -cp "$HOME_DIR/libs/*" -Dlog4j.configuration="file:$HOME_DIR/log4j.properties" \
    kafka.tools.StorageTool format -t "$(cluster_id)" \
    -c "$tmp/server.properties" >&2

  # One short run records the classes a broker loads into a CDS archive; later JVMs map it.
  log "recording the class-data archive (one broker start, a few seconds)"
  broker_properties "$port" "$cport" "$tmp/logs" >"$tmp/server.properties"
  cp -r "$HOME_DIR/template" "$tmp/logs"
  # shellcheck disable=SC2086
  java $HEAP "${JVM_FLAGS[@]}" -XX:ArchiveClassesAtExit="$HOME_DIR/kafka.jsa.tmp" \
    -Dlog4j.configuration="file:$HOME_DIR/log4j.properties" -cp "$HOME_DIR/libs/*" \
    kafka.Kafka "$tmp/server.properties" >"$tmp/out.log" 2>&1 &
  local pid=$!
  local i
  for ((i = 0; i < 600; i++)); do
    grep -q "Kafka Server started" "$tmp/out.log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || true
  if [[ -s "$HOME_DIR/kafka.jsa.tmp" ]]; then
    mv "$HOME_DIR/kafka.jsa.tmp" "$HOME_DIR/kafka.jsa"
  else
    log "no class-data archive recorded (brokers start a little slower); broker output:"
    tail -20 "$tmp/out.log" >&2 || true
  fi
  rm -rf "$tmp"
  touch "$HOME_DIR/.complete"
  log "Kafka $VERSION installed in $((SECONDS - started)) s"
  echo "$HOME_DIR"
}

# A random cluster id as `kafka-storage random-uuid` prints it (base64url of 16 bytes), without a
# JVM. Like Kafka's own Uuid.randomUuid, never one starting with "-": kafka-storage would read it as
# an option ("argument --cluster-id: expected one argument").
cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* ]] && break
  done
  printf '%s' "$id"
}

free_port() {
  node -e "const s = require('net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); })"
}

run() {
  local dir="${1:?usage: kafka.sh run DIR [--scram SPEC]...}"
  shift
  local scram=()
  while (($#)); do
    case "$1" in
      --scram)
        scram+=(--add-scram "${2:?--scram needs a value}")
        shift 2
        ;;
      *)
        log "unknown argument $1"
        exit 2
        ;;
    esac
  done
  [[ -f "$dir/server.properties" ]] || {
    log "$dir/server.properties is missing"
    exit 2
  }
  local home
  home="$(install | tail -1)"
  local logs="$dir/logs"
  if [[ ! -f "$logs/meta.properties" ]]; then
    if ((${#scram[@]})); then
      # SCRAM credentials are bootstrap metadata records: they need a real format.
      java -cp "$home/libs/*" -Dlog4j.configuration="file:$home/log4j.properties" \
        kafka.tools.StorageTool format -t "$(cluster_id)" \
        -c "$dir/server.properties" "${scram[@]}" >&2
    else
      mkdir -p "$(dirname "$logs")"
      cp -r "$home/template" "$logs"
    fi
  fi
  local cds=()
  [[ -f "$home/kafka.jsa" ]] && cds=(-XX:SharedArchiveFile="$home/kafka.jsa" -Xlog:cds=off -Xlog:cds+dynamic=off)
  # shellcheck disable=SC2086
  exec java $HEAP "${JVM_FLAGS[@]}" "${cds[@]}" -Dlog4j.configuration="file:$home/log4j.properties" \
    -cp "$home/libs/*" kafka.Kafka "$dir/server.properties"
}

case "${1:-install}" in
  install) install ;;
  cluster-id)
    # N fresh cluster ids, one per line (for checking them without a broker).
    for ((i = 0; i < ${2:-1}; i++)); do
      cluster_id
      echo
    done
    ;;
  run)
    shift
    run "$@"
    ;;
  *)
    log "usage: kafka.sh [install] | kafka.sh run DIR [--scram SPEC]... | kafka.sh cluster-id [N]"
    exit 2
    ;;
esac
