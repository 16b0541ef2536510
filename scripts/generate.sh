#!/usr/bin/env bash
# make generate: schemas/ -> every output of buf.gen.yaml, swapped into the tree only if every
# plugin succeeded.
#   scripts/generate.sh
# buf writes into a temporary tree (`buf generate -o`); a failing plugin leaves the work tree
# exactly as it was and is named on stderr. On success the outputs below are swapped in:
# wholly regenerated paths are replaced, so output of a deleted schema element does not linger,
# and golden fixtures are only added to (append-only: docs/schemas/VERSIONING.md).
#
# Incremental: a run records a hash of its inputs (schemas/, buf.gen.yaml, buf.yaml, codegen/,
# this script, the pins in constraints.txt, the proto deps and the tool binaries) and of the
# outputs it wrote. When both are unchanged the outputs are exactly what a run would write, so
# the next run only says so (FORCE=1 regenerates anyway). check-generated relies on this too:
# outputs edited by hand no longer match their recorded hash and are regenerated.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
BUF=.tools/bin/buf

# Directories that hold nothing but generated files: replaced as a whole.
REPLACED_DIRS=(generated/python generated/jsonschema docs/openapi/swagger)
# Generated files next to hand-written ones (docs/openapi/README.md, docs/schemas/VERSIONING.md):
# every match is deleted and the new matches moved in.
REPLACED_FILES=("docs/openapi/*.openapi.json" "docs/schemas/reference.md" "docs/schemas/CHANGELOG.md")
# Append-only: new files are copied in, existing ones are never touched.
APPENDED_DIRS=(tests/golden/fixtures)

fail() { printf 'generate: FAILED: %s\n' "$*" >&2; exit 1; }

