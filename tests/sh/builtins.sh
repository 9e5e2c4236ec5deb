#!/usr/bin/env bash
# The builtins that compose primitive ops, on every backend: tests/models/nn_builtins.gptc
# (reductions over axes, softmax, log_softmax, layer_norm, zeros/ones/full/iota/eye) and
# tests/models/attention_options.gptc (grouped-query heads, plain causal masking, documents
# alone, a window alone). On the same random parameters and batch, the cpu backend and the
# cuda backend on the CUDA emulator (f32) against ref in f64: the loss within 1e-6, every
# gradient within 1e-4 (relative, ‖a−b‖∞/‖b‖∞). Their gradients against finite differences
# are in test_model_fd. And tests/models/attention_by_hand.gptc: attention() against the same
# masks and head mapping written out with matmul, softmax and iota — its loss is their
# squared difference.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
batch=tests/golden/small_x04/inputs.safetensors   # 64 tokens below 80: the models' T and vocab
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
rel() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; if (b < 0) b = -b; printf "%.3e", d / b }'; }

# grad NAME MODEL BACKEND DTYPE [ENV…]: the loss on stdout, gradients in $tmp/NAME.st
grad() {
    local name=$1 model=$2 be=$3 dt=$4; shift 4
    env "$@" "$GPTC" grad "$model" --params "$tmp/p.st" --batch $batch --backend "$be" --dtype "$dt" \
        --grads "$tmp/$name.st" >"$tmp/out" 2>"$tmp/err" && sed -n 's/^loss: //p' "$tmp/out"
}

for m in nn_builtins attention_options; do
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
        if r=$("$GPTC" compare "$tmp/$be.st" "$tmp/ref.st" --tol 1e-4 --quiet); then pass "$m $be f32 grads ($r)"
        else fail "$m $be f32 grads" "$("$GPTC" compare "$tmp/$be.st" "$tmp/ref.st" --tol 1e-4 | grep -E 'tol|worst')"; fi
    done
done

# attention_by_hand: the squared difference is rounding alone (f64 ~1e-21, f32 ~1e-10); a
# wrong mask or head mapping gives 1e-2 or more
model=tests/models/attention_by_hand.gptc
"$GPTC" init $model -o "$tmp/p.st" --seed 1 >/dev/null 2>&1
for run in "ref f64 1e-18" "cpu f32 1e-8" "cuda f32 1e-8"; do
    set -- $run
    envs=(); [ $1 = cuda ] && envs=(GPTC_CUDA_EMULATE=1)
    got=$(grad hand $model $1 $2 "${envs[@]}")
    if [ -n "$got" ] && le "$got" "$3"; then pass "attention_by_hand on $1 $2: the builtin is the written-out attention ($got)"
    else fail "attention_by_hand on $1 $2: the builtin is the written-out attention" "squared difference '$got' > $3; $(tail -3 "$tmp/err")"; fi
done
