#!/usr/bin/env bash
# Breaking-change check of the schemas in the work tree:
#   scripts/breaking.sh          against the latest published baseline, schemas/releases/*.binpb
#   scripts/breaking.sh REF      against the schemas of a git ref (AGAINST=<git ref>)
# Two passes, one report: `buf breaking` with the FILE rules of buf.yaml (binary and JSON wire),
# then qmtl_codegen.contract_checks for what buf cannot see (HTTP routes, access rules,
# error_info, newly REQUIRED fields, event type strings), both printed as
# `file:line:col: message (RULE_ID)`; exit 100 on any breaking change, as buf does.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REF="${1:-}"
BUF="$PWD/.tools/bin/buf"
PY=.venv/bin/python

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ -z "$REF" ]; then
  baseline="$("$PY" -m qmtl_codegen.breaking_report latest schemas/releases)"
  if [ -z "$baseline" ]; then
    echo "breaking: NO BASELINE: schemas/releases/ holds no published release yet, so there is"
    echo "breaking: nothing to compare against and nothing was checked."
    echo "breaking: publish the first one with: make release-schemas VERSION=1.0.0"
    exit 0
  fi
  label="baseline $(basename "$baseline" .binpb)"
  against_image="$baseline"
  echo "breaking: schemas/ against the latest baseline, $baseline"
  # A baseline image holds the schemas module alone, so the input is that module too.
  status=0
  "$BUF" breaking schemas --against "$baseline" --exclude-imports --error-format json \
    >"$work/report" || status=$?
else
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
  # The ref's tree is exported with the same vendored google/api protos (.tools/proto-deps is
  # not in git).
  against="$work/ref"
  mkdir -p "$against/.tools"
  git archive "$REF" buf.yaml schemas | tar -x -C "$against"
  cp -r .tools/proto-deps "$against/.tools/"
  label="$REF"
  against_image="$work/ref.binpb"
  echo "breaking: schemas/ against $REF ($(git rev-parse --short "$REF"))"
  # Imports (google/api, well-known types) are not ours to keep compatible.
  status=0
  "$BUF" breaking --against "$against" --exclude-imports --error-format json \
    >"$work/report" || status=$?
  (cd "$against" && "$BUF" build schemas -o "$against_image") 2>"$work/build-errors" || true
fi

# Our own checks need both sides as images, the work tree's with source info for locations.
# A build that fails leaves its image missing; the report then shows buf's COMPILE lines or,
# if buf saw no such error, these build errors.
"$BUF" build schemas -o "$work/current.binpb" 2>>"$work/build-errors" || true
"$PY" -m qmtl_codegen.breaking_report report --label "$label" --buf-report "$work/report" \
  --buf-status "$status" --source-root schemas --baseline "$against_image" \
  --current "$work/current.binpb" --build-errors "$work/build-errors"
