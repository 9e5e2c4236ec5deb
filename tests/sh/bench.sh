#!/usr/bin/env bash
# gptc bench on the cpu backend: its figures (the median step and its split into the gradient
# step and the update, time by kind of kernel, the products' GFLOP/s against an sgemm timed in
# the same run, the kernels run in groups — the update's in at least one — and peak memory),
# and OpenBLAS's kernels: where the library fell back to generic
# ones on a CPU with AVX2, gptc runs with kernels for it; a user's OPENBLAS_CORETYPE stands;
# and the products' kernel (gptc's AVX-512 one or OpenBLAS's) with GPTC_SGEMM's choices.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
tiny=(models/gpt2m_x02.gptc --preset tiny --schedule window_long=3,window_short=1 --steps 2 --warmup 1 --threads 2)

"$GPTC" bench "${tiny[@]}" >"$tmp/out" 2>&1; rc=$?
expect_status "bench runs the tiny preset" 0 test $rc -eq 0
num='[0-9]+\.[0-9]'
for pat in "^median_ms_per_step: $num\$" "^median_gradient_ms: $num\$" "^median_update_ms: $num\$" \
           "^split_ms: products $num, attention $num, loop kernels $num, scatter-adds $num \(a mean step\)\$" \
           "^products: $num GFLOP a step \(gradient $num, update $num\) at [0-9]+ GFLOP/s; one large sgemm here: [0-9]+ GFLOP/s \([0-9]+%\)\$" \
           "^peak_rss_mb: [0-9]+\$" "^blas: OpenBLAS " "^step 1: $num ms \(gradient $num, update $num\)  loss [0-9]" \
           "^groups: gradient step [0-9]+ of [0-9]+ kernels in [0-9]+ groups, update [0-9]+ of [0-9]+ in [1-9][0-9]* " \
           ; do
    expect_output "bench prints /$pat/" "$pat" cat "$tmp/out"
done
# the split adds up to no more than the step (the rest is the trainer's own work)
awk '/^median_ms_per_step/ { step = $2 } /^split_ms/ { gsub(/,/, ""); s = $3 + $5 + $8 + $10 }
     END { exit !(s > 0 && s <= 1.2 * step) }' "$tmp/out" && pass "bench: the split is within the step" ||
    fail "bench: the split is within the step" "$(grep -E '^(median_ms|split)' "$tmp/out")"

core=$(sed -n 's/^blas_core: //p' "$tmp/out")
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
    case $core in
    Haswell|SkylakeX|Cooperlake|SapphireRapids|Zen|Excavator) pass "OpenBLAS runs AVX2 kernels or better here ($core)" ;;
    *) fail "OpenBLAS runs AVX2 kernels or better here" "blas_core: $core" ;;
    esac
else
    pass "OpenBLAS: no AVX2 here, its own choice stands ($core)"
fi
expect_output "a user's OPENBLAS_CORETYPE stands" "^blas_core: Prescott$" \
    env OPENBLAS_CORETYPE=Prescott "$GPTC" bench "${tiny[@]}" --steps 1
expect_output "bench prints every schedule it runs with, the pinned ones as pinned" \
    "^schedules: progress=0 lr_mul=1 momentum=0.85 window_long=3 window_short=1$" cat "$tmp/out"
expect_output "the arguments survive gptc running itself again" "^gptc bench: models/gpt2m_x02.gptc T=256 threads 2" \
    cat "$tmp/out"

# the products' kernel: gptc's own AVX-512 one where the CPU has AVX-512F and OpenBLAS's
# kernels do not (runtime/sgemm.c); GPTC_SGEMM overrides, and a bad value is an error
case $core in SkylakeX|Cooperlake|SapphireRapids) blas512=1 ;; *) blas512=0 ;; esac
if grep -qw avx512f /proc/cpuinfo && [ $blas512 = 0 ]; then want="gptc's AVX-512 kernel"; else want=OpenBLAS; fi
expect_output "the products run $want here" "^products_kernel: $want\$" cat "$tmp/out"
expect_output "GPTC_SGEMM=openblas runs OpenBLAS's products" "^products_kernel: OpenBLAS\$" \
    env GPTC_SGEMM=openblas "$GPTC" bench "${tiny[@]}" --steps 1
expect_status "GPTC_SGEMM=other is an error" 2 env GPTC_SGEMM=other "$GPTC" bench "${tiny[@]}" --steps 1
expect_output "GPTC_SGEMM=other says what it may be" "GPTC_SGEMM is 'other': it must be auto, openblas or avx512" \
    env GPTC_SGEMM=other "$GPTC" bench "${tiny[@]}" --steps 1
if grep -qw avx512f /proc/cpuinfo; then
    expect_output "GPTC_SGEMM=avx512 runs gptc's kernel" "^products_kernel: gptc's AVX-512 kernel\$" \
        env GPTC_SGEMM=avx512 "$GPTC" bench "${tiny[@]}" --steps 1
    expect_output "OpenBLAS's own AVX-512 kernels are kept" "^products_kernel: OpenBLAS\$" \
        env OPENBLAS_CORETYPE=SkylakeX "$GPTC" bench "${tiny[@]}" --steps 1
else
    expect_status "GPTC_SGEMM=avx512 without AVX-512F is an error" 2 env GPTC_SGEMM=avx512 "$GPTC" bench "${tiny[@]}" --steps 1
fi
