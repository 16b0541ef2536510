# Shared helpers for the scripts under scripts/services/. Sourced, never run.
# Each service script defines SVC_NAME before sourcing this file and then uses
# svc_* helpers so that every service behaves alike: data and logs live under
# .services/<name>/, everything binds to 127.0.0.1, start is idempotent, and a
# server that does not come up is reported with the tail of its log.
set -euo pipefail

QMTL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SVC_HOST=127.0.0.1
# QMTL_SERVICES_DIR moves every data/log dir, e.g. for a private server in a test.
SVC_DIR="${QMTL_SERVICES_DIR:-$QMTL_ROOT/.services}/$SVC_NAME"
SVC_DATA="$SVC_DIR/data"
SVC_LOG="$SVC_DIR/server.log"
SVC_PIDFILE="$SVC_DIR/server.pid"

svc_say() { printf '[%s] %s\n' "$SVC_NAME" "$*"; }
svc_die() { printf '[%s] error: %s\n' "$SVC_NAME" "$*" >&2; exit 1; }

svc_prepare() { mkdir -p "$SVC_DIR" "$SVC_DATA"; }

# Java for the JVM-based servers: honour JAVA_HOME, else the machine's Java 17.
svc_java() {
  if [ -n "${QMTL_JAVA_HOME:-}" ]; then echo "$QMTL_JAVA_HOME/bin/java"; return; fi
  local candidate
  for candidate in "${JAVA_HOME:-}" /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-arm64; do
    if [ -n "$candidate" ] && [ -x "$candidate/bin/java" ]; then echo "$candidate/bin/java"; return; fi
  done
  command -v java || svc_die "no Java found: install openjdk-17-jdk-headless or set QMTL_JAVA_HOME"
}

# The PID recorded at start, printed only while that process is alive. A zombie (killed, not
# yet reaped by init) counts as dead, so that `status` says stopped right after a kill -9.
svc_pid() {
  [ -f "$SVC_PIDFILE" ] || return 1
  local pid
  pid="$(cat "$SVC_PIDFILE")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && ! svc_is_zombie "$pid"; then echo "$pid"; return 0; fi
  return 1
}

# True when PID has exited but is not reaped yet: its main thread is a zombie (the state is the
# first field after the ")" closing the command name) and no other thread is still exiting
# (those may still hold its listening sockets).
svc_is_zombie() {
  local stat tasks
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [ "${stat%% *}" = Z ] || return 1
  tasks=(/proc/"$1"/task/*)
  [ "${#tasks[@]}" -le 1 ]
}

svc_port_open() { (exec 3<>"/dev/tcp/$SVC_HOST/$1") 2>/dev/null; }

# Fails when something that is not our recorded server already holds the port.
svc_require_free_port() {
  local port="$1"
  if svc_port_open "$port"; then
    svc_die "port $SVC_HOST:$port is already in use by another process; set the port variable to move ${SVC_NAME}"
  fi
}

# svc_wait_ready DEADLINE_SECONDS CHECK_COMMAND...
# Polls CHECK_COMMAND until it succeeds; gives up when the server process dies
# or the deadline passes, printing the tail of the server log either way.
svc_wait_ready() {
  local deadline="$1"; shift
  local start now
  start="$(date +%s)"
  while true; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! svc_pid >/dev/null; then
      svc_fail_with_log "server process exited during start-up"
    fi
    now="$(date +%s)"
    if [ $((now - start)) -ge "$deadline" ]; then
      svc_fail_with_log "not ready after ${deadline}s"
    fi
    sleep 0.5
  done
}

svc_fail_with_log() {
  printf '[%s] error: %s; last lines of %s:\n' "$SVC_NAME" "$1" "$SVC_LOG" >&2
  tail -n 40 "$SVC_LOG" 2>/dev/null | sed 's/^/    /' >&2 || true
  exit 1
}

# Starts "$@" in the background, detached from this shell, logging to SVC_LOG.
svc_spawn() {
  : >"$SVC_LOG"
  nohup setsid "$@" >>"$SVC_LOG" 2>&1 </dev/null &
  echo $! >"$SVC_PIDFILE"
}

# svc_stop [GRACE_SECONDS]: TERM, wait, then KILL the recorded process group.
svc_stop() {
  local grace="${1:-30}" pid waited=0
  if ! pid="$(svc_pid)"; then
    rm -f "$SVC_PIDFILE"
    svc_say "not running"
    return 0
  fi
  svc_say "stopping (pid $pid)"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && ! svc_is_zombie "$pid"; do
    if [ "$waited" -ge $((grace * 2)) ]; then
      svc_say "still running after ${grace}s, sending KILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  rm -f "$SVC_PIDFILE"
  svc_say "stopped"
}

# One tab-separated status row: service, version, address, data dir, state.
# Exit status 0 when the server answers, 3 when it does not (as LSB status).
svc_status_row() {
  local version="$1" address="$2" state="$3"
  printf '%s\t%s\t%s\t%s\t%s\n' "$SVC_NAME" "$version" "$address" "${SVC_DATA#"$QMTL_ROOT"/}" "$state"
  case "$state" in running*) return 0 ;; *) return 3 ;; esac
}

# Maven resolution of a small pom into a lib dir, skipped when the pom is unchanged.
svc_resolve_maven() {
  local pom="$1" lib="$2" stamp want
  stamp="$lib/.pom.sha256"
  want="$(sha256sum "$pom" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  command -v mvn >/dev/null || svc_die "Maven (mvn) is required to fetch the ${SVC_NAME} jars; install the 'maven' package"
  svc_say "resolving jars with Maven into ${lib#"$QMTL_ROOT"/} (first run only; cached in ~/.m2)"
  rm -rf "$lib"
  mkdir -p "$lib"
  mvn -B -q -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$lib" \
    || svc_die "Maven could not resolve $pom"
  echo "$want" >"$stamp"
}
