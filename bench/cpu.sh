#!/usr/bin/env bash
# CPU step time of gptc (the fused cpu backend and the ref interpreter, f32) against the
# PyTorch reference on the same machine, in one run: the tiny golden config and the small
# config (GPT-2 vocabulary, width 256, x00..x02). Kernels are compiled (or found in the
# cache) before the timed steps; gptc bench prints the setup time separately.
#   bench/cpu.sh [STEPS] [THREADS]     (defaults 5 and the number of cores)
# Needs ../shared/reference (the PyTorch reference) and Debian's python3-torch.
set -e
cd "$(dirname "$0")/.."
steps=${1:-5}; threads=${2:-$(nproc)}
ref=../shared/reference/ref_model.py
[ -f "$ref" ] || { echo "bench: $ref not found (the reference lives beside the project)"; exit 1; }
/usr/bin/python3 -c "import torch" 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-torch >/dev/null; }
make -s build/gptc
declare -A sets win cfg
sets[tiny]="vocab=200 eot=199 dim=64 heads=2 head_dim=32 n_emb=3 block=16 seq_len=256"
win[tiny]=3,1;  cfg[tiny]=../shared/reference/configs/tiny_bench.json
sets[small]="vocab=50257 eot=50256 dim=256 heads=4 head_dim=64 n_emb=3 block=128 seq_len=1024"
win[small]=27,13; cfg[small]=../shared/reference/configs/small_bench.json
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '%-6s %10s %10s %11s %7s %7s %8s %8s %8s\n' config cpu_ms ref_ms pytorch_ms cpu/pt ref/pt cpu_MB ref_MB pt_MB
for c in tiny small; do
    args=(); for kv in ${sets[$c]}; do args+=(--set "$kv"); done
    declare -A ms mb
    for be in cpu ref; do
        g=$(build/gptc bench models/gpt2m.gptc "${args[@]}" --window "${win[$c]}" --steps "$steps" --threads "$threads" --backend $be)
        ms[$be]=$(echo "$g" | sed -n 's/^median_ms_per_step: //p'); mb[$be]=$(echo "$g" | sed -n 's/^peak_rss_mb: //p')
    done
    p=$( { /usr/bin/time -f 'maxrss_kb %M' /usr/bin/python3 $ref bench --config "${cfg[$c]}" --steps "$steps" --threads "$threads" --dtype float32; } 2>&1)
    pms=$(echo "$p" | sed -n 's/.* median \([0-9.]*\) ms\/step.*/\1/p'); pmb=$(echo "$p" | awk '/maxrss_kb/ { printf "%.0f", $2 / 1024 }')
    printf '%-6s %10s %10s %11s %7s %7s %8s %8s %8s\n' $c "${ms[cpu]}" "${ms[ref]}" "$pms" "$(ratio "${ms[cpu]}" "$pms")" \
        "$(ratio "${ms[ref]}" "$pms")" "${mb[cpu]}" "${mb[ref]}" "$pmb"
done
