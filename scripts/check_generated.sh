#!/usr/bin/env bash
# Fails when `make generate` changes anything under the generated paths given as arguments.
#   scripts/check_generated.sh PATH...
# The paths are snapshotted into a scratch git index first, so the check compares the schemas'
# output with the work tree as it is (committed or not); on a clean clone, as in CI, that is
# the committed output.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$#" -gt 0 ] || { echo "usage: $0 PATH..." >&2; exit 2; }

index="$(mktemp)"
trap 'rm -f "$index"' EXIT
cp "$(git rev-parse --git-path index)" "$index"
export GIT_INDEX_FILE="$index"
git add -A -- "$@"

make --no-print-directory generate

changed="$( { git diff --name-status -- "$@"; git ls-files --others --exclude-standard -- "$@" | sed 's/^/A\t/'; } )"
if [ -n "$changed" ]; then
  echo "check-generated: make generate changed these files; commit its output with the schema change:" >&2
  printf '%s\n' "$changed" | sed 's/^/    /' >&2
  exit 1
fi
echo "    generated output matches the schemas"
