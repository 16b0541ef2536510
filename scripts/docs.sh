#!/usr/bin/env bash
# Builds the static docs site docs/site/ from the OpenAPI documents and the Markdown pages:
#   scripts/docs.sh [--openapi FILE] [--internal FILE]... [--reference FILE] [--page FILE]... [--out DIR]
# defaults: docs/openapi/public.openapi.json, every docs/openapi/*.internal.openapi.json (each on
# a page of its own, marked internal), docs/schemas/reference.md, the pages docs/api/ACCESS.md,
# docs/api/CLIENTS.md and docs/schemas/CHANGELOG.md, docs/site.
# The npm packages are pinned by docs/site-src/package-lock.json; `npm ci` runs only when
# node_modules is missing or was installed from another lock file (scripts/npm_ci.sh). The
# output is deterministic.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
SRC="$ROOT/docs/site-src"
OPENAPI="$ROOT/docs/openapi/public.openapi.json"
REFERENCE="$ROOT/docs/schemas/reference.md"
OUT="$ROOT/docs/site"
INTERNAL=()
PAGES=()
internal_given=0
pages_given=0

say() { printf '==> %s\n' "$*"; }
die() { printf 'docs: error: %s\n' "$*" >&2; exit 1; }
abspath() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$ROOT" "$1" ;; esac; }

while [ $# -gt 0 ]; do
  case "$1" in
    --openapi) OPENAPI="$(abspath "${2:?--openapi needs a file}")"; shift 2 ;;
    --internal) INTERNAL+=("$(abspath "${2:?--internal needs a file}")"); internal_given=1; shift 2 ;;
    --reference) REFERENCE="$(abspath "${2:?--reference needs a file}")"; shift 2 ;;
    --page) PAGES+=("$(abspath "${2:?--page needs a file}")"); pages_given=1; shift 2 ;;
    --out) OUT="$(abspath "${2:?--out needs a folder}")"; shift 2 ;;
    *) die "unknown argument '$1' (usage: scripts/docs.sh [--openapi FILE] [--internal FILE]... [--reference FILE] [--page FILE]... [--out DIR])" ;;
  esac
done
if [ "$internal_given" = 0 ]; then
  for f in "$ROOT"/docs/openapi/*.internal.openapi.json; do [ -f "$f" ] && INTERNAL+=("$f"); done
fi
[ "$pages_given" = 1 ] || PAGES=("$ROOT/docs/api/ACCESS.md" "$ROOT/docs/api/CLIENTS.md" "$ROOT/docs/schemas/CHANGELOG.md")

command -v node >/dev/null || die "node is not installed"
command -v npm >/dev/null || die "npm is not installed"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "node >= 20 is needed (marked's engines), found $(node --version)"

bash "$ROOT/scripts/npm_ci.sh" "docs [1/2]" "$SRC"

say "docs [2/2]: building ${OUT#"$ROOT"/}/"
args=(--openapi "$OPENAPI" --reference "$REFERENCE" --out "$OUT")
for f in "${INTERNAL[@]}"; do args+=(--internal "$f"); done
for f in "${PAGES[@]}"; do args+=(--page "$f"); done
node "$SRC/build.mjs" "${args[@]}"
say "docs: open file://$OUT/index.html"
