#!/usr/bin/env bash
# the collectives (runtime/dist.c) under Open MPI: test_dist --mpi with mpirun -np 2 and -np 3 (allreduce
# mean/sum f64/f32 incl. chunking, bcast from every root, max, owner), an invalid MPI call
# reported through the check macro, rt_dist_abort in one rank ending the job, and gptc not
# linking libmpi. Open MPI missing is a failure: tools/deps.sh installs openmpi-bin.
#
# mpirun flags (MPIRUN_FLAGS overrides): --allow-run-as-root (containers run as root),
# --oversubscribe (-np 3 on a 2-core machine), --mca btl self,vader (shared memory only).
# Under ASan, LeakSanitizer uses tests/lsan-mpi.supp for the MPI runs only (Open MPI never
# frees some of MPI_Init's allocations); leaks in gptc's code still fail.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
BUILD=${GPTC_BUILD:-build-asan}
TD=$BUILD/tests/test_dist
FLAGS=${MPIRUN_FLAGS:---allow-run-as-root --oversubscribe --mca btl self,vader}

if ! command -v mpirun >/dev/null; then
    fail "Open MPI is installed" "no mpirun on PATH: run tools/deps.sh (apt-get install openmpi-bin libopenmpi-dev)"
    exit 0
fi
pass "Open MPI is installed ($(mpirun --version 2>/dev/null | head -1))"
[ -x "$TD" ] || { fail "test_dist built" "no $TD: make all / make asan"; exit 0; }

if [ -x "$BUILD/gptc" ]; then
    if LC_ALL=C readelf -d "$BUILD/gptc" 2>&1 | grep -q 'NEEDED.*libmpi'; then
        fail "gptc does not link libmpi" "$(readelf -d "$BUILD/gptc" | grep NEEDED)"
    else pass "gptc does not link libmpi"; fi
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:fast_unwind_on_malloc=0"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan-mpi.supp:print_suppressions=0"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
out=$(mktemp); trap 'rm -f "$out"' EXIT

# mpi NP ARGS… — runs test_dist under mpirun -np NP; output in $out, returns the exit status
mpi() {
    local np=$1; shift
    # shellcheck disable=SC2086
    timeout 120 mpirun $FLAGS -np "$np" -x ASAN_OPTIONS -x LSAN_OPTIONS -x UBSAN_OPTIONS \
        "$TD" "$@" >"$out" 2>&1
}

for np in 2 3; do
    mpi "$np" --mpi; rc=$?
    sed -n -E "s/^(pass|fail): /\1: np$np /p" "$out"
    npass=$(grep -c '^pass: ' "$out")
    if [ "$rc" -ne 0 ] || [ "$npass" -lt 7 ] || grep -q '^fail: ' "$out"; then
        fail "np$np test_dist --mpi exits 0 with 7 passes" "exit $rc, $npass passes" "$(grep -v '^pass: ' "$out" | head -40)"
    else pass "np$np test_dist --mpi exits 0 with 7 passes"; fi
done

mpi 2 --mpi-error; rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] \
   && grep -qE 'rank [01]: MPI error in rt_dist_test_mpi_error \(runtime/dist\.c:[0-9]+\) from D\.f\.Bcast\(.*\): MPI_ERR_ROOT' "$out"; then
    pass "an MPI error prints MPI's message and the call site, then aborts"
else fail "an MPI error prints MPI's message and the call site, then aborts" "exit $rc" "$(head -20 "$out")"; fi

mpi 3 --mpi-abort; rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q 'rank 1 aborts' "$out" && ! grep -q 'passed a barrier' "$out"; then
    pass "rt_dist_abort in one rank ends every rank"
else fail "rt_dist_abort in one rank ends every rank" "exit $rc" "$(head -20 "$out")"; fi
