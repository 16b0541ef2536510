#!/usr/bin/env bash
# Rebuilds docs/site-src/screenshot.png: a page of the docs site as headless Chromium draws it,
# from a fresh build of the site:
#   bash docs/site-src/screenshot.sh [PAGE]
# default: index.html (the intro and the first operation with its curl sample and JSON example),
# 1440x2200 pixels. An `#operation/...` anchor gives a blank capture (Chromium shoots before
# Redoc's scroll settles), so the page is taken from its top.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT="$PWD"
TARGET="${1:-index.html}"
OUT="$ROOT/docs/site-src/screenshot.png"
command -v chromium >/dev/null || { echo "screenshot: chromium is not installed (make setup)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bash scripts/docs.sh --out "$work/site" >/dev/null
# Virtual time lets Redoc finish rendering before the capture.
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$work/profile" --hide-scrollbars --window-size=1440,2200 \
  --virtual-time-budget=15000 --screenshot="$OUT" "file://$work/site/$TARGET" 2>/dev/null
[ -s "$OUT" ] || { echo "screenshot: chromium wrote nothing" >&2; exit 1; }
echo "==> screenshot: ${OUT#"$ROOT"/} ($TARGET)"
