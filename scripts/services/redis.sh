#!/usr/bin/env bash
# Redis from Debian's redis-server package, bound to 127.0.0.1 with AOF persistence.
#   scripts/services/redis.sh start|stop|status
# Environment: QMTL_REDIS_PORT (6379), QMTL_REDIS_APPENDFSYNC (everysec|always|no).
SVC_NAME=redis
# shellcheck source=scripts/services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT="${QMTL_REDIS_PORT:-6379}"
APPENDFSYNC="${QMTL_REDIS_APPENDFSYNC:-everysec}"
case "$APPENDFSYNC" in everysec|always|no) ;; *) svc_die "QMTL_REDIS_APPENDFSYNC must be everysec, always or no (got '$APPENDFSYNC')" ;; esac

redis_bin() {
  command -v redis-server >/dev/null || svc_die "redis-server not found: run 'make setup' (installs Debian's redis-server package)"
}

redis_ping() { redis-cli -h "$SVC_HOST" -p "$PORT" ping | grep -q PONG; }

redis_version() { redis-server --version 2>/dev/null | sed -n 's/.*v=\([0-9.]*\).*/\1/p'; }

write_config() {
  cat >"$SVC_DIR/redis.conf" <<CONF
# Written by scripts/services/redis.sh on every start; edit the script, not this file.
bind $SVC_HOST
port $PORT
protected-mode yes
daemonize no
dir $SVC_DATA
appendonly yes
appendfilename "appendonly.aof"
appenddirname "appendonlydir"
appendfsync $APPENDFSYNC
save 900 1 300 10 60 10000
dbfilename dump.rdb
logfile ""
CONF
}

start() {
  redis_bin
  svc_prepare
  if svc_pid >/dev/null && redis_ping; then
    svc_say "already running on $SVC_HOST:$PORT"
    return 0
  fi
  svc_require_free_port "$PORT"
  write_config
  svc_say "starting redis-server $(redis_version) on $SVC_HOST:$PORT (appendfsync $APPENDFSYNC)"
  svc_spawn redis-server "$SVC_DIR/redis.conf"
  svc_wait_ready "${QMTL_REDIS_START_TIMEOUT:-30}" redis_ping
  svc_say "ready"
}

status() {
  local state=stopped
  if svc_pid >/dev/null; then
    if redis_ping; then state=running; else state="not answering"; fi
  fi
  svc_status_row "$(redis_version)" "redis://$SVC_HOST:$PORT" "$state"
}

case "${1:-}" in
  start) start ;;
  stop) svc_stop 20 ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
