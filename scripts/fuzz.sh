#!/usr/bin/env bash
# make fuzz: atheris (libFuzzer) on every target of tests/fuzz/targets.py, one after another.
#   FUZZ_SECONDS   total time for all targets, split evenly (default 600; minimum 1 s each)
#   FUZZ_TARGETS   space-separated subset of targets (default: all of them)
#   FUZZ_WORK      grown corpus and logs, per target (default .fuzz/; not committed)
#   FUZZ_CRASH_DIR where crash inputs go, per target (default tests/fuzz/crashes: a committed
#                  crash file is replayed by tests/fuzz/test_replay.py in `make test`)
#   FUZZ_INPUT_TIMEOUT  seconds one input may take before it counts as a hang (default 10)
#   FUZZ_SKIP_KNOWN=1   search past the defect class tests/fuzz/known_defects.py lists
# Each target starts from its committed seeds (tests/fuzz/corpus/<target>/) plus what earlier
# runs grew in FUZZ_WORK. Exits non-zero if any target crashed; docs/operations/fuzzing.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
FUZZ_SECONDS="${FUZZ_SECONDS:-600}"
FUZZ_WORK="${FUZZ_WORK:-.fuzz}"
FUZZ_CRASH_DIR="${FUZZ_CRASH_DIR:-tests/fuzz/crashes}"
FUZZ_INPUT_TIMEOUT="${FUZZ_INPUT_TIMEOUT:-10}"
export QMTL_FUZZ_SKIP_KNOWN="${FUZZ_SKIP_KNOWN:-0}"
FUZZ_TARGETS="${FUZZ_TARGETS:-$("$PY" -c 'from tests.fuzz.targets import TARGETS; print(*TARGETS)')}"

die() { printf 'fuzz: error: %s\n' "$*" >&2; exit 2; }
[[ "$FUZZ_SECONDS" =~ ^[0-9]+$ ]] || die "FUZZ_SECONDS must be a whole number of seconds"
"$PY" -c 'import atheris' 2>/dev/null || die "atheris is not installed in .venv: run make setup"

read -r -a targets <<<"$FUZZ_TARGETS"
per_target=$((FUZZ_SECONDS / ${#targets[@]}))
((per_target >= 1)) || per_target=1
printf '==> fuzz: %s target(s), %s s each: %s\n' "${#targets[@]}" "$per_target" "${targets[*]}"

failed=()
for target in "${targets[@]}"; do
  seeds="tests/fuzz/corpus/$target"
  [ -d "$seeds" ] || die "no seed corpus $seeds (run: $PY -m tests.fuzz.seed)"
  mkdir -p "$FUZZ_WORK/$target/corpus" "$FUZZ_CRASH_DIR/$target"
  log="$FUZZ_WORK/$target/log"
  # The grown corpus comes first: libFuzzer adds new inputs to the first folder only.
  if "$PY" -m tests.fuzz.run_atheris "$target" "$FUZZ_WORK/$target/corpus" "$seeds" \
    -max_total_time="$per_target" -timeout="$FUZZ_INPUT_TIMEOUT" -rss_limit_mb=4096 \
    -report_slow_units=60 -artifact_prefix="$FUZZ_CRASH_DIR/$target/" -print_final_stats=1 >"$log" 2>&1; then
    state=clean
  else
    state=CRASHED
    failed+=("$target")
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  printf '    %-16s %-8s %10s inputs %7s/s  log %s\n' "$target" "$state" "${runs:-?}" "${rate:-?}" "$log"
done

if ((${#failed[@]})); then
  printf 'fuzz: crashes in %s; inputs in %s/<target>/, traceback in each log\n' \
    "${failed[*]}" "$FUZZ_CRASH_DIR" >&2
  printf 'fuzz: each committed crash file is a regression test (tests/fuzz/test_replay.py)\n' >&2
  exit 1
fi
printf 'fuzz: clean\n'
