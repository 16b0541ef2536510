#!/usr/bin/env bash
# Starts, stops or reports every real backing service of QMTL NextGen.
#   scripts/services/all.sh up|down|status [service...]
# Services: redis, kafka, neo4j (all on 127.0.0.1; see each script for its port variables).
# `status` exits 0 only when every listed service answers.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ALL_SERVICES=(redis kafka neo4j)

action="${1:-}"
shift || true
services=("$@")
[ "${#services[@]}" -gt 0 ] || services=("${ALL_SERVICES[@]}")

table() {
  local rows="" row rc=0
  for svc in "${services[@]}"; do
    row="$("$HERE/$svc.sh" status)" || rc=1
    rows+="$row"$'\n'
  done
  { printf 'SERVICE\tVERSION\tADDRESS\tDATA DIR\tSTATE\n'; printf '%s' "$rows"; } | column -t -s $'\t'
  return "$rc"
}

case "$action" in
  up)
    for svc in "${services[@]}"; do "$HERE/$svc.sh" start; done
    table
    ;;
  down)
    # Reverse order: the servers that others may lean on stop last.
    for ((i = ${#services[@]} - 1; i >= 0; i--)); do "$HERE/${services[$i]}.sh" stop; done
    table || true
    ;;
  status) table ;;
  *) echo "usage: $0 up|down|status [redis|kafka|neo4j ...]" >&2; exit 2 ;;
esac
