#!/usr/bin/env bash
# Fusion regressions: models the fused backends once got wrong (tests/models).
# For each model, on the same random parameters and batch: the cpu backend (f32) and the
# cuda backend on the CUDA emulator (f32) against ref in f64 — the loss within 1e-6 and
# every gradient within 1e-4 (relative, ‖a−b‖∞/‖b‖∞).
#   broadcast_reshape_grad  a reduction read at another row inside a per-row kernel (wrong gradients)
#   broadcast_sum_plan      a sum over an axis of size 1 ("SUM has no kernel plan")
#   interleaved_grads       two families of gradient kernels alternating, merged into one
#                           kernel each (below: its plan)
#   activations             every activation builtin on pre-activations past float's exp
#                           range (hand-written sigmoids gave NaN gradients there)
#   column_sums             sums over an outer axis, which C kernels run by lane groups of
#                           16, 8 and 4 adjacent columns, or row at a time (below: its C)
#   inner_axis_concat       concats and pads along the innermost axis, which C kernels cut
#                           into one loop a segment (below: its C)
# and split_reductions: reductions of few long rows, which the cuda backend splits along the
# reduced axis across blocks (below).
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT


batch=tests/golden/small_x04/inputs.safetensors   # 64 tokens below 80: the models' T and vocab

for m in broadcast_reshape_grad broadcast_sum_plan interleaved_grads activations column_sums inner_axis_concat; do
    backends_match_ref $m tests/models/$m.gptc $batch
done

# interleaved_grads: per layer, the 3 weights' gradients (sums over T of [T, 32]) in one kernel,
# and their sums of the 32 columns in one more; the embeddings' accumulations merge likewise
if "$GPTC" compile tests/models/interleaved_grads.gptc --target c -o "$tmp/il" >"$tmp/out" 2>&1; then
    # "N loop k_… [64, 32] axis=0 roots=R …" in the gradient step
    merged=$(sed -n '/^######## grad/,/^######## update/p' "$tmp/il/plan.txt" |
             awk '$2 == "loop" && $6 == "axis=0" { n++; if ($7 == "roots=3") m++ } END { print n + 0, m + 0 }')
    if [ "$merged" = "2 2" ]; then pass "interleaved_grads: each layer's 3 weight gradients in one kernel"
    else fail "interleaved_grads: each layer's 3 weight gradients in one kernel"               "column-sum kernels, of them with 3 roots: $merged (want 2 2)"; fi
else fail "interleaved_grads compiles" "$(tail -5 "$tmp/out")"; fi

# column_sums: the gradient step's C has lane groups of each width (the gains' gradients)
if "$GPTC" compile tests/models/column_sums.gptc --target c -o "$tmp/cs" >"$tmp/out" 2>&1; then
    widths=$(sed -n 's/.*for (long w = 0; w < \([0-9]*\); w++) {.*/\1/p' "$tmp/cs/grad.c" | sort -un | tr '\n' ' ')
    if [ "$widths" = "4 8 16 " ]; then pass "column_sums: C lane groups of 4, 8 and 16 columns"
    else fail "column_sums: C lane groups of 4, 8 and 16 columns" "lane widths in grad.c: '$widths'"; fi
else fail "column_sums compiles" "$(tail -5 "$tmp/out")"; fi

# inner_axis_concat: elementwise C kernels whose inner loop is cut where a concat or pad
# changes sides (a loop that starts past 0), in the forward and in the gradient
if "$GPTC" compile tests/models/inner_axis_concat.gptc --target c -o "$tmp/iac" >"$tmp/out" 2>&1; then
    n=$(grep -c 'for (long i[0-9] = [1-9][0-9]*; ' "$tmp/iac/grad.c")
    if [ "$n" -ge 4 ]; then pass "inner_axis_concat: C loops cut into segments ($n segments past the first)"
    else fail "inner_axis_concat: C loops cut into segments" "$n loops start past 0 in grad.c, want 4 or more"; fi
else fail "inner_axis_concat compiles" "$(tail -5 "$tmp/out")"; fi

# a table gathered by the same tokens in two layers (x02's 3 value embeddings, each read by
# two layers) is one gather: one scatter-add per table in the gradient step (3 + 3 embeddings)
if "$GPTC" compile models/gpt2m_x02.gptc --preset tiny --target c -o "$tmp/x02" >"$tmp/out" 2>&1; then
    n=$(sed -n '/^######## grad/,/^######## update/p' "$tmp/x02/plan.txt" | awk '$2 == "scatter_add"' | wc -l)
    if [ "$n" -eq 6 ]; then pass "x02: one scatter-add per embedding table (6)"
    else fail "x02: one scatter-add per embedding table" "$n scatter-adds in the gradient step, want 6"; fi
    # the per-head kernels over [T, dim] (an rms_norm's gradient read as [T, heads, head_dim]):
    # the inner loop as two nested loops, heads outside, a head's features inside
    n=$(grep -c 'for (long i1l = 0; i1l < 32; i1l++)' "$tmp/x02/grad.c")
    if [ "$n" -ge 1 ]; then pass "x02: per-head elementwise kernels as nested loops ($n)"
    else fail "x02: per-head elementwise kernels as nested loops" "no loop over i1l < 32 in grad.c"; fi
    # the soft-capped cross-entropy's kernel: the cap's 1/sqrt computed in its first pass and
    # kept in a row buffer for the others, the logsumexp's exponentials kept for the gradient
    ce=$(awk '/^void k_/ { f = $0 } /ce0\[i[0-9]\] \* il0/ { print f }' "$tmp/x02/grad.c" | head -1)
    if [ -n "$ce" ] && grep -A40 -F "$ce" "$tmp/x02/grad.c" | grep -q 'c0\[i[0-9]\] = .*;'; then
        pass "x02: the cross-entropy's kernel keeps its costly values in row buffers"
    else fail "x02: the cross-entropy's kernel keeps its costly values in row buffers" \
        "no kernel of grad.c reads ce0[…] * il0 and stores c0[…]"; fi
