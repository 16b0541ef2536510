#!/usr/bin/env bash
# buf breaking: the schemas in the work tree against those of a git ref (default: main).
#   scripts/breaking.sh [REF]
# The ref's tree is exported to a temporary workspace and given the same vendored google/api
# protos (.tools/proto-deps is not in git), then compared with the FILE rules of buf.yaml,
# which protect both the binary and the JSON wire.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REF="${1:-main}"
BUF=.tools/bin/buf

# A clone may hold main only as origin/main (e.g. a detached checkout in CI).
if ! git rev-parse --verify --quiet "$REF^{commit}" >/dev/null; then
  if git rev-parse --verify --quiet "origin/$REF^{commit}" >/dev/null; then
    REF="origin/$REF"
  else
    echo "breaking: neither '$REF' nor 'origin/$REF' is a git ref here; set AGAINST=<git ref>" >&2
    exit 2
  fi
fi
if ! git cat-file -e "$REF:buf.yaml" 2>/dev/null || ! git cat-file -e "$REF:schemas" 2>/dev/null; then
  echo "breaking: $REF has no buf workspace yet; nothing to compare against"
  exit 0
fi

against="$(mktemp -d)"
trap 'rm -rf "$against"' EXIT
git archive "$REF" buf.yaml schemas | tar -x -C "$against"
mkdir -p "$against/.tools"
cp -r .tools/proto-deps "$against/.tools/"

echo "breaking: schemas/ against $REF ($(git rev-parse --short "$REF"))"
# Imports (google/api, well-known types) are not ours to keep compatible. buf's text format
# leaves out the rule id that docs/schemas/VERSIONING.md tells readers to look for, so the
# JSON lines are reprinted as `file:line:col: message (RULE_ID)`; anything else buf prints
# (a build failure on stderr) passes through unchanged.
status=0
"$BUF" breaking --against "$against" --exclude-imports --error-format json >"$against/report" || status=$?
.venv/bin/python - "$against/report" "$REF" "$status" <<'PY'
import json
import sys

report, ref, status = sys.argv[1], sys.argv[2], int(sys.argv[3])
rules = compile_errors = 0
for line in open(report, encoding="utf-8"):
    try:
        v = json.loads(line)
    except ValueError:
        v = None
    if isinstance(v, dict) and "type" in v:
        where = f"{v.get('path', '?')}:{v.get('start_line', 0)}:{v.get('start_column', 0)}"
        print(f"{where}: {v.get('message', '')} ({v['type']})")
        if v["type"] == "COMPILE":
            compile_errors += 1
        else:
            rules += 1
    else:
        print(line, end="")
if compile_errors:
    print(f"breaking: the schemas do not compile ({compile_errors} error(s))", file=sys.stderr)
elif rules:
    print(f"breaking: {rules} breaking change(s) against {ref}", file=sys.stderr)
elif status:
    print(f"breaking: buf breaking failed (exit {status}) before comparing", file=sys.stderr)
PY
[ "$status" -eq 0 ] || exit "$status"
echo "breaking: no breaking change against $REF"
