#!/usr/bin/env bash
# Every variant in models/examples/ (files added later are checked too): `gptc check` and
# `gptc summary` on the tiny and small presets, then one gradient on the tiny preset with a
# 200-word vocabulary, at parameters drawn at random around the model's initialization
# (which zeroes the output layer, and so most gradients): in float64 on ref, the loss against
# a central finite difference along a random direction v, (L(θ+hv) − L(θ−hv)) / 2h = ⟨∇L, v⟩
# (relative 1e-5; the loss is printed to 12 digits); the cpu backend in float32 against ref,
# the loss within 1e-6 and every gradient within 1e-4 (relative, ‖a−b‖∞/‖b‖∞).
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT


# params.py start P SEED H OUT OUT+ OUT-: OUT = P + U(-0.1, 0.1) per value, OUT± = OUT ± H·v
#   with v uniform in (-1, 1)
# params.py dot G SEED: ⟨G, v⟩
# (float64 safetensors: 8 bytes of header length, the JSON header, the data; each tensor's
# values drawn from SEED and its name, so files that order their tensors differently agree)
cat >"$tmp/params.py" <<'EOF'
import array, json, random, struct, sys
def load(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    head = json.loads(b[8:8 + n])
    return b[:8 + n], [(k, v) for k, v in head.items() if k != '__metadata__'], array.array('d', b[8 + n:])
def draws(tensors, seed, what):   # (start, values) of each tensor: U(-1, 1)
    for name, t in tensors:
        assert t['dtype'] == 'F64', name
        lo, hi = (o // 8 for o in t['data_offsets'])
        r = random.Random('%s:%s:%s' % (seed, what, name)).random
        yield lo, [2 * r() - 1 for _ in range(hi - lo)]
head, tensors, data = load(sys.argv[2])
if sys.argv[1] == 'start':
    seed, h = sys.argv[3], float(sys.argv[4])
    for lo, u in draws(tensors, seed, 'theta'):
        data[lo:lo + len(u)] = array.array('d', (x + 0.1 * d for x, d in zip(data[lo:lo + len(u)], u)))
    open(sys.argv[5], 'wb').write(head + data.tobytes())
    for sign, out in ((1, sys.argv[6]), (-1, sys.argv[7])):
        moved = array.array('d', data)
        for lo, v in draws(tensors, seed, 'v'):
            moved[lo:lo + len(v)] = array.array('d', (x + sign * h * d for x, d in zip(data[lo:lo + len(v)], v)))
        open(out, 'wb').write(head + moved.tobytes())
else:
    print('%.17g' % sum(sum(g * d for g, d in zip(data[lo:lo + len(v)], v)) for lo, v in draws(tensors, sys.argv[3], 'v')))
EOF

sets=(--preset tiny --set vocab=200 --set eot=199)
batch=tests/golden/tiny_x02/inputs.safetensors   # 256 tokens below 200
h=1e-5

# grad MODEL PARAMS BACKEND DTYPE [GRADS] — prints the loss, nothing when gptc grad fails
grad() {
    local g=(); [ -n "${5:-}" ] && g=(--grads "$5")
    "$GPTC" grad "$1" "${sets[@]}" --params "$2" --batch $batch --backend "$3" --dtype "$4" "${g[@]}" \
        >"$tmp/out" 2>"$tmp/err" && sed -n 's/^loss: //p' "$tmp/out"
}

for m in models/examples/*.gptc; do
    n=$(basename "$m" .gptc)
    for p in tiny small; do
        expect_status "$n: check --preset $p" 0 "$GPTC" check "$m" --preset $p
        expect_output "$n: summary --preset $p" "^total parameters" "$GPTC" summary "$m" --preset $p
    done
    if ! "$GPTC" init "$m" "${sets[@]}" --dtype f64 -o "$tmp/init.st" --seed 1 >/dev/null 2>"$tmp/err"; then
        fail "$n: init" "$(cat "$tmp/err")"; continue
    fi
    python3 "$tmp/params.py" start "$tmp/init.st" 1 $h "$tmp/p.st" "$tmp/plus.st" "$tmp/minus.st"

    ref=$(grad "$m" "$tmp/p.st" ref f64 "$tmp/ref.st")
    if [ -z "$ref" ]; then fail "$n: ref f64 grad runs" "$(tail -5 "$tmp/err")"; continue; fi
    lp=$(grad "$m" "$tmp/plus.st" ref f64) lm=$(grad "$m" "$tmp/minus.st" ref f64)
    fd=$(awk -v a="$lp" -v b="$lm" -v h=$h 'BEGIN { printf "%.12g", (a - b) / (2 * h) }')
    dot=$(python3 "$tmp/params.py" dot "$tmp/ref.st" 1)
    e=$(rel "$fd" "$dot")
    if le "$e" 1e-5; then pass "$n: ref f64 gradient along v = finite difference (rel $e)"
    else fail "$n: ref f64 gradient along v = finite difference" "<grad, v> $dot, (L+ - L-)/2h $fd, rel $e > 1e-5"; fi

    got=$(grad "$m" "$tmp/p.st" cpu f32 "$tmp/cpu.st")
    if [ -z "$got" ]; then fail "$n: cpu f32 grad runs" "$(tail -5 "$tmp/err")"; continue; fi
    match_ref "$n: cpu f32" "$got" "$ref" "$tmp/cpu.st" "$tmp/ref.st"
done
