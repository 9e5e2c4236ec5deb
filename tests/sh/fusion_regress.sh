#!/usr/bin/env bash
# Fusion regressions: models the fused backends once got wrong (tests/models).
# For each model, on the same random parameters and batch: the cpu backend (f32) and the
# cuda backend on the CUDA emulator (f32) against ref in f64 — the loss within 1e-6 and
# every gradient within 1e-4 (relative, ‖a−b‖∞/‖b‖∞).
#   broadcast_reshape_grad  a reduction read at another row inside a per-row kernel (wrong gradients)
#   broadcast_sum_plan      a sum over an axis of size 1 ("SUM has no kernel plan")
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

rel() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; if (b < 0) b = -b; printf "%.3e", d / b }'; }
le()  { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

batch=tests/golden/small_x04/inputs.safetensors   # 64 tokens below 80: the models' T and vocab

# grad NAME MODEL BACKEND DTYPE [ENV…] — runs gptc grad into $tmp/NAME.st; prints the loss,
# nothing when it fails (the emulator fails the command on any access out of bounds)
grad() {
    local name=$1 model=$2 be=$3 dt=$4; shift 4
    env "$@" "$GPTC" grad "$model" --params "$tmp/p.st" --batch $batch --window 1,1 --backend "$be" --dtype "$dt" \
        --grads "$tmp/$name.st" >"$tmp/out" 2>"$tmp/err" && sed -n 's/^loss: //p' "$tmp/out"
}

for m in broadcast_reshape_grad broadcast_sum_plan; do
    model=tests/models/$m.gptc
    if ! "$GPTC" init $model -o "$tmp/p.st" --seed 1 >/dev/null 2>"$tmp/err"; then fail "$m init" "$(cat "$tmp/err")"; continue; fi
    ref=$(grad ref $model ref f64)
    if [ -z "$ref" ]; then fail "$m ref f64 grad runs" "$(tail -5 "$tmp/err")"; continue; fi
    for be in cpu cuda; do
        envs=(); [ $be = cuda ] && envs=(GPTC_CUDA_EMULATE=1)
        got=$(grad $be $model $be f32 "${envs[@]}")
        if [ -z "$got" ]; then fail "$m $be f32 grad runs" "$(tail -5 "$tmp/err")"; continue; fi
        e=$(rel "$got" "$ref")
        if le "$e" 1e-6; then pass "$m $be f32 loss (rel $e)"; else fail "$m $be f32 loss" "loss $got, ref $ref, rel $e > 1e-6"; fi
        r=$("$GPTC" compare "$tmp/$be.st" "$tmp/ref.st" --tol 1e-4 --quiet)
        if [ $? -eq 0 ]; then pass "$m $be f32 grads ($r)"
        else fail "$m $be f32 grads" "$("$GPTC" compare "$tmp/$be.st" "$tmp/ref.st" --tol 1e-4 | grep -E 'tol|worst')"; fi
    done
done
