#!/usr/bin/env bash
# val_memory.sh — validation longer than a training step (val_seq_len = 4 × seq_len) runs
# its logits in chunks of seq_len rows (ir_chunk_rows in the trainer):
#   - cpu backend, f32: the validation losses are those of the unchunked graph
#     (GPTC_EVAL_CHUNK=0) to 1e-6, the training is untouched, and the validation
#     executor's planned memory falls;
#   - the cuda backend on the CUDA emulator runs the chunked validation: from the same
#     parameters its loss is the cpu backend's, f32 within 1e-5, bf16 within 2e-3.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=passive   # two spinning thread pools on a busy machine crawl
G=tests/golden/tiny_x02
# a vocabulary large enough for the logits to be the validation's largest tensor, and a
# learning rate that moves the zero-initialized head within two steps
run=(models/gpt2m.gptc --data $G)
for kv in vocab=4096 eot=199 dim=32 heads=2 head_dim=16 n_emb=1 block=16 seq_len=64 val_seq_len=256 \
          val_tokens=256 val_every=1 lr_head=0.2; do run+=(--set "$kv"); done

"$GPTC" train "${run[@]}" --set steps=2 --out "$tmp/chunked" >"$tmp/chunked.out" 2>&1
rc1=$?
GPTC_EVAL_CHUNK=0 "$GPTC" train "${run[@]}" --set steps=2 --out "$tmp/whole" >"$tmp/whole.out" 2>&1
rc0=$?
[ $rc1 -eq 0 ] && [ $rc0 -eq 0 ] && pass "both runs finish" \
    || fail "both runs finish" "exit $rc1 / $rc0" "$(tail -3 "$tmp/chunked.out")" "$(tail -3 "$tmp/whole.out")"

losses() { grep -o "\"$2\": [^,]*" "$1/log.jsonl" | sed 's/.*: //'; }
# within A B TOL: every line of A within TOL (relative) of the same line of B, as many lines
within() {
    paste <(printf '%s\n' "$1") <(printf '%s\n' "$2") |
        awk -v tol="$3" '{ d = $1 - $2; if (d < 0) d = -d; if (NF != 2 || d > tol * ($2 < 0 ? -$2 : $2)) bad = 1 }
                         END { exit bad }'
}
v1=$(losses "$tmp/chunked" val_loss); v0=$(losses "$tmp/whole" val_loss)
[ "$(printf '%s\n' "$v1" | grep -c .)" -eq 3 ] && within "$v1" "$v0" 1e-6 \
    && pass "3 validation losses equal to the unchunked ones (1e-6)" \
    || fail "3 validation losses equal to the unchunked ones (1e-6)" "chunked: $(echo $v1)" "whole: $(echo $v0)"
[ "$(losses "$tmp/chunked" train_loss)" = "$(losses "$tmp/whole" train_loss)" ] \
    && pass "training losses identical" || fail "training losses identical"

# "memory plan: A MB (gradient step) + B MB (update) + C MB (validation)"
mem() { sed -n 's/^memory plan: .* + \([0-9.]*\) MB (validation)$/\1/p' "$1"; }
m1=$(mem "$tmp/chunked.out"); m0=$(mem "$tmp/whole.out")
if [ -n "$m1" ] && [ -n "$m0" ] && awk -v a="$m1" -v b="$m0" 'BEGIN { exit !(a < 0.75 * b) }'; then
    pass "validation memory plan falls ($m0 MB → $m1 MB)"
else
    fail "validation memory plan falls" "chunked: '$m1' MB, whole: '$m0' MB"
fi

# The trained parameters (step 0's validation reads them as they are: non-zero logits),
# validated by cpu and by cuda on the emulator.
init=(--set steps=1 --init "$tmp/chunked/checkpoint.safetensors")
"$GPTC" train "${run[@]}" "${init[@]}" --out "$tmp/cpu" >"$tmp/cpu.out" 2>&1 || fail "cpu from the checkpoint" "$(tail -3 "$tmp/cpu.out")"
cpu=$(losses "$tmp/cpu" val_loss | head -1)
for dt in f32:1e-5 bf16:2e-3; do
    GPTC_CUDA_EMULATE=1 "$GPTC" train "${run[@]}" "${init[@]}" --backend cuda --dtype ${dt%:*} --out "$tmp/${dt%:*}" \
        >"$tmp/${dt%:*}.out" 2>&1
    rc=$?
    v=$(losses "$tmp/${dt%:*}" val_loss | head -1)
    [ $rc -eq 0 ] && [ -n "$cpu" ] && within "$v" "$cpu" "${dt#*:}" \
        && pass "cuda ${dt%:*} (emulator) chunked validation = cpu within ${dt#*:} ($v, $cpu)" \
        || fail "cuda ${dt%:*} (emulator) chunked validation = cpu within ${dt#*:}" "exit $rc: '$v' vs '$cpu'" \
                "$(tail -3 "$tmp/${dt%:*}.out")"
done
