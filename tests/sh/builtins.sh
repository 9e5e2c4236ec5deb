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

for m in nn_builtins attention_options; do
    backends_match_ref $m tests/models/$m.gptc $batch
done

# attention_by_hand: the squared difference is rounding alone (f64 ~1e-21, f32 ~1e-10); a
# wrong mask or head mapping gives 1e-2 or more
model=tests/models/attention_by_hand.gptc
"$GPTC" init $model -o "$tmp/p.st" --seed 1 >/dev/null 2>&1
for run in "ref f64 1e-18" "cpu f32 1e-8" "cuda f32 1e-8"; do
    set -- $run
    envs=(); [ $1 = cuda ] && envs=(GPTC_CUDA_EMULATE=1)
    got=$(grad_loss hand $model $1 $2 $batch "${envs[@]}")
    if [ -n "$got" ] && le "$got" "$3"; then pass "attention_by_hand on $1 $2: the builtin is the written-out attention ($got)"
    else fail "attention_by_hand on $1 $2: the builtin is the written-out attention" "squared difference '$got' > $3; $(tail -3 "$tmp/err")"; fi
done
