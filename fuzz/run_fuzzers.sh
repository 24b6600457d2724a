#!/usr/bin/env bash
# Runs every libFuzzer harness of a `fuzz` build for SECONDS each, over a scratch copy of its
# committed corpus (fuzz/corpus/<harness>/, regression-* inputs included, so known crashes are
# replayed first), and prints one line per harness: wall and CPU seconds, executions, corpus size
# and whether it found a crash. Exit status 1 when any harness crashed, leaked, hung or ran out
# of memory; the reproducer and the log stay in BUILD_DIR/fuzz-work/<harness>/.
#
# Usage: fuzz/run_fuzzers.sh SECONDS [BUILD_DIR] [HARNESS...]   (default build-fuzz, all)
set -uo pipefail

seconds=${1:?usage: fuzz/run_fuzzers.sh SECONDS [BUILD_DIR] [HARNESS...]}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${2:-$root/build-fuzz}
shift $(( $# >= 2 ? 2 : 1 ))
harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
  for bin in "$build"/fuzz/fuzz_*; do [ -x "$bin" ] && harnesses+=("$(basename "$bin")"); done
fi
[ ${#harnesses[@]} -gt 0 ] || { echo "[fuzz] no harnesses in $build/fuzz (build the 'fuzzers' target)" >&2; exit 2; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
sym=$(command -v llvm-symbolizer || command -v llvm-symbolizer-14 || true)
[ -n "$sym" ] && export ASAN_SYMBOLIZER_PATH=$sym

failed=0
printf '%-26s %7s %7s %10s %7s  %s\n' harness wall_s cpu_s execs corpus result
for h in "${harnesses[@]}"; do
  bin=$build/fuzz/$h
  work=$build/fuzz-work/$h
  rm -rf "$work" && mkdir -p "$work/corpus"
  seeds=$root/fuzz/corpus/$h
  [ -d "$seeds" ] || seeds=""
  # New inputs go to the scratch corpus (first directory); the committed seeds are only read.
  TIMEFORMAT='%R %U %S'
  { time "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" $seeds \
      > "$work/log" 2>&1; echo "rc=$?" >> "$work/log"; } 2> "$work/time"
  read -r wall user sys < "$work/time"
  rc=$(sed -n 's/^rc=//p' "$work/log" | tail -n1)
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }')
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n1)
  corpus=$(find "$work/corpus" -type f | wc -l)
  artifacts=$(find "$work" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'slow-unit-*' \) | wc -l)
  result=ok
  if [ "$rc" != 0 ] || [ "$artifacts" -gt 0 ]; then
    result="FAILED (rc=$rc, $artifacts reproducer(s) in $work)"
    failed=1
  fi
  printf '%-26s %7.1f %7s %10s %7s  %s\n' "$h" "$wall" "$cpu" "${execs:-?}" "$corpus" "$result"
  if [ "$result" != ok ]; then
    echo "----- last lines of $work/log -----"
    grep -v '^#[0-9]' "$work/log" | tail -n 40
    echo "-----"
  fi
done
exit $failed
