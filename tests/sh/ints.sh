#!/usr/bin/env bash
# Integer tensors that compute. tests/models/int_ops.gptc on a 16-token batch: each op's
# probed values on ref (f64), cpu and the CUDA emulator (f32) against the values written
# out below (Python's // and %: floor, the sign of the divisor). tests/models/ngram.gptc
# (a hashed-bigram embedding, the position in the document, where/shift/cumsum on floats):
# cpu and the emulator against ref f64, the loss within 1e-6 and every gradient within
# 1e-4. (The emulator compiles every kernel with the real NVRTC first, where it loads.) Then the run-time errors of ref (a division by
# zero, a computed index out of range) and the fused backends' defined results for them.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# batch FILE TOKENS TARGETS — an inputs file of i32 tokens and targets (comma-separated)
batch() {
    python3 - "$@" <<'PY'
import json, struct, sys
path, toks, tgts = sys.argv[1], [int(v) for v in sys.argv[2].split(',')], [int(v) for v in sys.argv[3].split(',')]
n = len(toks)
head = json.dumps({'tokens': {'dtype': 'I32', 'shape': [n], 'data_offsets': [0, 4 * n]},
                   'targets': {'dtype': 'I32', 'shape': [n], 'data_offsets': [4 * n, 8 * n]}}).encode()
head += b' ' * (-len(head) % 8)
open(path, 'wb').write(struct.pack('<Q', len(head)) + head + struct.pack('<%di' % (2 * n), *(toks + tgts)))
PY
}

# probes FILE — "name: v0 v1 …" for every tensor of a safetensors file (F32/F64), sorted
probes() {
    python3 - "$1" <<'PY'
import json, struct, sys
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
for k, v in sorted(json.loads(b[8:8 + n]).items()):
    if k == '__metadata__': continue
    s, e = v['data_offsets']
    fmt = {'F32': 'f', 'F64': 'd'}[v['dtype']]
    vals = struct.unpack('<%d%s' % ((e - s) // struct.calcsize(fmt), fmt), b[8 + n + s:8 + n + e])
    print(k + ': ' + ' '.join('%g' % x for x in vals))
PY
}

tokens=3,8,0,15,9,4,11,7,1,14,5,12,8,2,10,6
batch "$tmp/b16.st" $tokens 8,0,15,9,4,11,7,1,14,5,12,8,2,10,6,3
want="cmp: 17 44 25 42 42 25 42 8 25 42 8 42 44 25 42 8
fcmp: 0 1 0 1 1 0 1 0 0 1 0 1 1 0 1 0
floordiv: -2 0 -3 2 0 -2 1 -1 -3 2 -1 1 0 -2 0 -1
floordiv_neg: 1 0 2 -3 -1 1 -1 0 2 -2 1 -2 0 2 -1 0
frun: 3 11 11 26 35 39 50 57 58 72 77 89 97 99 109 115
hash: 4 15 7 8 14 3 12 0 6 9 2 11 15 5 13 1
mod: 1 0 1 1 1 2 0 2 2 0 0 1 0 0 2 1
mod_neg: -2 0 -2 -2 -2 -1 0 -1 -1 0 0 -2 0 0 -1 -2
next: 0 15 9 4 11 7 1 14 5 12 8 2 10 6 -1 -1
prev: 99 3 8 0 15 9 4 11 7 1 14 5 12 8 2 10
run: 3 11 11 26 35 39 50 57 58 72 77 89 97 99 109 115
w: -3 8 0 15 9 -4 11 7 -1 14 -5 12 8 -2 10 -6"
m=tests/models/int_ops.gptc
"$GPTC" init $m -o "$tmp/p16.st" --seed 1 >/dev/null 2>&1 || fail "int_ops init"
for be in ref cpu cuda; do
    dt=f32; [ $be = ref ] && dt=f64
    if GPTC_CUDA_EMULATE=1 "$GPTC" grad $m --params "$tmp/p16.st" --batch "$tmp/b16.st" --backend $be \
        --dtype $dt --acts "$tmp/acts_$be.st" >/dev/null 2>"$tmp/err"; then
        got=$(probes "$tmp/acts_$be.st")
        if [ "$got" = "$want" ]; then pass "int_ops $be $dt: every op's values"
        else fail "int_ops $be $dt: every op's values" "$(diff <(echo "$got") <(echo "$want"))"; fi
    else fail "int_ops $be $dt runs" "$(tail -3 "$tmp/err")"; fi
done

# the n-gram model on 64 tokens below 80, 8 documents (eot 0)
backends_match_ref ngram tests/models/ngram.gptc tests/golden/small_x04/inputs.safetensors
# a divisor of 0 and a computed index past the table: ref stops naming the node; cpu and
# the emulator run (x // 0 = 0, the index clamped)
sed -e 's|^    d = tokens - 8|    d = (tokens - 8) // (tokens - 3)|' -e 's|embed\[h\]|embed[h + 7]|' tests/models/int_ops.gptc >"$tmp/bad.gptc"
"$GPTC" grad "$tmp/bad.gptc" --params "$tmp/p16.st" --batch "$tmp/b16.st" --backend ref >/dev/null 2>"$tmp/err"
if grep -q "bad.gptc:19: FLOORDIV %[0-9]*: division by zero (element 0: -5 by 0)" "$tmp/err"; then pass "ref: division by zero names the node"
else fail "ref: division by zero names the node" "$(cat "$tmp/err")"; fi
sed -i 's|^    d = (tokens - 8) // (tokens - 3)|    d = tokens - 8|' "$tmp/bad.gptc"
"$GPTC" grad "$tmp/bad.gptc" --params "$tmp/p16.st" --batch "$tmp/b16.st" --backend ref >/dev/null 2>"$tmp/err"
if grep -q "GATHER %[0-9]*: index 22 (element 1) is outside \[0, 16)" "$tmp/err"; then pass "ref: a computed index out of range names the node"
else fail "ref: a computed index out of range names the node" "$(cat "$tmp/err")"; fi
for be in cpu cuda; do
    if GPTC_CUDA_EMULATE=1 "$GPTC" grad "$tmp/bad.gptc" --params "$tmp/p16.st" --batch "$tmp/b16.st" \
        --backend $be --dtype f32 >/dev/null 2>"$tmp/err"; then pass "$be: a computed index out of range is clamped"
    else fail "$be: a computed index out of range is clamped" "$(tail -3 "$tmp/err")"; fi
done
