#!/usr/bin/env bash
# tools/gpu-check.sh end to end, on the CUDA emulator: a GPU is lent rarely and for minutes,
# so the script that uses it must work the first time. A dry run sized for the emulator
# (GPU_CHECK_MODEL: a dim-32 model in place of the presets, 4 curve steps, two of the
# golden sets, limits × 4): every stage but PyTorch's (skipped in a dry run) must pass,
# with its figures in the table, and the profile's table must add up.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

make_shards "$tmp/data" 4 check_train_000000.bin:3000 check_val_000000.bin:600
model=""
for kv in vocab=200 eot=199 dim=32 heads=4 head_dim=8 block=4 seq_len=64 val_seq_len=64 val_tokens=128; do
    model+="--set $kv "
done
GPTC=$PWD/$GPTC GPU_CHECK_ASSUME_GPU=1 GPTC_CUDA_EMULATE=1 GPU_CHECK_MODEL="$model" GPU_CHECK_CURVE_STEPS=4 \
    GPU_CHECK_DATA=$tmp/data GPU_CHECK_SLOW=4 GPU_CHECK_SETS="small_x00 small_x04" OUT=$tmp/out bash tools/gpu-check.sh >"$tmp/log" 2>&1
rc=$?
S=$tmp/out/summary.txt
if [ $rc -eq 0 ] && [ -f "$S" ]; then pass "gpu-check.sh runs to its end (exit 0) and writes summary.txt"
else fail "gpu-check.sh runs to its end" "exit $rc" "$(tail -20 "$tmp/log")"; fi

# stage | result | figures
result() { awk -F' [|] ' -v s="$1" '{ sub(/ +$/, "", $1) } $1 == s { sub(/ +$/, "", $2); print $2 }' "$S" 2>/dev/null; }
for s in small_x00 small_x04; do
    for dt in f32 bf16; do
        r=$(result "c. golden $s $dt")
        if [ "$r" = PASS ]; then pass "golden $s $dt: PASS"; else fail "golden $s $dt" "result '$r'" "$(grep -F "c. golden $s $dt" "$S")"; fi
    done
done
for s in "b. build" "d. curves" "e. gptc x00 (n_emb 1)" "e. gptc x04 (n_emb 5)" "f. profile x04" "g. per-embedding cost"; do
    r=$(result "$s")
    case $r in
    ok | LOOK) pass "$s: $r" ;;
    *) fail "$s" "result '$r'" "$(grep -F "$s" "$S")" ;;
    esac
done
r=$(result "g. pytorch n_emb 1")
if [ "$r" = SKIP ]; then pass "g. pytorch is skipped in a dry run"; else fail "g. pytorch in a dry run" "result '$r'"; fi

# the profile table: every kind's measured time, and the kinds add up to "all"
if awk -F' [|] ' '/^kind \(x04/ { on = 1; next }
        on && $1 ~ /^all / { all = $3; done = 1; exit }
        on && NF >= 5 { sum += $3; kinds++ }
        END { d = sum - all; exit !(done && kinds >= 3 && all > 0 && d < 0.01 && d > -0.01) }' "$S"; then
    pass "the profile's table lists the kinds of kernel and adds up"
else fail "the profile's table" "$(sed -n '/^kind (x04/,$p' "$S")"; fi

# gptc alone gets the toolkit's library path
if grep -q "^gptc's LD_LIBRARY_PATH=.*/usr/local/cuda/lib64" "$tmp/out/env.log" && ! grep -q '^LD_LIBRARY_PATH=' "$tmp/out/env.log"; then
    pass "LD_LIBRARY_PATH is set for gptc alone"
else fail "LD_LIBRARY_PATH for gptc alone" "$(grep -i ld_library "$tmp/out/env.log")"; fi
