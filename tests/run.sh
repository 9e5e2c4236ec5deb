#!/usr/bin/env bash
# Runs the whole suite against the ASan+UBSan build and ends with "N passed, N failed".
#   tests/run.sh [BUILD_DIR]      (default build-asan)
# Every test binary prints "pass: NAME" / "fail: NAME" lines; every shell test in
# tests/sh/*.sh does the same through tests/lib.sh. A binary that crashes or exits
# nonzero without a "fail:" line counts as one failure of its own. Tests run side by side,
# one a core (most are single-threaded compiles); each test's line, printed when it ends,
# ends with the seconds it took.
#   GPTC_TEST_TIMEOUT=SECONDS     the time limit of each test (default 900, about twice the
#                                 slowest test on 2 cores with another beside it): a test that
#                                 runs past it is killed with every process in its process
#                                 group and counts as a failure that says so
#   GPTC_TEST_JOBS=N              tests at once (default: the number of cores)
# The tests share one kernel cache, empty at the start of every run and removed at its end
# (XDG_CACHE_HOME), so a run compiles what a fresh machine compiles and leaves ~/.cache alone;
# its entries are written under a temporary name and renamed, and the tokenizer's first-use
# install takes a lock, so tests side by side do not trip over each other.
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
jobs=${GPTC_TEST_JOBS:-$(nproc)}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "tests/run.sh: GPTC_TEST_JOBS must be a positive number, not '$jobs'"; exit 2; }
pass=0 fail=0 running=0
tmp=$(mktemp -d)
declare -A label_of=() t0_of=()   # by pid: the running tests
running_pids() { [ "$running" -gt 0 ] && printf '%s\n' "${!label_of[@]}"; }
stop_all() { for p in $(running_pids); do kill -TERM -- -"$p" 2>/dev/null; done; }
trap 'rm -rf "$tmp"' EXIT
trap 'stop_all; exit 130' INT TERM
export XDG_CACHE_HOME=$tmp/cache

start_one() {   # start_one LABEL CMD...
    local label=$1; shift
    # timeout runs the test in a process group of its own and signals the whole group
    timeout -k 10 "$limit" "$@" >"$tmp/$label.log" 2>&1 &
    label_of[$!]=$label; t0_of[$!]=$SECONDS; running=$((running + 1))
}

finish_one() {   # finish_one PID STATUS: its counts and its line
    local p=$1 rc=$2 label=${label_of[$1]} secs=$((SECONDS - t0_of[$1])) log=$tmp/${label_of[$1]}.log
    unset "label_of[$p]" "t0_of[$p]"; running=$((running - 1))
    # what the test left in its group: a few seconds to exit (mpirun stops its ranks), then SIGKILL
    for _ in 1 2 3 4 5; do kill -0 -- -"$p" 2>/dev/null || break; sleep 1; done
    kill -KILL -- -"$p" 2>/dev/null
    local n f; n=$(grep -c '^pass: ' "$log"); f=$(grep -c '^fail: ' "$log")
    grep -E '^fail: ' "$log" | sed "s|^|$label: |"
    if [ "$f" -gt 0 ] || [ "$rc" -ne 0 ]; then
        sed -n '1,200p' "$log" | grep -v '^pass: ' | sed "s|^|    |"
        if [ "$rc" -eq 124 ] || { [ "$rc" -eq 137 ] && [ "$secs" -ge "$limit" ]; }; then
            f=$((f + 1)); echo "fail: $label timed out after ${limit}s (GPTC_TEST_TIMEOUT)"
        elif [ "$f" -eq 0 ]; then f=1; echo "fail: $label exited $rc"; fi
    fi
    pass=$((pass + n)); fail=$((fail + f))
    printf '%-40s %4d passed %4d failed %5ds\n' "$label" "$n" "$f" "$secs"
}

wait_one() {
    local p rc
    wait -n -p p $(running_pids); rc=$?
    finish_one "$p" "$rc"
}

# the shell tests first: the long ones are among them, and a long test started last would
# run alone at the end
for t in tests/sh/*.sh "$GPTC_BUILD"/tests/test_*; do
    case $t in *.sh) [ -f "$t" ] || continue; cmd=(bash "$t") ;; *) [ -x "$t" ] || continue; cmd=("$t") ;; esac
    while [ "$running" -ge "$jobs" ]; do wait_one; done
    start_one "$(basename "$t" .sh)" "${cmd[@]}"
done
while [ "$running" -gt 0 ]; do wait_one; done
[ $((pass + fail)) -gt 0 ] || { echo "fail: no test ran (is $GPTC_BUILD built?)"; fail=1; }
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
