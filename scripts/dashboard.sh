#!/usr/bin/env bash
# Bundles the Gateway dashboard's script (services/gateway/dashboard-src/src/main.js, with
# cytoscape and cytoscape-dagre) into the gateway package:
#   scripts/dashboard.sh [--out DIR]
# default DIR: services/gateway/qmtl/services/gateway/dashboard/static (the committed bundle).
# The npm packages are pinned by services/gateway/dashboard-src/package-lock.json; `npm ci` runs
# only when node_modules is missing or was installed from another lock file. esbuild's output is
# a pure function of its inputs and options (no timestamps, no absolute paths), so a rebuild
# from the lock file reproduces the committed bundle byte for byte (tests/dashboard checks it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
SRC="$ROOT/services/gateway/dashboard-src"
OUT="$ROOT/services/gateway/qmtl/services/gateway/dashboard/static"

say() { printf '==> %s\n' "$*"; }
die() { printf 'dashboard: error: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="${2:?--out needs a folder}"; case "$OUT" in /*) ;; *) OUT="$ROOT/$OUT" ;; esac; shift 2 ;;
    *) die "unknown argument '$1' (usage: scripts/dashboard.sh [--out DIR])" ;;
  esac
done

command -v node >/dev/null || die "node is not installed"
command -v npm >/dev/null || die "npm is not installed"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "node >= 20 is needed, found $(node --version)"

bash "$ROOT/scripts/npm_ci.sh" "dashboard [1/2]" "$SRC"

say "dashboard [2/2]: esbuild $("$SRC/node_modules/.bin/esbuild" --version) -> ${OUT#"$ROOT"/}/dashboard.js"
mkdir -p "$OUT"
# Run from SRC with relative paths: the bundle's module comments name paths, and relative ones
# keep it the same on every checkout.
(cd "$SRC" && node_modules/.bin/esbuild src/main.js --bundle --minify --format=iife \
  --target=es2020 --legal-comments=eof --charset=utf8 --log-level=warning \
  --outfile="$OUT/dashboard.js") || die "esbuild failed"
