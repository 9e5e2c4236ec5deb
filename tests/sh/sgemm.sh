#!/usr/bin/env bash
# The cpu backend's tests with OpenBLAS's products: where the CPU has AVX-512F and OpenBLAS's
# kernels do not, the products run gptc's own kernel (runtime/sgemm.c), so test_cpu covers
# that; here it runs again with GPTC_SGEMM=openblas, so both kernels are held to ref.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
BUILD=${GPTC_BUILD:-build-asan}
out=$(GPTC_SGEMM=openblas "$BUILD/tests/test_cpu" 2>&1); rc=$?
n=$(printf '%s\n' "$out" | grep -c '^pass: ')
if [ $rc -eq 0 ] && [ "$n" -ge 10 ] && ! printf '%s\n' "$out" | grep -q '^fail: '; then
    pass "test_cpu with GPTC_SGEMM=openblas ($n tests)"
else
    fail "test_cpu with GPTC_SGEMM=openblas" "exit $rc, $n passed" "$(printf '%s\n' "$out" | grep -v '^pass: ' | head -20)"
fi
