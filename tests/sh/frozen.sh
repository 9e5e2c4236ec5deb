#!/usr/bin/env bash
# Frozen parameters (`opt none`, tests/models/frozen.gptc): `gptc grad` writes no gradient
# for one and the others' equal those of the same model with it trained; the gradient step
# has no scatter-add into its table; three training steps on cpu, ref and the cuda backend
# on the CUDA emulator leave it bit for bit at its initial value while the trained ones move,
# and the checkpoint holds no optimizer state for it; `gptc step` takes a gradient file
# without it. Misuse of `none` is an error (tests/bad/frozen.gptc).
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
M=tests/models/frozen.gptc
batch=tests/golden/small_x04/inputs.safetensors
sed 's/opt none/opt a/' $M >"$tmp/trained.gptc"
"$GPTC" init $M -o "$tmp/p.st" --seed 2 >/dev/null 2>&1
"$GPTC" grad $M --params "$tmp/p.st" --batch $batch --grads "$tmp/g.st" >/dev/null 2>&1
"$GPTC" grad "$tmp/trained.gptc" --params "$tmp/p.st" --batch $batch --grads "$tmp/gt.st" >/dev/null 2>&1
"$GPTC" step $M --params "$tmp/p.st" --batch $batch --step 0 --out "$tmp/step.st" >"$tmp/step.log" 2>&1
for be in cpu ref cuda; do
    env=(); dt=f32; [ $be = cuda ] && env=(GPTC_CUDA_EMULATE=1); [ $be = ref ] && dt=f64
    env "${env[@]}" "$GPTC" train $M --data tests/golden/tiny_x02 --init "$tmp/p.st" --backend $be --dtype $dt --quiet \
        --out "$tmp/run-$be" >"$tmp/$be.log" 2>&1 || tail -3 "$tmp/$be.log"
done
python3 - "$tmp" <<'PYEOF' >"$tmp/check" 2>&1
import sys
sys.path.insert(0, 'tests')
from safetensors_read import load
t = sys.argv[1]
p, g, gt, step = load(t + '/p.st'), load(t + '/g.st'), load(t + '/gt.st'), load(t + '/step.st')
def report(ok, name): print(('pass' if ok else 'fail') + ': ' + name)
report(sorted(g) == ['embed', 'head'], 'grad: no gradient for the frozen parameter (%s)' % sorted(g))
report(all(g.get(k) == gt.get(k) for k in ('embed', 'head')), 'grad: the trained parameters\' gradients as with it trained')
report(step.get('feature') == p['feature'] and step.get('embed') != p['embed'],
       'step: the frozen parameter unchanged, the others updated')
for be in ('cpu', 'ref', 'cuda'):
    c = load(t + '/run-%s/checkpoint.safetensors' % be)
    kept = c.get('feature') is not None and all(abs(a - b) == 0 for a, b in zip(c['feature'], p['feature']))
    moved = c.get('embed') is not None and c['embed'] != p['embed']
    report(kept and moved, '%s train: the frozen parameter bit for bit at its initial value, the others moved' % be)
    report('adam_m.embed' in c and not any(k.endswith('.feature') for k in c),
           '%s train: optimizer state for the trained parameters only' % be)
PYEOF
grep -E '^(pass|fail): ' "$tmp/check" | while read -r line; do
    case $line in pass:*) pass "${line#pass: }" ;; *) fail "${line#fail: }" ;; esac
done
grep -qE '^(pass|fail): ' "$tmp/check" || fail "frozen checks ran" "$(tail -5 "$tmp/check")"
# the gradient step scatters into the trained table only
if "$GPTC" compile $M --target c -o "$tmp/c" >"$tmp/out" 2>&1; then
    n=$(sed -n '/^######## grad/,/^######## update/p' "$tmp/c/plan.txt" | awk '$2 == "scatter_add"' | wc -l)
    if [ "$n" -eq 1 ]; then pass "one scatter-add in the gradient step (the trained table's)"
    else fail "one scatter-add in the gradient step" "$n scatter-adds"; fi
else fail "frozen.gptc compiles" "$(tail -3 "$tmp/out")"; fi
