#!/usr/bin/env bash
# Runs the whole suite against the ASan+UBSan build and ends with "N passed, N failed".
#   tests/run.sh [BUILD_DIR]      (default build-asan)
# Every test binary prints "pass: NAME" / "fail: NAME" lines; every shell test in
# tests/sh/*.sh does the same through tests/lib.sh. A binary that crashes or exits
# nonzero without a "fail:" line counts as one failure of its own.
set -u
cd "$(dirname "$0")/.."
export GPTC_BUILD=${1:-build-asan}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# the generated kernels the cpu backend loads are built with AddressSanitizer too
export GPTC_KERNEL_CFLAGS=${GPTC_KERNEL_CFLAGS:-"-fsanitize=address -fno-omit-frame-pointer"}
pass=0 fail=0
log=$(mktemp); trap 'rm -f "$log"' EXIT

run_one() {   # run_one LABEL CMD...
    local label=$1; shift
    "$@" >"$log" 2>&1; local rc=$?
    local p f; p=$(grep -c '^pass: ' "$log"); f=$(grep -c '^fail: ' "$log")
    grep -E '^fail: ' "$log" | sed "s|^|$label: |"
    if [ "$f" -gt 0 ] || [ $rc -ne 0 ]; then
        sed -n '1,200p' "$log" | grep -v '^pass: ' | sed "s|^|    |"
        if [ "$f" -eq 0 ]; then f=1; echo "fail: $label exited $rc"; fi
    fi
    pass=$((pass + p)); fail=$((fail + f))
    printf '%-40s %4d passed %4d failed\n' "$label" "$p" "$f"
}

for t in "$GPTC_BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    run_one "$(basename "$t")" "$t"
done
for t in tests/sh/*.sh; do
    [ -f "$t" ] || continue
    run_one "$(basename "$t" .sh)" bash "$t"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