STAMP=.tools/state/generate.stamp
# Every file under the given paths, by content; __pycache__ and build metadata are not output.
tree_hash() {
  find "$@" -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*' -print0 2>/dev/null |
    LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -c1-64
}
inputs_hash() {
  {
    tree_hash schemas codegen .tools/proto-deps buf.gen.yaml buf.yaml scripts/generate.sh constraints.txt
    stat -c '%n %s %Y' .tools/bin/* "$BUF"
  } | sha256sum | cut -c1-64
}
outputs_hash() {
  # shellcheck disable=SC2086 # the REPLACED_FILES patterns are meant to glob
  tree_hash "${REPLACED_DIRS[@]}" "${APPENDED_DIRS[@]}" ${REPLACED_FILES[*]}
}
started_ns="$(date +%s%N)"
inputs="$(inputs_hash)"
if [ "${FORCE:-0}" != 1 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$inputs $(outputs_hash)" ]; then
  printf '==> generate: up to date in %s ms (inputs unchanged since the last run, outputs as it wrote them; FORCE=1 regenerates)\n' \
    "$(( ($(date +%s%N) - started_ns) / 1000000 ))"
  exit 0
fi

stage="$(mktemp -d "${TMPDIR:-/tmp}/qmtl-generate.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/out"

echo "==> generate [1/3]: buf lint schemas/, and meanwhile buf generate (buf.gen.yaml) into a temporary tree: messages, stubs, gRPC, HTTP, OpenAPI, JSON Schema, fixtures, docs"
# Lint runs beside generation (both only read schemas/); nothing is swapped in unless it passes.
"$BUF" lint >"$stage/lint" 2>&1 &
lint_pid=$!
status=0
"$BUF" generate -o "$stage/out" 2>"$stage/stderr" || status=$?
lint_status=0
wait "$lint_pid" || lint_status=$?
if [ "$lint_status" -ne 0 ]; then
  cat "$stage/lint" >&2
  fail "buf lint found the problems above; nothing in the work tree was changed"
fi
echo "==> generate [2/3]: lint passed; every plugin succeeded"
if [ "$status" -ne 0 ]; then
  # buf reports the plugin that failed as `Failure: plugin <command>: <why>` and then the
  # plugins it cancelled because of it; those follow-on lines name innocent plugins.
  grep -v -E '(^|: )(context canceled|signal: killed)$' "$stage/stderr" | sed 's/^/    /' >&2 || true
  failure="$(grep -m1 '^Failure: plugin ' "$stage/stderr" || true)"
  if [ -n "$failure" ]; then
    rest="${failure#Failure: plugin }"
    command="${rest%%: *}"
    why="${rest#*: }"
    plugin="$(sed -nE 's/.* -m ([A-Za-z0-9_.]+).*/\1/p' <<<"$command")"
    # A bundle (qmtl_codegen.bundle) names the generator that failed: `<module>: <why>`.
    if [[ "$why" =~ ^(qmtl_codegen\.[A-Za-z0-9_]+):\ (.*)$ ]]; then
      plugin="${BASH_REMATCH[1]}"
      why="${BASH_REMATCH[2]}"
    fi
    fail "plugin ${plugin:-$command} failed: $why
    (buf.gen.yaml entry: $command); nothing in the work tree was changed"
  fi
  fail "buf generate exited with $status; nothing in the work tree was changed"
fi
# buf's own output (warnings) stays visible.
cat "$stage/stderr" >&2

# Every staged file must belong to a rule above: a new `out:` in buf.gen.yaml has to be added
# here before its output can reach the tree (otherwise it would silently be dropped).
unknown="$(
  cd "$stage/out"
  find . -type f | sed 's|^\./||' | while IFS= read -r file; do
    known=""
    for dir in "${REPLACED_DIRS[@]}" "${APPENDED_DIRS[@]}"; do
      [[ "$file" == "$dir"/* ]] && known=1
    done
    for pattern in "${REPLACED_FILES[@]}"; do
      # shellcheck disable=SC2053 # the pattern is meant to glob-match
      [[ "$file" == $pattern ]] && known=1
    done
    [ -n "$known" ] || echo "$file"
  done
)"
if [ -n "$unknown" ]; then
  fail "buf.gen.yaml writes files scripts/generate.sh does not know how to swap in:
$(sed 's/^/    /' <<<"$unknown")
    add their path to scripts/generate.sh; nothing in the work tree was changed"
fi

# The fixture plugin never emits a name that exists (existing= in buf.gen.yaml); a staged
# fixture that differs from the committed one would rewrite old bytes, which must not happen.
for dir in "${APPENDED_DIRS[@]}"; do
  [ -d "$stage/out/$dir" ] || continue
  changed="$(
    cd "$stage/out/$dir"
    find . -type f | sed 's|^\./||' | while IFS= read -r file; do
      if [ -e "$ROOT/$dir/$file" ] && ! cmp -s "$file" "$ROOT/$dir/$file"; then echo "$file"; fi
    done
  )"
  [ -z "$changed" ] || fail "$dir is append-only, but these would change:
$(sed 's/^/    /' <<<"$changed")
    nothing in the work tree was changed"
done

echo "==> generate [3/3]: swapping in ${REPLACED_DIRS[*]} ${REPLACED_FILES[*]}; adding new fixtures to ${APPENDED_DIRS[*]}"
for dir in "${REPLACED_DIRS[@]}"; do
  rm -rf "$dir"
  if [ -d "$stage/out/$dir" ]; then
    mkdir -p "$(dirname "$dir")"
    mv "$stage/out/$dir" "$dir"
  fi
done
for pattern in "${REPLACED_FILES[@]}"; do
  # shellcheck disable=SC2086 # the pattern is meant to glob
  rm -f $pattern
  # shellcheck disable=SC2086
  for file in $(cd "$stage/out" && compgen -G "$pattern" || true); do
    mkdir -p "$(dirname "$file")"
    mv "$stage/out/$file" "$file"
  done
done
for dir in "${APPENDED_DIRS[@]}"; do
  if [ -d "$stage/out/$dir" ]; then
    mkdir -p "$dir"
    cp -R "$stage/out/$dir/." "$dir/"
  fi
done
mkdir -p "$(dirname "$STAMP")"
echo "$inputs $(outputs_hash)" >"$STAMP"
echo "    $(find generated -type f | wc -l) files in generated/, $(find tests/golden/fixtures -name '*.binpb' | wc -l) binary fixtures"
