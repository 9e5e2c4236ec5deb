#!/usr/bin/env bash
# gptc step against the golden optimizer steps (tests/golden/*/after_step1, after_step2),
# schedules with steps = 3 as the golden README says. Tolerances (relative, ‖a−b‖∞/‖b‖∞):
#   after_step1 fed the golden gradients: f64 1e-12, f32 1e-5
#   after_step2 (second step with gptc's own gradient): f64 1e-9; f32 1e-4 for the Muon
#   tensors (blocks.*) and 1e-2 for all (Adam's first steps amplify float32 noise, README)
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
. tests/golden_sets.sh

check() {   # check NAME FILE REF TOL [--only PREFIX]
    local name=$1 f=$2 ref=$3 tol=$4; shift 4
    local r; r=$("$GPTC" compare "$f" "$ref" --tol "$tol" --quiet "$@")
    if [ $? -eq 0 ]; then pass "$name ($r)"; else fail "$name" "$r"; fi
}

for s in tiny_x02 small_x00 small_x04; do
    G=tests/golden/$s
    args=(models/gpt2m.gptc --set steps=3 --params $G/params.safetensors --batch $G/inputs.safetensors --schedule "${sched[$s]}" --step 0 --grads $G/grads.safetensors)
    for kv in ${cfg[$s]}; do args+=(--set "$kv"); done
    for mode in f64/ref f32/ref f32/cpu; do
        dt=${mode%/*} be=${mode#*/}
        if ! "$GPTC" step "${args[@]}" --dtype $dt --backend $be --out "$tmp/1.st" >"$tmp/log" 2>&1; then fail "$s $mode step 1 runs" "$(cat "$tmp/log")"; continue; fi
        if ! "$GPTC" step "${args[@]}" --dtype $dt --backend $be --count 2 --out "$tmp/2.st" >"$tmp/log" 2>&1; then fail "$s $mode step 2 runs" "$(cat "$tmp/log")"; continue; fi
        if [ $dt = f64 ]; then
            check "$s $mode after_step1" "$tmp/1.st" $G/after_step1.safetensors 1e-12
            check "$s $mode after_step2" "$tmp/2.st" $G/after_step2.safetensors 1e-9
        else
            check "$s $mode after_step1" "$tmp/1.st" $G/after_step1.safetensors 1e-5
            check "$s $mode after_step2 muon" "$tmp/2.st" $G/after_step2.safetensors 1e-4 --only blocks.
            check "$s $mode after_step2 all" "$tmp/2.st" $G/after_step2.safetensors 1e-2
        fi
    done
done
