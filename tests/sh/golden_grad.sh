#!/usr/bin/env bash
# gptc grad on the golden sets (tests/golden, made by the float64 PyTorch reference):
# the loss, every gradient and every activation, in f64 (ref) and in f32 (ref, and the fused cpu backend), within the tolerances
# of tests/golden/README.md (loss 1e-10 / 1e-6, tensors 1e-9 / 1e-4; relative, ‖a−b‖∞/‖b‖∞).
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

. tests/golden_sets.sh   # cfg, sched, loss of each set
sets=("${golden_sets[@]}")


for s in "${sets[@]}"; do
    G=tests/golden/$s
    sets_args=(); for kv in ${cfg[$s]}; do sets_args+=(--set "$kv"); done
    for mode in f64/ref f32/ref f32/cpu; do
        dt=${mode%/*} be=${mode#*/}
        if [ $dt = f64 ]; then ltol=1e-10; ttol=1e-9; else ltol=1e-6; ttol=1e-4; fi
        out=$("$GPTC" grad models/gpt2m.gptc "${sets_args[@]}" --params $G/params.safetensors \
              --batch $G/inputs.safetensors --schedule "${sched[$s]}" --dtype $dt --backend $be \
              --grads "$tmp/g.st" --acts "$tmp/a.st" 2>"$tmp/err")
        rc=$?
        if [ $rc -ne 0 ]; then fail "$s $mode grad runs" "exit $rc" "$(cat "$tmp/err")"; continue; fi
        got=$(printf '%s\n' "$out" | sed -n 's/^loss: //p')
        e=$(rel "$got" "${loss[$s]}")
        if le "$e" $ltol; then pass "$s $mode loss (rel $e)"; else fail "$s $mode loss" "loss $got, golden ${loss[$s]}, rel $e > $ltol"; fi
        for what in grads acts; do
            f=$tmp/g.st; [ $what = acts ] && f=$tmp/a.st
            r=$("$GPTC" compare "$f" $G/$what.safetensors --tol $ttol --quiet)
            if [ $? -eq 0 ]; then pass "$s $mode $what ($r)"; else fail "$s $mode $what" "$("$GPTC" compare "$f" $G/$what.safetensors --tol $ttol | grep -E 'tol|worst')"; fi
        done
    done
done
