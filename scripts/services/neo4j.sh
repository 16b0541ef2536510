#!/usr/bin/env bash
# Neo4j 5 Community (LTS 5.26, jars from Maven Central) run embedded by a small Java launcher
# that exposes Bolt on 127.0.0.1 with authentication on.
#   scripts/services/neo4j.sh start|stop|status
# Environment: QMTL_NEO4J_BOLT_PORT (7687), QMTL_NEO4J_USER (neo4j; the only user, not renameable),
# QMTL_NEO4J_PASSWORD (qmtl-dev-password; 8+ characters, applied on every start),
# QMTL_NEO4J_START_TIMEOUT (180 seconds), QMTL_NEO4J_PAGECACHE_MB (256).
# The version is pinned in scripts/services/neo4j/pom.xml; the first start resolves the jars into
# .services/neo4j/lib with Maven. Neo4j's home is .services/neo4j/data (databases under data/,
# Neo4j's debug.log under logs/); the launcher's output is .services/neo4j/server.log.
SVC_NAME=neo4j
# shellcheck source=scripts/services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT="${QMTL_NEO4J_BOLT_PORT:-7687}"
NEO4J_USER="${QMTL_NEO4J_USER:-neo4j}"
export QMTL_NEO4J_PASSWORD="${QMTL_NEO4J_PASSWORD:-qmtl-dev-password}"
START_TIMEOUT="${QMTL_NEO4J_START_TIMEOUT:-180}"
POM="$QMTL_ROOT/scripts/services/neo4j/pom.xml"
LAUNCHER="$QMTL_ROOT/scripts/services/neo4j/Neo4jLauncher.java"
LIB="$SVC_DIR/lib"
PORTFILE="$SVC_DIR/server.port"
# Modest memory (the machine also runs Kafka); the page cache is set by the launcher.
# The --add-opens flags are those of Neo4j's own neo4j.conf: without them the page cache falls
# back to a slower mode and transaction-log fadvise calls fail with warnings.
JVM_OPTS=(
  -Xms256m -Xmx1g
  -XX:+UseG1GC -XX:-OmitStackTraceInFastThrow
  -Djdk.nio.maxCachedBufferSize=1024 -Dio.netty.tryReflectionSetAccessible=true
  -Dlog4j2.disable.jmx=true
  --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-opens=java.base/java.io=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
)

[ "$NEO4J_USER" = neo4j ] || svc_die "QMTL_NEO4J_USER must be 'neo4j' (Community edition's built-in user; got '$NEO4J_USER')"
[ "${#QMTL_NEO4J_PASSWORD}" -ge 8 ] || svc_die "QMTL_NEO4J_PASSWORD must have at least 8 characters (Neo4j 5 minimum)"
case "$PORT" in ''|*[!0-9]*) svc_die "QMTL_NEO4J_BOLT_PORT must be a port number (got '$PORT')" ;; esac
case "${QMTL_NEO4J_PAGECACHE_MB:-256}" in ''|*[!0-9]*) svc_die "QMTL_NEO4J_PAGECACHE_MB must be a number of MiB (got '$QMTL_NEO4J_PAGECACHE_MB')" ;; esac

# A real Bolt handshake: magic 0x6060B017, then offers 5.0-5.4 and 4.4; any version back means Bolt.
neo4j_bolt_handshake() {
  # shellcheck disable=SC2016  # $0 and $1 belong to the inner bash
  timeout 5 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "\x60\x60\xb0\x17\x00\x04\x04\x05\x00\x00\x04\x04\x00\x00\x00\x00\x00\x00\x00\x00" >&3
    reply="$(head -c 4 <&3 | od -An -tx1 | tr -d " \n")"
    [ "${#reply}" -eq 8 ] && [ "$reply" != 00000000 ]
  ' "$SVC_HOST" "$PORT" 2>/dev/null
}

# Ready = Bolt answers and the launcher has applied the password (it prints the line after that).
neo4j_ready() {
  neo4j_bolt_handshake && grep -aq '^QMTL neo4j ready' "$SVC_LOG"
}

neo4j_version() {
  local jar
  for jar in "$LIB"/neo4j-[0-9]*.jar; do
    if [ -f "$jar" ]; then jar="${jar##*/neo4j-}"; echo "${jar%.jar}"; return; fi
  done
  sed -n 's:.*<neo4j.version>\(.*\)</neo4j.version>.*:\1:p' "$POM"
}

start() {
  svc_prepare
  if svc_pid >/dev/null; then
    local running_port
    running_port="$(cat "$PORTFILE" 2>/dev/null || true)"
    if [ -n "$running_port" ] && [ "$running_port" != "$PORT" ]; then
      svc_die "already running with Bolt on port $running_port (pid $(svc_pid)); run 'stop' before moving it to $PORT"
    fi
    if neo4j_ready; then
      svc_say "already running on bolt://$SVC_HOST:$PORT"
      return 0
    fi
    # Our recorded server is alive but not (yet) answering, e.g. a start still in progress.
    svc_say "server process $(svc_pid) is running but not answering yet; waiting up to ${START_TIMEOUT}s"
    svc_wait_ready "$START_TIMEOUT" neo4j_ready
    svc_say "ready"
    return 0
  fi
  svc_require_free_port "$PORT"
  svc_resolve_maven "$POM" "$LIB"
  local java
  java="$(svc_java)"
  svc_say "starting Neo4j $(neo4j_version) Community (embedded, $("$java" -version 2>&1 | head -n 1)) on bolt://$SVC_HOST:$PORT"
  # A process killed with -9 leaves store_lock files behind, but Neo4j locks them with OS file
  # locks that die with the process, so the next start simply recovers from the transaction logs.
  echo "$PORT" >"$PORTFILE"
  svc_spawn "$java" "${JVM_OPTS[@]}" -cp "$LIB/*" "$LAUNCHER" "$SVC_DATA" "$PORT"
  svc_wait_ready "$START_TIMEOUT" neo4j_ready
  svc_say "ready ($(grep -a '^QMTL neo4j ready' "$SVC_LOG" | head -n 1 | sed 's/^QMTL neo4j ready //'))"
}

status() {
  local state=stopped
  if svc_pid >/dev/null; then
    if neo4j_bolt_handshake; then state=running; else state="not answering"; fi
  fi
  svc_status_row "$(neo4j_version)" "bolt://$SVC_HOST:$PORT" "$state"
}

case "${1:-}" in
  start) start ;;
  stop) svc_stop 60 ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
