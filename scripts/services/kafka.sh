#!/usr/bin/env bash
# Apache Kafka from the Maven Central jars (scripts/services/kafka/pom.xml): one KRaft node in
# combined mode (process.roles=broker,controller, node.id=1), bound to 127.0.0.1.
#   scripts/services/kafka.sh start|stop|status
# Environment: QMTL_KAFKA_PORT (9092, the PLAINTEXT client listener),
#   QMTL_KAFKA_CONTROLLER_PORT (9093), QMTL_KAFKA_START_TIMEOUT (120 seconds),
#   QMTL_KAFKA_AUTO_CREATE_TOPICS (false|true; off so that clients create their topics explicitly
#   and a misspelt topic name fails instead of silently making a new topic).
# The first start copies the jars into .services/kafka/lib (Maven, cached in ~/.m2) and formats
# .services/kafka/data with a cluster id kept in .services/kafka/cluster.id; later starts reuse
# both. Ready means the broker answers a Kafka Metadata request on the client port with itself
# as a live broker and our cluster id, not merely that the port is open.
SVC_NAME=kafka
# shellcheck source=scripts/services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT="${QMTL_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${QMTL_KAFKA_CONTROLLER_PORT:-9093}"
START_TIMEOUT="${QMTL_KAFKA_START_TIMEOUT:-120}"
AUTO_CREATE_TOPICS="${QMTL_KAFKA_AUTO_CREATE_TOPICS:-false}"
for var in PORT CONTROLLER_PORT START_TIMEOUT; do
  case "${!var}" in ''|*[!0-9]*) svc_die "QMTL_KAFKA_$var must be a number (got '${!var}')" ;; esac
done
[ "$PORT" != "$CONTROLLER_PORT" ] || svc_die "QMTL_KAFKA_PORT and QMTL_KAFKA_CONTROLLER_PORT must differ (both $PORT)"
case "$AUTO_CREATE_TOPICS" in true|false) ;; *) svc_die "QMTL_KAFKA_AUTO_CREATE_TOPICS must be true or false (got '$AUTO_CREATE_TOPICS')" ;; esac

POM="$QMTL_ROOT/scripts/services/kafka/pom.xml"
LIB="$SVC_DIR/lib"
CLUSTER_ID_FILE="$SVC_DIR/cluster.id"
SERVER_PROPERTIES="$SVC_DIR/server.properties"
LOG4J_CONFIG="$SVC_DIR/log4j2.properties"
FORMAT_LOG="$SVC_DIR/format.log"

# The Kafka version of the resolved jars, else the one the pom pins.
kafka_version() {
  local jar
  for jar in "$LIB"/kafka_2.13-*.jar; do
    [ -e "$jar" ] || break
    jar="${jar##*/kafka_2.13-}"
    echo "${jar%.jar}"
    return
  done
  sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM"
}

# Kafka 4 brokers need Java 17+.
kafka_java() {
  local java major
  java="$(svc_java)"
  major="$("$java" -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p')"
  if [ -z "$major" ] || [ "$major" -lt 17 ]; then
    svc_die "Kafka $(kafka_version) needs Java 17 or newer; $java is '${major:-unknown}': set QMTL_JAVA_HOME"
  fi
  echo "$java"
}

# kafka_metadata: sends a Metadata v4 request (no topics) to the client listener and prints
# "<live broker count> <cluster id>" from the answer. v4 is the newest non-flexible version that
# carries the cluster id, so plain bytes suffice; Kafka 4.4 serves Metadata v0-v13. Fails when
# nothing answers within a few seconds or the answer is not a Metadata response.
kafka_metadata() (
  local size i n len c oct escaped="" cluster_id=""
  local -a b
  exec 2>/dev/null 3<>"/dev/tcp/$SVC_HOST/$PORT" || exit 1
  # size 19 | api_key 3 | api_version 4 | correlation id "QMTL" | client id "qmtl"
  # | topics: empty array | allow_auto_topic_creation: false
  printf '\x00\x00\x00\x13\x00\x03\x00\x04QMTL\x00\x04qmtl\x00\x00\x00\x00\x00' >&3 2>/dev/null || exit 1
  read -r -d '' -a b < <(timeout 5 head -c 4 <&3 | od -An -v -tu1) || true
  [ "${#b[@]}" -eq 4 ] || exit 1
  size=$(((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]))
  [ "$size" -ge 16 ] && [ "$size" -le 1048576 ] || exit 1
  read -r -d '' -a b < <(timeout 5 head -c "$size" <&3 | od -An -v -tu1) || true
  [ "${#b[@]}" -eq "$size" ] || exit 1
  # correlation id | throttle_time_ms | brokers [node_id, host, port, rack] | cluster_id | ...
  [ "${b[*]:0:4}" = "81 77 84 76" ] || exit 1
  n=$(((b[8] << 24) | (b[9] << 16) | (b[10] << 8) | b[11]))
  i=12
  for ((c = 0; c < n; c++)); do
    i=$((i + 4))                                   # node_id
    i=$((i + 2 + ((b[i] << 8) | b[i + 1])))        # host
    i=$((i + 4))                                   # port
    len=$(((b[i] << 8) | b[i + 1]))                # rack, 0xffff when null
    i=$((i + 2)); [ "$len" -ge 32768 ] || i=$((i + len))
    [ "$i" -lt "$size" ] || exit 1
  done
  len=$(((b[i] << 8) | b[i + 1]))                  # cluster_id, 0xffff when null
  if [ "$len" -lt 32768 ]; then
    for c in "${b[@]:i+2:len}"; do printf -v oct '%03o' "$c"; escaped+="\\0$oct"; done
    printf -v cluster_id '%b' "$escaped"
  fi
  echo "$n ${cluster_id:--}"
)

