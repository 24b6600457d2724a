#!/usr/bin/env bash
# The sanitizer leg of `make test` and the body of `make fuzz` (docs/fuzzing.md). Configures the
# clang ASan + UBSan build without libtorch (preset `fuzz`, build-fuzz/), builds only what it
# runs, then
#   1. runs the libtorch-free test binaries (unit, recipe, tokenizer, safetensors, chat template,
#      model config) under the sanitizers: any report fails the leg;
#   2. runs every libFuzzer harness for FUZZ_SECONDS over its committed corpus (fuzz/run_fuzzers.sh).
#
# Usage: scripts/sanitizer_leg.sh [--no-tests] [--fuzz-seconds N]   (default: tests + 3 s each)
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-fuzz
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
run_tests=1
fuzz_seconds=3
while [ $# -gt 0 ]; do
  case $1 in
    --no-tests) run_tests=0 ;;
    --fuzz-seconds) fuzz_seconds=${2:?--fuzz-seconds needs a value}; shift ;;
    *) echo "usage: $0 [--no-tests] [--fuzz-seconds N]" >&2; exit 2 ;;
  esac
  shift
done

# The test binaries of the leg: every suite whose code builds without libtorch.
tests=(mr_unit_tests mr_recipe_tests mr_tokenizer_tests mr_safetensors_tests
       mr_chat_template_tests mr_model_files_tests)
targets=(fuzzers)
[ $run_tests = 1 ] && targets+=("${tests[@]}")

leg_start=$(date +%s)
echo "[sanitizer-leg] configure + build ${targets[*]} in build-fuzz (clang, ASan + UBSan)"
if [ ! -f "$build/build.ninja" ]; then
  (cd "$root" && cmake --preset fuzz) || exit 1
fi
build_start=$(date +%s)
cmake --build "$build" -j "$jobs" --target "${targets[@]}" || exit 1
build_s=$(( $(date +%s) - build_start ))

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
sym=$(command -v llvm-symbolizer || command -v llvm-symbolizer-14 || true)
[ -n "$sym" ] && export ASAN_SYMBOLIZER_PATH=$sym
# A committed suppression file for reports inside third-party headers (docs/fuzzing.md); it
# lists nothing today, keep it that way.
[ -s "$root/fuzz/ubsan.supp" ] && export UBSAN_OPTIONS=$UBSAN_OPTIONS:suppressions=$root/fuzz/ubsan.supp

failed=0
tests_s=0
if [ $run_tests = 1 ]; then
  echo "[sanitizer-leg] tests under ASan + UBSan"
  tests_start=$(date +%s)
  mkdir -p "$build/sanitizer-logs"
  for t in "${tests[@]}"; do
    log=$build/sanitizer-logs/$t.log
    start=$(date +%s)
    # Run from the build tree, as ctest does (tests write scratch files under it).
    (cd "$build" && "$build/bin/$t") > "$log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    reports=$(grep -cE 'runtime error:|ERROR: (AddressSanitizer|LeakSanitizer)' "$log")
    summary=$(grep -E '^(All tests passed|test cases:)' "$log" | tail -n1)
    # Exit status 4: some test cases skipped (a missing fixture), none failed (tests/support).
    if { [ $rc = 0 ] || [ $rc = 4 ]; } && [ "$reports" = 0 ]; then
      printf '  %-24s ok      %4ss  %s\n' "$t" "$took" "$summary"
    else
      printf '  %-24s FAILED  %4ss  rc=%s, %s sanitizer report(s); log: %s\n' "$t" "$took" "$rc" "$reports" "$log"
      grep -nE -A25 'runtime error:|ERROR: (AddressSanitizer|LeakSanitizer)' "$log" | head -n 60
      tail -n 30 "$log"
      failed=1
    fi
  done
  tests_s=$(( $(date +%s) - tests_start ))
fi

echo "[sanitizer-leg] libFuzzer harnesses, ${fuzz_seconds} s each"
fuzz_start=$(date +%s)
bash "$root/fuzz/run_fuzzers.sh" "$fuzz_seconds" "$build" || failed=1
fuzz_s=$(( $(date +%s) - fuzz_start ))

echo "[sanitizer-leg] build ${build_s}s, tests ${tests_s}s, fuzzing ${fuzz_s}s, total $(( $(date +%s) - leg_start ))s"
if [ $failed != 0 ]; then
  echo "[sanitizer-leg] FAILED"
  exit 1
fi
echo "[sanitizer-leg] passed: no sanitizer reports, no fuzzer crashes"
