#!/usr/bin/env bash
# Every schedule a graph reads is set by name at each step, whatever the model calls it:
# tests/models/ramp.gptc multiplies a layer by its own schedule `ramp` (0 at step 0, 1 from
# step 4). Trained 6 steps, the cpu backend, the ref backend and the cuda backend on the
# CUDA emulator log the same losses (f32, within 1e-5): none reads the schedule as 0 and
# none stops for want of its value.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
run=(train tests/models/ramp.gptc --data tests/golden/tiny_x02 --quiet --dtype f32)
losses() { sed -n 's/.*"train_loss": \([-0-9.e+]*\).*/\1/p' "$1/log.jsonl"; }
for be in cpu ref cuda; do
    env=(); [ $be = cuda ] && env=(GPTC_CUDA_EMULATE=1)
    if env "${env[@]}" "$GPTC" "${run[@]}" --backend $be --out "$tmp/$be" >"$tmp/$be.log" 2>&1; then pass "ramp trains on $be"
    else fail "ramp trains on $be" "$(tail -3 "$tmp/$be.log")"; fi
done
for be in ref cuda; do
    worst=$(paste <(losses "$tmp/$be") <(losses "$tmp/cpu") | awk '
        { d = $1 - $2; if (d < 0) d = -d; if (d / $2 > w) w = d / $2; n++ } END { printf "%d %.3e", n, w }')
    if [ "${worst%% *}" = 6 ] && awk -v w="${worst#* }" 'BEGIN { exit !(w <= 1e-5) }'; then
        pass "ramp: $be and cpu log the same 6 losses (worst rel ${worst#* })"
    else fail "ramp: $be and cpu log the same 6 losses" "$worst"; fi
done
