#!/usr/bin/env bash
# Builds the static docs site docs/site/ from the OpenAPI documents and the Markdown pages:
#   scripts/docs.sh [--openapi FILE] [--internal FILE]... [--reference FILE] [--page FILE]... [--out DIR]
# defaults: docs/openapi/public.openapi.json, every docs/openapi/*.internal.openapi.json (each on
# a page of its own, marked internal), docs/schemas/reference.md, docs/api/ACCESS.md, docs/site.
# The npm packages are pinned by docs/site-src/package-lock.json; `npm ci` runs only when
# node_modules is missing or was installed from another lock file. The output is deterministic.
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
[ "$pages_given" = 1 ] || PAGES=("$ROOT/docs/api/ACCESS.md")

command -v node >/dev/null || die "node is not installed"
command -v npm >/dev/null || die "npm is not installed"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "node >= 20 is needed (marked's engines), found $(node --version)"

install_packages() {
  local stamp="$SRC/node_modules/.qmtl-installed" want
  want="$(cat "$SRC/package.json" "$SRC/package-lock.json" "$SRC/.npmrc" | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "docs [1/2]: npm packages up to date (docs/site-src/node_modules, node $(node --version))"
    return
  fi
  say "docs [1/2]: npm ci in docs/site-src (pinned by package-lock.json, install scripts off)"
  # --ignore-scripts: nothing we use needs an install script, and none should phone home.
  (cd "$SRC" && npm ci --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error) \
    || die "npm ci failed in docs/site-src"
  echo "$want" >"$SRC/node_modules/.qmtl-installed"
}

# Two builds at once (make docs and the test) must not run npm ci over each other.
exec 9<"$SRC/package-lock.json"
flock 9
install_packages
flock -u 9

say "docs [2/2]: building ${OUT#"$ROOT"/}/"
args=(--openapi "$OPENAPI" --reference "$REFERENCE" --out "$OUT")
for f in "${INTERNAL[@]}"; do args+=(--internal "$f"); done
for f in "${PAGES[@]}"; do args+=(--page "$f"); done
node "$SRC/build.mjs" "${args[@]}"
say "docs: open file://$OUT/index.html"
