#!/usr/bin/env bash
# The cuda backend's bf16 attention (tensor-core kernels for head dims that are multiples of
# 16) on the CUDA emulator against the ref backend in float64: tests/models/attention.gptc,
# head dims 16, 32, 64 and 128 with their own T and block, batches of several documents
# (one a single token), windows of 1 block, 3 blocks and more than T. gptc grad --dtype bf16
# within the bf16 tolerances of cuda_emu.sh: loss 2e-2, every gradient 5e-2 (relative,
# ‖a−b‖∞/‖b‖∞; proj's is the attention output's product with its gradient); each pass must
# have run its tensor-core kernel (GPTC_EMU_PROFILE). The emulator checks every access. A
# window pinned beyond int is an error of the run.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export GPTC_CUDA_EMULATE=1
M=tests/models/attention.gptc


# batch T → $tmp/batch-T.st: tokens below the eot (63) but for eots at a few positions
# (documents of 37, 113, 1 and 139 tokens, then the rest), targets anything
batch() {
    python3 - "$1" "$tmp/batch-$1.st" <<'PY'
import json, random, struct, sys
T, out = int(sys.argv[1]), sys.argv[2]
r = random.Random(T)
tokens = [r.randrange(63) for _ in range(T)]
for p in (37, 150, 151, 290):
    if p < T: tokens[p] = 63
targets = [r.randrange(64) for _ in range(T)]
head = json.dumps({"tokens": {"dtype": "I32", "shape": [T], "data_offsets": [0, 4 * T]},
                   "targets": {"dtype": "I32", "shape": [T], "data_offsets": [4 * T, 8 * T]}}).encode()
head += b" " * (-len(head) % 8)
with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(head)) + head + struct.pack("<%di" % (2 * T), *tokens, *targets))
PY
}

# head_dim T block
for c in "16 400 8" "32 448 32" "64 384 128" "128 480 24"; do
    set -- $c
    D=$1 T=$2 B=$3
    sets=(--set head_dim=$D --set seq_len=$T --set val_seq_len=$T --set block=$B)
    batch $T
    if ! "$GPTC" init $M "${sets[@]}" --seed $D -o "$tmp/p.st" >/dev/null 2>"$tmp/err"; then
        fail "D=$D init" "$(cat "$tmp/err")"; continue
    fi
    for w in 1 3 64; do
        name="D=$D T=$T block=$B window=$w"
        args=(grad $M "${sets[@]}" --params "$tmp/p.st" --batch "$tmp/batch-$T.st" --schedule window_long=$w)
        if ! ref=$("$GPTC" "${args[@]}" --backend ref --dtype f64 --grads "$tmp/gr.st" 2>"$tmp/err"); then
            fail "$name: ref runs" "$(tail -5 "$tmp/err")"; continue
        fi
        if ! out=$(GPTC_EMU_PROFILE=1 "$GPTC" "${args[@]}" --backend cuda --dtype bf16 --grads "$tmp/g.st" 2>"$tmp/err"); then
            fail "$name: cuda bf16 runs on the emulator" "$(tail -5 "$tmp/err")"; continue
        fi
        n=$(grep -cE " cg_attn_tc_(fwd|bwd_stats|bwd_dq|bwd_dkv)_bf16$" "$tmp/err")
        if [ "$n" = 4 ]; then pass "$name: the four tensor-core kernels ran"
        else fail "$name: the four tensor-core kernels ran" "$(grep cg_attn "$tmp/err")"; fi
        got=$(printf '%s\n' "$out" | sed -n 's/^loss: //p'); want=$(printf '%s\n' "$ref" | sed -n 's/^loss: //p')
        e=$(rel "$got" "$want")
        if le "$e" 2e-2; then pass "$name: loss (rel $e)"; else fail "$name: loss" "cuda $got, ref $want, rel $e > 2e-2"; fi
        r=$("$GPTC" compare "$tmp/g.st" "$tmp/gr.st" --tol 5e-2 --quiet)
        if [ $? -eq 0 ]; then pass "$name: gradients ($r)"; else fail "$name: gradients" "$r"; fi
    done
done
# a window beyond int (--schedule pins any value) is an error of the run that names the
# attention, as on cpu and ref (tests/sh/schedules.sh), not a window the kernels make up;
# the last case's kernels, from the cache
out=$("$GPTC" grad $M "${sets[@]}" --params "$tmp/p.st" --batch "$tmp/batch-$T.st" --schedule window_long=1e12 \
      --backend cuda --dtype bf16 2>&1); rc=$?
if [ $rc = 1 ] && [[ $out == *"ATTENTION %"*": window 1e+12 is not a valid number of blocks"* ]]; then
    pass "a pinned window of 1e12 blocks is an error naming the attention"
else fail "a pinned window of 1e12 blocks is an error naming the attention" "exit $rc" "$out"; fi
