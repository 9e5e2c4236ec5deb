#!/usr/bin/env bash
# CPU step time of gptc (the fused cpu backend and the ref interpreter, f32) against the
# PyTorch reference on the same machine, in one run: the tiny golden config and the small
# config (GPT-2 vocabulary, width 256, x00..x02). Kernels are compiled (or found in the
# cache) before the timed steps; gptc bench prints the setup time separately. After the
# table, gptc's split of a small step: the gradient step and the update, time by kind of
# kernel, and its products' GFLOP/s against one large sgemm timed in the same run.
#
# PyTorch runs with the OpenBLAS kernels gptc runs with (pytorch_ms, cpu/pt). Where OpenBLAS
# does not know the CPU and falls back to generic kernels, gptc runs itself with kernels for
# it (runtime/blas.c); PyTorch then runs with the same OPENBLAS_CORETYPE, and its time with
# the fallback is printed too (pt_fallback_ms). Where gptc multiplies with its own AVX-512
# product instead (runtime/sgemm.c: an AVX-512 CPU whose OpenBLAS kernels are AVX2 ones,
# as OPENBLAS_CORETYPE=Haswell makes them), PyTorch also runs with OpenBLAS's AVX-512
# kernels (OPENBLAS_CORETYPE=SkylakeX) in every round: pt512_ms and cpu/pt512, gptc against
# PyTorch at its fastest here.
#
# A shared machine's speed drifts by tens of percent within minutes, so the small config
# runs ROUNDS times (default 3), gptc's cpu backend and PyTorch alternating: each round's
# ratio is printed, and the table holds the medians (its cpu/pt, the median of the rounds'
# ratios).
#   bench/cpu.sh [STEPS] [THREADS]     (defaults 5 and the number of cores; ROUNDS=N)
# Needs ../shared/reference (the PyTorch reference) and Debian's python3-torch.
set -e
cd "$(dirname "$0")/.."
steps=${1:-5}; threads=${2:-$(nproc)}
ref=../shared/reference/ref_model.py
[ -f "$ref" ] || { echo "bench: $ref not found (the reference lives beside the project)"; exit 1; }
/usr/bin/python3 -c "import torch" 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-torch >/dev/null; }
make -s build/gptc
declare -A sets sched cfg
sets[tiny]="vocab=200 eot=199 dim=64 heads=2 head_dim=32 n_emb=3 block=16 seq_len=256"
sched[tiny]=window_long=3,window_short=1;  cfg[tiny]=../shared/reference/configs/tiny_bench.json
sets[small]="vocab=50257 eot=50256 dim=256 heads=4 head_dim=64 n_emb=3 block=128 seq_len=1024"
sched[small]=window_long=27,window_short=13; cfg[small]=../shared/reference/configs/small_bench.json
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
field() { echo "$1" | sed -n "s/^$2: //p"; }
# pytorch CONFIG [ENV…]: "median_ms peak_mb" of the reference's bench
pytorch() {
    local cfg=$1; shift
    local p; p=$( { env "$@" /usr/bin/time -f 'maxrss_kb %M' /usr/bin/python3 $ref bench --config "$cfg" --steps "$steps" \
        --threads "$threads" --dtype float32; } 2>&1)
    echo "$(echo "$p" | sed -n 's/.* median \([0-9.]*\) ms\/step.*/\1/p') $(echo "$p" | awk '/maxrss_kb/ { printf "%.0f", $2 / 1024 }')"
}
printf '%-6s %10s %10s %11s %7s %7s %8s %8s %8s %14s %9s %10s\n' config cpu_ms ref_ms pytorch_ms cpu/pt ref/pt cpu_MB ref_MB \
    pt_MB pt_fallback_ms pt512_ms cpu/pt512
gbench() { build/gptc bench models/gpt2m.gptc "${args[@]}" --schedule "${sched[$c]}" --steps "$steps" --threads "$threads" "$@"; }
rounds_log="" split=""
for c in tiny small; do
    args=(); for kv in ${sets[$c]}; do args+=(--set "$kv"); done
    n=1; [ $c = small ] && n=${ROUNDS:-3}
    cpus=() pts=() rats=() p512s=() rats512=() pmb=0
    for ((r = 1; r <= n; r++)); do
        out=$(gbench --backend cpu)
        cpus+=("$(field "$out" median_ms_per_step)")
        core=$(field "$out" blas_core); fallback=$(field "$out" blas_fallback)
        read -r pms pmb <<<"$(pytorch "${cfg[$c]}" OPENBLAS_CORETYPE="$core")"
        pts+=("$pms"); rats+=("$(ratio "${cpus[-1]}" "$pms")")
        kernel=$(field "$out" products_kernel); line512=""
        if [ "$kernel" = "gptc's AVX-512 kernel" ]; then
            read -r p512 _ <<<"$(pytorch "${cfg[$c]}" OPENBLAS_CORETYPE=SkylakeX)"
            p512s+=("$p512"); rats512+=("$(ratio "${cpus[-1]}" "$p512")")
            line512=", PyTorch with AVX-512 kernels $p512 ms, ratio ${rats512[-1]}"
        fi
        [ $n -gt 1 ] && rounds_log+="  $c round $r: gptc ${cpus[-1]} ms, PyTorch $pms ms, ratio ${rats[-1]}$line512"$'\n'
        [ $c = small ] && [ $r -eq 1 ] && split=$(echo "$out" | grep -E '^(median_gradient_ms|median_update_ms|split_ms|products):')
    done
    cmb=$(field "$out" peak_rss_mb)
    refout=$(gbench --backend ref); rms=$(field "$refout" median_ms_per_step); rmb=$(field "$refout" peak_rss_mb)
    fms=-; [ -n "$fallback" ] && read -r fms _ <<<"$(pytorch "${cfg[$c]}")"
    cms=$(median "${cpus[@]}"); pms=$(median "${pts[@]}"); p512=- r512=-
    [ ${#p512s[@]} -gt 0 ] && { p512=$(median "${p512s[@]}"); r512=$(median "${rats512[@]}"); }
    printf '%-6s %10s %10s %11s %7s %7s %8s %8s %8s %14s %9s %10s\n' $c "$cms" "$rms" "$pms" "$(median "${rats[@]}")" \
        "$(ratio "$rms" "$pms")" "$cmb" "$rmb" "$pmb" "$fms" "$p512" "$r512"
done
echo
echo "the small config's rounds (gptc cpu and PyTorch alternating):"
printf '%s' "$rounds_log"
echo "gptc cpu, small config, round 1 (products: $kernel; OpenBLAS kernels: $core${fallback:+; OpenBLAS alone chose ${fallback%% *}}):"
echo "$split" | sed 's/^/  /'
