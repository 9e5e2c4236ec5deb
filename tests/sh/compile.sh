#!/usr/bin/env bash
# gptc compile: every CUDA kernel of every variant x00..x04 with the medium preset compiles
# with NVRTC for sm_90 without a warning (registers and spills reported); the C target
# compiles once and a second run takes everything from the kernel cache; plan.txt holds
# the kernel list and the memory plan; bad flags are usage errors.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export XDG_CACHE_HOME=$tmp/cache

if [ -e /usr/local/cuda/lib64/libnvrtc.so ] || [ -n "${CUDA_HOME:-}" ]; then
    # NVRTC compiles on one core: the variants compile side by side, one per core
    for v in x00 x01 x02 x03 x04; do
        while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do wait -n; done
        { "$GPTC" compile models/gpt2m_$v.gptc --preset medium --target cuda -o "$tmp/$v" >"$tmp/$v.log" 2>&1
          echo $? >"$tmp/$v.rc"; } &
    done
    wait
    for v in x00 x01 x02 x03 x04; do
        out=$tmp/$v
        if [ "$(cat "$tmp/$v.rc")" != 0 ]; then
            fail "$v medium: NVRTC compiles every kernel" "$(grep -v '^ptxas' "$tmp/$v.log" | head -20)"; continue
        fi
        regs=$(cat "$out"/*.ptxas.txt | sed -n 's/.*Used \([0-9]*\) registers.*/\1/p' | sort -n | tail -1)
        spill=$(cat "$out"/*.ptxas.txt | sed -n 's/.* \([0-9]*\) bytes spill stores.*/\1/p' | awk '{s += $1} END {print s + 0}')
        nk=$(grep -c "Compiling entry function" "$out"/grad.ptxas.txt "$out"/update.ptxas.txt | awk -F: '{s += $2} END {print s}')
        expect_status "$v medium: cubins written ($nk kernels, at most $regs registers, $spill bytes of spill stores)" 0 \
            test -s "$out/grad.cubin" -a -s "$out/update.cubin"
        expect_status "$v medium: no NVRTC warning" 1 grep -qi "warning" "$out"/grad.ptxas.txt "$out"/update.ptxas.txt
    done
else
    echo "skip: NVRTC compile checks (no CUDA toolkit under /usr/local/cuda or \$CUDA_HOME)"
fi

expect_output "C target, cold: compiles" "0 of 2 objects from the cache" \
    "$GPTC" compile models/gpt2m_x02.gptc --preset tiny --target c -o "$tmp/c"
expect_output "C target, warm: compiles nothing" "2 of 2 objects from the cache" \
    "$GPTC" compile models/gpt2m_x02.gptc --preset tiny --target c -o "$tmp/c"
expect_status "shared objects written" 0 test -s "$tmp/c/grad.so" -a -s "$tmp/c/update.so" -a -s "$tmp/c/grad.c"
expect_output "plan.txt: kernels in order" "^ +0 (loop|matmul) " cat "$tmp/c/plan.txt"
expect_output "plan.txt: memory plan" "^arena_bytes [0-9]+$" cat "$tmp/c/plan.txt"
expect_output "plan.txt: fused vs unfused traffic" "^elementwise_bytes_unfused [0-9]+$" cat "$tmp/c/plan.txt"
expect_status "--target is c or cuda" 2 "$GPTC" compile models/gpt2m_x02.gptc --target js -o "$tmp/x"
expect_status "-o is required" 2 "$GPTC" compile models/gpt2m_x02.gptc --target c
expect_status "--arch is checked" 2 "$GPTC" compile models/gpt2m_x02.gptc --target cuda --arch 90 -o "$tmp/x"
expect_output "--help" "^usage: gptc compile" "$GPTC" compile --help
