#!/usr/bin/env bash
# Runs the whole suite against the ASan+UBSan build and ends with "N passed, N failed".
#   tests/run.sh [BUILD_DIR]      (default build-asan)
# Every test binary prints "pass: NAME" / "fail: NAME" lines; every shell test in
# tests/sh/*.sh does the same through tests/lib.sh. A binary that crashes or exits
# nonzero without a "fail:" line counts as one failure of its own. Each test's line ends
# with the seconds it took.
#   GPTC_TEST_TIMEOUT=SECONDS     the time limit of each test (default 900, about one and a
#                                 half times the slowest test on 2 cores): a test that runs past
#                                 it is killed with every process in its process group and
#                                 counts as a failure that says so
# The tests share one kernel cache, empty at the start of every run and removed at its end
# (XDG_CACHE_HOME), so a run compiles what a fresh machine compiles and leaves ~/.cache alone.
set -u
cd "$(dirname "$0")/.."
export GPTC_BUILD=${1:-build-asan}
# intercept_tls_get_addr=0: LeakSanitizer's tracking of dynamic TLS blocks records a bogus
# block ("DTLS 9 at 0x1f28") once the CUDA emulator has loaded NVRTC and its kernel modules
# at run time, and its tracer then crashes at exit ("Tracer caught signal 11"), failing a run
# that leaked nothing; without that tracking the leak check runs and finds nothing either
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:intercept_tls_get_addr=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# the generated kernels the cpu backend loads are built with AddressSanitizer too
export GPTC_KERNEL_CFLAGS=${GPTC_KERNEL_CFLAGS:-"-fsanitize=address -fno-omit-frame-pointer"}
limit=${GPTC_TEST_TIMEOUT:-900}
pass=0 fail=0 pid=
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
trap '[ -n "$pid" ] && kill -TERM -- -"$pid" 2>/dev/null; exit 130' INT TERM
log=$tmp/log
export XDG_CACHE_HOME=$tmp/cache

run_one() {   # run_one LABEL CMD...
    local label=$1; shift
    local t0=$SECONDS
    # timeout runs the test in a process group of its own and signals the whole group
    timeout -k 10 "$limit" "$@" >"$log" 2>&1 & pid=$!
    wait "$pid"; local rc=$? secs=$((SECONDS - t0))
    # what the test left in its group: a few seconds to exit (mpirun stops its ranks), then SIGKILL
    for _ in 1 2 3 4 5; do kill -0 -- -"$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- -"$pid" 2>/dev/null; pid=
    local p f; p=$(grep -c '^pass: ' "$log"); f=$(grep -c '^fail: ' "$log")
    grep -E '^fail: ' "$log" | sed "s|^|$label: |"
    if [ "$f" -gt 0 ] || [ $rc -ne 0 ]; then
        sed -n '1,200p' "$log" | grep -v '^pass: ' | sed "s|^|    |"
        if [ $rc -eq 124 ] || { [ $rc -eq 137 ] && [ $secs -ge "$limit" ]; }; then
            f=$((f + 1)); echo "fail: $label timed out after ${limit}s (GPTC_TEST_TIMEOUT)"
        elif [ "$f" -eq 0 ]; then f=1; echo "fail: $label exited $rc"; fi
    fi
    pass=$((pass + p)); fail=$((fail + f))
    printf '%-40s %4d passed %4d failed %5ds\n' "$label" "$p" "$f" "$secs"
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
