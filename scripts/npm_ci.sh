#!/usr/bin/env bash
# Installs a folder's npm packages exactly as its package-lock.json pins them, only when needed:
#   scripts/npm_ci.sh LABEL DIR
# `npm ci` runs when DIR/node_modules is missing or was installed from another package.json,
# package-lock.json or .npmrc (node_modules/.qmtl-installed holds their hash). LABEL starts each
# line it prints ("docs [1/2]"). Used by scripts/docs.sh, dashboard.sh and cross_check.sh.
set -euo pipefail
usage="usage: scripts/npm_ci.sh LABEL DIR"
label="${1:?$usage}"
dir="${2:?$usage}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
case "$dir" in /*) ;; *) dir="$ROOT/$dir" ;; esac
shown="${dir#"$ROOT"/}"

say() { printf '==> %s: %s\n' "$label" "$*"; }
die() { printf '%s: error: %s\n' "$label" "$*" >&2; exit 1; }

[ -f "$dir/package-lock.json" ] || die "$shown/package-lock.json is missing"
command -v npm >/dev/null || die "npm is not installed"

# Two runs at once (a make target and its test) must not run npm ci over each other.
exec 9<"$dir/package-lock.json"
flock 9

stamp="$dir/node_modules/.qmtl-installed"
inputs=("$dir/package.json" "$dir/package-lock.json")
[ -f "$dir/.npmrc" ] && inputs+=("$dir/.npmrc")
want="$(cat "${inputs[@]}" | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  say "npm packages up to date ($shown/node_modules, node $(node --version))"
  exit 0
fi
say "npm ci in $shown (pinned by package-lock.json, install scripts off)"
# --ignore-scripts: nothing we use needs an install script (esbuild's binary comes from its
# @esbuild/<platform> optional package), and none should phone home.
(cd "$dir" && npm ci --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error) \
  || die "npm ci failed in $shown"
echo "$want" >"$stamp"
