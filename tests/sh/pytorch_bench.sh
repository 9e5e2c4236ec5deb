#!/usr/bin/env bash
# The PyTorch benchmark model (bench/pytorch): in float64 on the CPU it reproduces every golden
# set (block masks, loss, gradients, activations, optimizer steps, trajectory); a golden loss
# moved by 1e-6 is reported as a mismatch (exit 1); a one-step tiny bench.py run on the CPU ends
# with its result line. Skipped when /usr/bin/python3 has no torch (Debian's python3-torch).
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
PY=/usr/bin/python3
if ! $PY -c 'import torch' >/dev/null 2>&1; then
    echo "skip: PyTorch benchmark model (no torch for $PY; apt-get install python3-torch)"
    exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

for set in tiny_x02 small_x00 small_x04; do
    expect_output "$set: float64 model = golden data" "^golden: OK" \
        $PY bench/pytorch/check_golden.py --golden tests/golden/$set
done

cp -r tests/golden/small_x04 "$tmp/moved"
$PY -c 'import json, sys
p = sys.argv[1] + "/golden.json"; g = json.load(open(p))
g["single_step"]["loss"] *= 1 + 1e-6
json.dump(g, open(p, "w"))' "$tmp/moved"
expect_status "a moved golden loss fails the check" 1 \
    $PY bench/pytorch/check_golden.py --golden "$tmp/moved" --no-trajectory

$PY bench/pytorch/bench.py --preset tiny --n-emb 3 --steps 1 --warmup 1 --device cpu >"$tmp/out" 2>"$tmp/err"; rc=$?
line=$(tail -n 1 "$tmp/out")
pat='^pytorch preset=tiny n_emb=3 tokens=256 step_ms=[0-9]+\.[0-9] peak_mb=[0-9]+ flops=[1-9]\.[0-9]{2}e[0-9]+ mfu=[0-9]+\.[0-9]{2}$'
if [ $rc -eq 0 ] && printf '%s\n' "$line" | grep -qE "$pat"; then
    pass "bench.py tiny on the CPU: $line"
else
    fail "bench.py tiny on the CPU: result line" "exit $rc, last line: $line" "$(tail -5 "$tmp/err")"
fi
[ "$(wc -l <"$tmp/out")" -eq 1 ] && pass "bench.py prints one line on stdout" || fail "bench.py prints one line on stdout" "$(cat "$tmp/out")"
expect_status "bench.py refuses the medium preset on the CPU" 1 $PY bench/pytorch/bench.py --preset medium --device cpu