# Ready: our node is a live broker and the answer carries the cluster id we formatted with.
kafka_ready() {
  local answer
  answer="$(kafka_metadata)" || return 1
  [ "${answer%% *}" -ge 1 ] && [ "${answer#* }" = "$(cat "$CLUSTER_ID_FILE" 2>/dev/null)" ]
}

write_config() {
  cat >"$LOG4J_CONFIG" <<CONF
# Written by scripts/services/kafka.sh on every start; edit the script, not this file.
status = warn
# Keep logging until the JVM exits, so that Kafka's own shutdown hook can report a clean stop.
shutdownHook = disable
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.zookeeper.name = org.apache.zookeeper
logger.zookeeper.level = WARN
CONF
  cat >"$SERVER_PROPERTIES" <<CONF
# Written by scripts/services/kafka.sh on every start; edit the script, not this file.
# One KRaft node that is both broker and controller, with a static one-voter quorum.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$SVC_HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$SVC_HOST:$PORT,CONTROLLER://$SVC_HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$SVC_HOST:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$SVC_DATA
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=$AUTO_CREATE_TOPICS
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.recovery.threads.per.data.dir=1
log.retention.hours=168
CONF
}

# Formats the data dir once. The cluster id is generated on the first start and kept in
# cluster.id; a data dir that is already formatted is never formatted again.
ensure_formatted() {
  local java="$1" meta="$SVC_DATA/meta.properties" cluster_id
  if [ -f "$meta" ]; then
    cluster_id="$(sed -n 's/^cluster\.id=//p' "$meta")"
    [ -n "$cluster_id" ] || svc_die "$meta has no cluster.id; move ${SVC_DATA#"$QMTL_ROOT"/} away to start afresh"
    if [ -s "$CLUSTER_ID_FILE" ] && [ "$(cat "$CLUSTER_ID_FILE")" != "$cluster_id" ]; then
      svc_die "cluster id in ${CLUSTER_ID_FILE#"$QMTL_ROOT"/} ($(cat "$CLUSTER_ID_FILE")) differs from the formatted data ($cluster_id)"
    fi
    echo "$cluster_id" >"$CLUSTER_ID_FILE"
    return 0
  fi
  if [ -s "$CLUSTER_ID_FILE" ]; then
    cluster_id="$(cat "$CLUSTER_ID_FILE")"
  else
    cluster_id="$("$java" -Xmx128m -Dlog4j2.configurationFile="$LOG4J_CONFIG" -cp "$LIB/*" kafka.tools.StorageTool random-uuid 2>"$FORMAT_LOG" | tail -n 1)" \
      || svc_die "could not generate a cluster id: $(cat "$FORMAT_LOG")"
    [ -n "$cluster_id" ] || svc_die "could not generate a cluster id: $(cat "$FORMAT_LOG")"
    echo "$cluster_id" >"$CLUSTER_ID_FILE"
  fi
  svc_say "formatting ${SVC_DATA#"$QMTL_ROOT"/} with cluster id $cluster_id (first start only)"
  if ! "$java" -Xmx256m -Dlog4j2.configurationFile="$LOG4J_CONFIG" -cp "$LIB/*" kafka.tools.StorageTool \
      format --config "$SERVER_PROPERTIES" --cluster-id "$cluster_id" >"$FORMAT_LOG" 2>&1; then
    sed 's/^/    /' "$FORMAT_LOG" >&2
    svc_die "formatting the storage failed"
  fi
}

start() {
  local java pid
  java="$(kafka_java)"
  svc_prepare
  if pid="$(svc_pid)"; then
    if kafka_ready; then
      svc_say "already running on $SVC_HOST:$PORT"
      return 0
    fi
    svc_say "already started (pid $pid) but not answering yet; waiting up to ${START_TIMEOUT}s"
    svc_wait_ready "$START_TIMEOUT" kafka_ready
    svc_say "ready"
    return 0
  fi
  svc_require_free_port "$PORT"
  svc_require_free_port "$CONTROLLER_PORT"
  svc_resolve_maven "$POM" "$LIB"
  write_config
  ensure_formatted "$java"
  svc_say "starting Kafka $(kafka_version) (KRaft broker+controller) on $SVC_HOST:$PORT, controller on $SVC_HOST:$CONTROLLER_PORT"
  svc_spawn "$java" -Xms256m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J_CONFIG" -cp "$LIB/*" kafka.Kafka "$SERVER_PROPERTIES"
  svc_wait_ready "$START_TIMEOUT" kafka_ready
  svc_say "ready (cluster id $(cat "$CLUSTER_ID_FILE"))"
}

status() {
  local state=stopped
  if svc_pid >/dev/null; then
    if kafka_ready; then state=running; else state="not answering"; fi
  fi
  svc_status_row "$(kafka_version)" "$SVC_HOST:$PORT" "$state"
}

case "${1:-}" in
  start) start ;;
  stop) svc_stop 60 ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
