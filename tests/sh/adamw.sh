#!/usr/bin/env bash
# Adam's decoupled weight decay (adam(…, wd = …), AdamW): one step of `gptc step` on ref f64
# equals the update written out in Python from the same gradients,
#   p' = p·(1 − lr·wd·wd_mul) − (lr / (1 − β1)) · m / (sqrt(v) / sqrt(1 − β2) + ε),
# m = (1 − β1)·g, v = (1 − β2)·g² (a fresh state), for a group with wd and one without; the
# cpu backend's step agrees in f32; wd_mul on a group without wd is warned about.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
M=tests/models/adamw.gptc
batch=tests/golden/small_x04/inputs.safetensors   # 64 tokens below 80
"$GPTC" init $M -o "$tmp/p.st" --seed 3 >/dev/null 2>&1
"$GPTC" grad $M --params "$tmp/p.st" --batch $batch --backend ref --dtype f64 --grads "$tmp/g.st" >/dev/null 2>&1
for be in ref cpu; do
    dt=f64; [ $be = cpu ] && dt=f32
    "$GPTC" step $M --params "$tmp/p.st" --batch $batch --step 0 --backend $be --dtype $dt \
        --out "$tmp/$be.st" >"$tmp/$be.log" 2>&1
done
expect_status "gptc step runs on ref and cpu" 0 test -f "$tmp/ref.st" -a -f "$tmp/cpu.st"
python3 - "$tmp" <<'PYEOF' >"$tmp/check" 2>&1
import sys
sys.path.insert(0, 'tests')
from safetensors_read import load
d = sys.argv[1]
p, g = load(d + '/p.st'), load(d + '/g.st')
groups = {'embed': (0.05, 0.8, 0.95, 1e-10, 0.1 * 2), 'head': (0.02, 0.9, 0.99, 1e-8, 0.0)}
for be, tol in (('ref', 1e-12), ('cpu', 1e-5)):
    out = load(d + '/%s.st' % be)
    for name, (lr, b1, b2, eps, wd) in groups.items():
        worst = 0.0
        for x, gr, y in zip(p[name], g[name], out[name]):
            m, v = (1 - b1) * gr, (1 - b2) * gr * gr
            want = x * (1 - lr * wd) - (lr / (1 - b1)) * m / (v ** 0.5 / (1 - b2) ** 0.5 + eps)
            worst = max(worst, abs(y - want) / max(1.0, abs(want)))
        decay = max(abs(x * lr * wd) for x in p[name])
        print('%s %s %s worst %.3e decay %.3e' % ('ok' if worst <= tol else 'BAD', be, name, worst, decay))
PYEOF
for be in ref cpu; do
    for n in embed head; do
        expect_output "AdamW step, $be, $n = the update written out" "^ok $be $n " cat "$tmp/check"
    done
done
expect_output "the decay is large enough to see (embed: above 1e-3)" "^ok ref embed worst .* decay [1-9]\.[0-9]*e-0[0-3]$" cat "$tmp/check"
sed 's/opt plain$/opt plain(wd_mul = 2)/' $M >"$tmp/warn.gptc"
expect_output "wd_mul on a group without wd is warned about" \
    "warn.gptc:15:.*warning: wd_mul has no effect: optimizer group 'plain' has no weight decay" "$GPTC" check "$tmp/warn.gptc"
