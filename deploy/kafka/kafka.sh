#!/usr/bin/env bash
# Run a real single-node Apache Kafka (KRaft, no ZooKeeper) from jars that Maven
# resolves from Maven Central: no tarball, no Docker, works where only package
# registries are reachable.
#
#   kafka.sh fetch              resolve the jars into the cache (idempotent)
#   kafka.sh start DIR          start a broker whose state lives in DIR; prints
#                               its bootstrap address (the only line on stdout)
#   kafka.sh stop DIR           SIGTERM, wait up to 30 s, then SIGKILL
#   kafka.sh kill DIR           SIGKILL at once (simulates a crashed broker)
#   kafka.sh topics DIR ARGS... kafka-topics against that broker
#   kafka.sh status DIR         exit 0 (and print the address) if it runs
#   kafka.sh run MAIN ARGS...   any Kafka main class on the cached classpath,
#                               e.g. org.apache.kafka.tools.ConsoleProducer
#
# `start` on a DIR that already holds a broker's state restarts that broker on
# the same ports with the same data, so a test can kill and restart it and its
# clients find it again at the same address.
#
# Environment: MEKONG_KAFKA_VERSION (default 4.4.0), MEKONG_KAFKA_CACHE (cache
# folder, default ~/.cache/mekong/kafka-VERSION), MEKONG_KAFKA_START_TIMEOUT
# (seconds, default 90), MEKONG_KAFKA_HEAP (default 512m),
# MEKONG_KAFKA_AUTO_CREATE_TOPICS (default true; the test suite runs with false, so
# every topic a test finds was created by the hub, with the partitions it asked for).
# MEKONG_KAFKA_SASL_SSL=FILE adds a SASL_SSL listener (SCRAM-SHA-512 over TLS) whose
# certificate chain and unencrypted PKCS#8 key are in FILE (PEM); its address is
# written to DIR/bootstrap-sasl-ssl. MEKONG_KAFKA_SCRAM_USERS="name=password ..."
# are the users it knows (set when the storage is formatted).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION="${MEKONG_KAFKA_VERSION:-4.4.0}"
CACHE="${MEKONG_KAFKA_CACHE:-$HOME/.cache/mekong/kafka-$KAFKA_VERSION}"
LIBS="$CACHE/libs"
MARKER="$CACHE/.complete"
START_TIMEOUT="${MEKONG_KAFKA_START_TIMEOUT:-90}"
HEAP="${MEKONG_KAFKA_HEAP:-512m}"
AUTO_CREATE="${MEKONG_KAFKA_AUTO_CREATE_TOPICS:-true}"
SASL_SSL_PEM="${MEKONG_KAFKA_SASL_SSL:-}"
SCRAM_USERS="${MEKONG_KAFKA_SCRAM_USERS:-}"

