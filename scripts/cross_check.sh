#!/usr/bin/env bash
# make cross-check: TypeScript reads every golden fixture byte for byte.
#   scripts/cross_check.sh [--fixtures DIR]
# default DIR: tests/golden/fixtures. protoc-gen-es and @bufbuild/protobuf are pinned by
# tools/crosscheck/package-lock.json (npm ci only when node_modules is missing or stale); buf
# generates JavaScript from schemas/ with buf.gen.ts.yaml into tools/crosscheck/gen/ (gitignored,
# regenerated on every run), and tools/crosscheck/check.mjs decodes, re-encodes and compares
# every fixture with it. Exit 1 names each fixture and field that differs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
SRC="$ROOT/tools/crosscheck"
FIXTURES="$ROOT/tests/golden/fixtures"
BUF="$ROOT/.tools/bin/buf"

say() { printf '==> %s\n' "$*"; }
die() { printf 'cross-check: error: %s\n' "$*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --fixtures)
      FIXTURES="${2:?--fixtures needs a folder}"
      case "$FIXTURES" in /*) ;; *) FIXTURES="$ROOT/$FIXTURES" ;; esac
      shift 2 ;;
    *) die "unknown argument '$1' (usage: scripts/cross_check.sh [--fixtures DIR])" ;;
  esac
done

command -v node >/dev/null || die "node is not installed"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "node >= 20 is needed, found $(node --version)"
[ -x "$BUF" ] || die "$BUF is missing: run \`make setup\`"
[ -d "$FIXTURES" ] || die "$FIXTURES is not a folder"

bash "$ROOT/scripts/npm_ci.sh" "cross-check [1/3]" "$SRC"

# Two runs at once (make cross-check and its test) share tools/crosscheck/gen/: one at a time.
exec 9<"$ROOT/buf.gen.ts.yaml"
flock 9

plugin_version="$(node -p "require('$SRC/node_modules/@bufbuild/protoc-gen-es/package.json').version")"
say "cross-check [2/3]: buf generate --template buf.gen.ts.yaml (protoc-gen-es $plugin_version, JavaScript + .d.ts) -> tools/crosscheck/gen/"
"$BUF" generate --template buf.gen.ts.yaml || die "buf generate --template buf.gen.ts.yaml failed"

say "cross-check [3/3]: protobuf-es reads every fixture under ${FIXTURES#"$ROOT"/}/"
node "$SRC/check.mjs" --gen "$SRC/gen" --fixtures "$FIXTURES"
