# lib.sh — helpers for shell tests: each check prints "pass: NAME" or "fail: NAME".
GPTC=${GPTC:-${GPTC_BUILD:-build-asan}/gptc}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

pass() { echo "pass: $1"; }
fail() { echo "fail: $1"; shift; [ $# -gt 0 ] && printf '    %s\n' "$@"; return 0; }

# expect_status NAME STATUS CMD… — the command exits with STATUS
expect_status() {
    local name=$1 want=$2; shift 2
    "$@" >/tmp/gptc-test-out.$$ 2>&1; local rc=$?
    if [ "$rc" -eq "$want" ]; then pass "$name"; else fail "$name" "exit $rc, expected $want: $*" "$(head -20 /tmp/gptc-test-out.$$)"; fi
    rm -f /tmp/gptc-test-out.$$
}

# expect_output NAME PATTERN CMD… — the command's output (stdout+stderr) matches PATTERN (grep -E)
expect_output() {
    local name=$1 pat=$2; shift 2
    local out; out=$("$@" 2>&1)
    if printf '%s\n' "$out" | grep -qE -- "$pat"; then pass "$name"; else fail "$name" "no /$pat/ in output of: $*" "$(printf '%s\n' "$out" | head -20)"; fi
}

# ckpt_int FILE NAME — the value of the I64 scalar NAME of a safetensors file
# (8 bytes of header length, the JSON header, then the data at the header's offsets)
ckpt_int() {
    local len off
    len=$(od -An -t u8 -N8 "$1" | tr -d ' ')
    off=$(head -c $((8 + len)) "$1" | tail -c +9 | grep -o "\"$2\":{[^}]*}" |
          sed -n 's/.*"data_offsets":\[\([0-9]*\),.*/\1/p')
    [ -n "$off" ] && od -An -t d8 -j $((8 + len + off)) -N8 "$1" | tr -d ' '
}

# make_shards DIR SEED NAME:TOKENS… — token shards of a 200-word vocabulary, seeded (eot 199
# for 2 % of the tokens): each a header (magic 20240520, version 1, token count, 253 zero
# ints) and the tokens as uint16
make_shards() {
    python3 - "$@" <<'EOF'
import os, random, struct, sys
d, seed = sys.argv[1], int(sys.argv[2])
random.seed(seed)
os.makedirs(d, exist_ok=True)
for spec in sys.argv[3:]:
    name, n = spec.rsplit(':', 1)
    n = int(n)
    toks = [199 if random.random() < 0.02 else random.randrange(199) for _ in range(n)]
    head = struct.pack('<3i', 20240520, 1, n) + bytes(4 * 253)
    open(os.path.join(d, name), 'wb').write(head + struct.pack('<%dH' % n, *toks))
EOF
}