log() { echo "kafka.sh: $*" >&2; }
die() { log "$*"; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# ---------------------------------------------------------------- fetch
fetch() {
  [[ -f "$MARKER" ]] && return 0
  command -v mvn >/dev/null || die "mvn not found on PATH"
  mkdir -p "$CACHE"
  # Two `start`s on a cold cache at once must not both write the same folder.
  exec 9>"$CACHE/.lock"
  flock 9
  if [[ -f "$MARKER" ]]; then exec 9>&-; return 0; fi
  log "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
  local tmp="$CACHE/libs.tmp.$$"
  rm -rf "$tmp"
  # Maven's stdout goes to stderr: our stdout is reserved for the bootstrap address.
  # (Maven 3.8 prints colour resets even in batch mode; sed strips them.)
  if ! mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" \
      dependency:copy-dependencies \
      -Dkafka.version="$KAFKA_VERSION" \
      -DincludeScope=runtime \
      -DoutputDirectory="$tmp" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2; then
    rm -rf "$tmp"
    die "mvn could not resolve Kafka $KAFKA_VERSION"
  fi
  ls "$tmp"/kafka_2.13-*.jar "$tmp"/kafka-tools-*.jar >/dev/null 2>&1 \
    || { rm -rf "$tmp"; die "fetch incomplete: no kafka jars in $tmp"; }
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  # The marker is written last: a cache without it is refetched from scratch.
  echo "$KAFKA_VERSION" >"$MARKER"
  exec 9>&-
  log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars"
}

# Run a Kafka main class in the foreground with quiet logging on stderr.
run_tool() {
  local main="$1"; shift
  java -Xmx256m -cp "$LIBS/*" \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
    -Dmekong.log.level=WARN -Dmekong.log.target=SYSTEM_ERR \
    "$main" "$@"
}

# ---------------------------------------------------------------- helpers
state_dir() {
  [[ $# -ge 1 && -n "$1" ]] || usage
  mkdir -p "$1"
  (cd "$1" && pwd)
}

# Three distinct free loopback ports. The sockets are held open together so
# the OS cannot hand out the same port twice.
free_ports() {
  if command -v python3 >/dev/null; then
    python3 - <<'EOF'
import socket
socks = []
for _ in range(3):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
  else
    # Fallback: random high ports that nothing answers on.
    local ports=() p
    while [[ ${#ports[@]} -lt 3 ]]; do
      p=$((20000 + RANDOM % 40000))
      [[ " ${ports[*]:-} " == *" $p "* ]] && continue
      if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then ports+=("$p"); fi
    done
    echo "${ports[*]}"
  fi
}

# Pid of the broker of DIR if that process still runs and is that broker
# (the check on its command line guards against a recycled pid).
broker_pid() {
  local dir="$1" pid
  [[ -f "$dir/broker.pid" ]] || return 1
  pid="$(cat "$dir/broker.pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "kafka.Kafka $dir/server.properties" || return 1
  echo "$pid"
}

# kill -0 also succeeds on a zombie (a broker that died as our own child).
alive() {
  kill -0 "$1" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]]
}

# What `StorageTool random-uuid` prints (16 random bytes, URL-safe base64, no
# padding, not starting with '-'), without paying for a JVM start.
new_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* ]] && break
  done
  echo "$id"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_config() {
  local dir="$1" bport="$2" cport="$3" sport="$4"
  local listeners="PLAINTEXT://127.0.0.1:$bport" protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  if [[ -n "$SASL_SSL_PEM" ]]; then
    listeners="$listeners,SASL_SSL://127.0.0.1:$sport"
    protocols="$protocols,SASL_SSL:SASL_SSL"
  fi
  cat >"$dir/server.properties" <<EOF
# Written by deploy/kafka/kafka.sh: a single-node KRaft broker for dev and tests.
process.roles=broker,controller
node.id=1
listeners=$listeners,CONTROLLER://127.0.0.1:$cport
advertised.listeners=$listeners
listener.security.protocol.map=$protocols
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
# A static voter set: formatting then needs no --standalone.
controller.quorum.voters=1@127.0.0.1:$cport
log.dirs=$dir/data
# One node: every internal topic has one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
# Internal topics default to 50 partitions each, which makes every start and
# restart load ~150 logs; one is plenty on a single dev/test node.
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.num.partitions=1
# A broker restarted after a crash waits until the controller fences its old
# session (default 9 s); a shorter session makes that wait ~4 s.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
# Tests should not wait 3 s for the first consumer group to form.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=$AUTO_CREATE
num.partitions=3
EOF
  if [[ -n "$SASL_SSL_PEM" ]]; then
    cat >>"$dir/server.properties" <<EOF
# SASL_SSL: SCRAM-SHA-512 over TLS, the certificate and key in one PEM file.
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$SASL_SSL_PEM
EOF
  fi
}

# ---------------------------------------------------------------- start
launch() {
  local dir="$1"
  # Keep the previous run's log (e.g. of a crashed broker) as broker.log.1.
  [[ -s "$dir/broker.log" ]] && mv -f "$dir/broker.log" "$dir/broker.log.1"
  : >"$dir/broker.log"
  # setsid: own session, so the caller's shell (and its Ctrl-C) can go away;
  # stdin/stdout/stderr all redirected, so `addr=$(kafka.sh start d)` returns.
  # Descriptors above 2 are closed too: a caller's pipe inherited by the broker
  # would keep that caller waiting. In a non-interactive script the background
  # child is no group leader, so setsid execs java in place and $! is java's pid.
  (
    for fd in "/proc/$BASHPID/fd/"*; do
      fd="${fd##*/}"
      if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec setsid nohup java -Xms"$HEAP" -Xmx"$HEAP" -server -Djava.awt.headless=true \
      -cp "$LIBS/*" \
      -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
      kafka.Kafka "$dir/server.properties" \
      </dev/null >>"$dir/broker.log" 2>&1
  ) &
  echo $! >"$dir/broker.pid"
}

# 0 when up, 1 when the broker died, 2 on time-out.
wait_ready() {
  local dir="$1" bport="$2" pid deadline
  pid="$(cat "$dir/broker.pid")"
  deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    alive "$pid" || return 1
    if grep -q "Kafka Server started" "$dir/broker.log" && port_open "$bport"; then
      return 0
    fi
    sleep 0.2
  done
  return 2
}

start() {
  local dir; dir="$(state_dir "${1:-}")"
  fetch
  command -v java >/dev/null || die "java not found on PATH"
  if broker_pid "$dir" >/dev/null; then
    log "broker already running in $dir"
    cat "$dir/bootstrap"
    return 0
  fi
  local attempt bport cport fresh rc t0=$SECONDS
  for attempt in 1 2 3; do
    if [[ -f "$dir/server.properties" && -f "$dir/bootstrap" ]]; then
      # Restart: same ports and data, so clients reconnect to the same address.
      fresh=0
      bport="$(sed -n 's/^advertised.listeners=PLAINTEXT:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$dir/server.properties")"
      cport="$(sed -n 's/^controller.quorum.voters=1@127.0.0.1://p' "$dir/server.properties")"
    else
      fresh=1
      local sport
      read -r bport cport sport < <(free_ports)
      write_config "$dir" "$bport" "$cport" "$sport"
      mkdir -p "$dir/data"
      log "formatting storage in $dir/data"
      local cluster_id user scram=()
      cluster_id="$(new_cluster_id)"
      for user in $SCRAM_USERS; do
        scram+=(--add-scram "SCRAM-SHA-512=[name=${user%%=*},password=${user#*=}]")
      done
      run_tool kafka.tools.StorageTool format --ignore-formatted \
        -t "$cluster_id" -c "$dir/server.properties" "${scram[@]}" >&2
      if [[ -n "$SASL_SSL_PEM" ]]; then
        echo "127.0.0.1:$sport" >"$dir/bootstrap-sasl-ssl"
      fi
      echo "127.0.0.1:$bport" >"$dir/bootstrap"
    fi
    log "starting Kafka $KAFKA_VERSION in $dir (broker 127.0.0.1:$bport, controller 127.0.0.1:$cport)"
    launch "$dir"
    rc=0; wait_ready "$dir" "$bport" || rc=$?
    if ((rc == 0)); then
      log "broker up in $((SECONDS - t0)) s, pid $(cat "$dir/broker.pid")"
      cat "$dir/bootstrap"
      return 0
    fi
    # Another process may have taken a port between our pick and the bind.
    if ((rc == 1 && fresh)) && grep -q "Address already in use" "$dir/broker.log"; then
      log "port clash, retrying with new ports (attempt $attempt)"
      rm -rf "$dir/data" "$dir/server.properties" "$dir/bootstrap" "$dir/bootstrap-sasl-ssl"
      continue
    fi
    break
  done
  if ((rc == 2)); then
    log "broker not ready after $START_TIMEOUT s; killing it"
    kill -KILL "$(cat "$dir/broker.pid")" 2>/dev/null || true
  else
    log "broker exited during start-up"
  fi
  if ((!fresh)) && grep -q "Address already in use" "$dir/broker.log"; then
    log "a port of this broker (from $dir/server.properties) is taken; remove $dir to start afresh on new ports"
  fi
  # The cause is usually far above the shutdown noise at the end of the log.
  log "errors in $dir/broker.log:"
  grep -E ' (ERROR|FATAL) |^Caused by: ' "$dir/broker.log" | head -n 12 >&2 || true
  log "last lines of $dir/broker.log:"
  tail -n 20 "$dir/broker.log" >&2 || true
  exit 1
}

# ---------------------------------------------------------------- stop / kill
stop() {
  local dir pid; dir="$(state_dir "${1:-}")"
  if ! pid="$(broker_pid "$dir")"; then
    log "no broker running in $dir"
    rm -f "$dir/broker.pid"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local _
  for _ in $(seq 1 150); do
    alive "$pid" || break
    sleep 0.2
  done
  if alive "$pid"; then
    log "broker $pid still up after 30 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.1; done
  fi
  rm -f "$dir/broker.pid"
  log "broker $pid stopped"
}

kill_broker() {
  local dir pid; dir="$(state_dir "${1:-}")"
  if ! pid="$(broker_pid "$dir")"; then
    log "no broker running in $dir"
    return 0
  fi
  kill -KILL "$pid" 2>/dev/null || true
  # Wait until it is gone so the ports are free for a restart.
  while alive "$pid"; do sleep 0.05; done
  rm -f "$dir/broker.pid"
  log "broker $pid killed"
}

# ---------------------------------------------------------------- main
cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  fetch) fetch ;;
  start) start "$@" ;;
  stop) stop "$@" ;;
  kill) kill_broker "$@" ;;
  status)
    dir="$(state_dir "${1:-}")"
    broker_pid "$dir" >/dev/null && cat "$dir/bootstrap"
    ;;
  topics)
    dir="$(state_dir "${1:-}")"; shift
    fetch
    run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(cat "$dir/bootstrap")" "$@"
    ;;
  run)
    [[ $# -ge 1 ]] || usage
    fetch
    run_tool "$@"
    ;;
  *) usage ;;
esac