else fail "x02 tiny compiles" "$(tail -5 "$tmp/out")"; fi

# split_reductions: rows too few to fill a GPU, so the CUDA kernels split the reduced axis
# into chunks across blocks (partials, then their combination in chunk order). As
# configured (T = 4096): the scale's gradient, a sum over T of [T, 512], and a norm over T
# of 64 features; with 64 rows of 4096 logits, the cross-entropy's logsumexp forward and
# backward (one kernel: the backward's seed is a constant). In plan.txt every reduction kernel of 65,536 points or more launches at least
# 132 blocks (one per SM of an H100); on the emulator, which checks every access of both
# launches (partials included), the loss and gradients agree with ref f64.
m=split_reductions model=tests/models/$m.gptc
python3 - "$tmp/b4096.st" <<'EOF'
import json, random, struct, sys
T, V = 4096, 64
r = random.Random(7)
tok = [r.randrange(V) for _ in range(T)]
data = tok + tok[1:] + [0]
head = json.dumps({'tokens': {'dtype': 'I32', 'shape': [T], 'data_offsets': [0, 4 * T]},
                   'targets': {'dtype': 'I32', 'shape': [T], 'data_offsets': [4 * T, 8 * T]}}).encode()
head += b' ' * (-len(head) % 8)
open(sys.argv[1], 'wb').write(struct.pack('<Q', len(head)) + head + struct.pack('<%di' % len(data), *data))
EOF
for cfg in rows logits; do
    if [ $cfg = rows ]; then sets=(); b=$tmp/b4096.st
    else sets=(--set seq_len=64 --set val_seq_len=64 --set val_tokens=128 --set vocab=4096); b=$batch; fi
    if ! GPTC_CUDA_EMULATE=1 "$GPTC" compile $model "${sets[@]}" --target cuda --precision f32 -o "$tmp/c-$cfg" \
            >"$tmp/out" 2>&1; then
        fail "$m ($cfg) compiles for cuda" "$(tail -5 "$tmp/out")"; continue
    fi
    # "N loop k_… [A, B] axis=K roots=R launch=BLOCKSxTHREADS …": reductions of >= 65536 points
    big=$(awk '$2 == "loop" && /axis=[0-9]/ {
                   s = $0; sub(/^[^[]*\[/, "", s); sub(/\].*/, "", s); n = split(s, d, ", "); p = 1
                   for (i = 1; i <= n; i++) p *= d[i]
                   l = $0; sub(/.*launch=/, "", l); sub(/x.*/, "", l)
                   if (p >= 65536) { k++; if (l + 0 < 132) bad = bad " " $1 ":" l }
               } END { print k + 0, bad }' "$tmp/c-$cfg/plan.txt")
    read -r nbig nsmall <<<"$big"
    if [ "$nbig" -ge 1 ] && [ -z "$nsmall" ]; then pass "$m ($cfg): $nbig large reductions, each at least 132 blocks"
    else fail "$m ($cfg): large reductions fill 132 SMs" "$nbig kernels; kernel:blocks below 132:$nsmall"; fi
    if ! "$GPTC" init $model "${sets[@]}" -o "$tmp/p.st" --seed 1 >/dev/null 2>"$tmp/err"; then
        fail "$m ($cfg) init" "$(cat "$tmp/err")"; continue
    fi
    for be in ref cuda; do
        dt=f32 envs=(GPTC_CUDA_EMULATE=1); [ $be = ref ] && dt=f64 envs=()
        loss=$(env "${envs[@]}" "$GPTC" grad $model "${sets[@]}" --params "$tmp/p.st" --batch "$b" \
               --backend $be --dtype $dt --grads "$tmp/$be.st" 2>"$tmp/err" | sed -n 's/^loss: //p')
        if [ -z "$loss" ]; then fail "$m ($cfg) $be $dt grad runs" "$(tail -5 "$tmp/err")"; continue 2; fi
        [ $be = ref ] && ref=$loss
    done
    match_ref "$m ($cfg) cuda f32" "$loss" "$ref" "$tmp/cuda.st" "$tmp/ref.st"
done
