#!/usr/bin/env bash
# gptc compile: every CUDA kernel of every variant x00..x04 with the medium preset compiles
# with NVRTC for sm_90 without a warning (registers and spills reported); the C target
# compiles once and a second run takes everything from the kernel cache; plan.txt holds
# the kernel list and the memory plan; bad flags are usage errors; gptc-nvrtc, which NVRTC
# runs in, has a usage and passes NVRTC's errors on, and gptc says clearly when it is
# missing, fails or crashes.
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

    # gptc-nvrtc, the process NVRTC runs in: its usage, and what gptc says when it is missing,
    # fails or crashes (a copy of gptc in a folder of its own, with a stand-in beside it)
    child=$(dirname "$GPTC")/gptc-nvrtc
    expect_output "gptc-nvrtc --help" "^usage: gptc-nvrtc ARCH SOURCE CUBIN LOG" "$child" --help
    expect_status "gptc-nvrtc without its arguments: usage" 2 "$child" sm_90
    printf 'extern "C" __global__ void k(float *x) { x[0] = nonesuch; }\n' >"$tmp/bad.cu"
    expect_output "gptc-nvrtc: NVRTC's errors on stderr, at the source's path" "^$tmp/bad.cu\(1\): error: identifier \"nonesuch\" is undefined" \
        "$child" sm_90 "$tmp/bad.cu" "$tmp/bad.cubin" "$tmp/bad.log"
    expect_status "gptc-nvrtc: a failed compile writes no cubin" 1 test -e "$tmp/bad.cubin"
    mkdir -p "$tmp/alone"; cp "$GPTC" "$tmp/alone/gptc"
    tiny=(models/gpt2m_x02.gptc --preset tiny --target cuda -o "$tmp/alone/out")
    XDG_CACHE_HOME=$tmp/alone/cache expect_output "gptc without gptc-nvrtc beside it: says so" \
        "gptc-nvrtc, which compiles CUDA modules, is neither next to the program nor one folder up .*make builds it" "$tmp/alone/gptc" compile "${tiny[@]}"
    printf '#!/bin/sh\necho "gptc-nvrtc: out of disk" >&2\nexit 1\n' >"$tmp/alone/gptc-nvrtc"; chmod +x "$tmp/alone/gptc-nvrtc"
    XDG_CACHE_HOME=$tmp/alone/cache expect_output "a failed gptc-nvrtc: its message" "gptc-nvrtc: out of disk" \
        "$tmp/alone/gptc" compile "${tiny[@]}"
    printf '#!/bin/sh\nkill -SEGV $$\n' >"$tmp/alone/gptc-nvrtc"
    XDG_CACHE_HOME=$tmp/alone/cache expect_output "a crashed gptc-nvrtc: a failed compile, not a crash" \
        "gptc-nvrtc was killed by signal 11 compiling .*[.]cu" "$tmp/alone/gptc" compile "${tiny[@]}"
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
