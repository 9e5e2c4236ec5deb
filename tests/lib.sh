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

# rel A B: |A − B| / |B|; le A B: A <= B (numbers as awk reads them)
rel() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; if (b < 0) b = -b; printf "%.3e", d / b }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

# match_ref LABEL LOSS REF_LOSS GRADS REF_GRADS — a backend against ref: "LABEL loss" passes
# when LOSS is within 1e-6 of REF_LOSS (relative), "LABEL grads" when every tensor of GRADS
# is within 1e-4 of REF_GRADS's (relative, ‖a−b‖∞/‖b‖∞, gptc compare)
match_ref() {
    local label=$1 got=$2 ref=$3 e r
    e=$(rel "$got" "$ref")
    if le "$e" 1e-6; then pass "$label loss (rel $e)"
    else fail "$label loss" "loss $got, ref $ref, rel $e > 1e-6"; fi
    if r=$("$GPTC" compare "$4" "$5" --tol 1e-4 --quiet); then pass "$label grads ($r)"
    else fail "$label grads" "$("$GPTC" compare "$4" "$5" --tol 1e-4 | grep -E 'tol|worst')"; fi
}

# grad_loss NAME MODEL BACKEND DTYPE BATCH [ENV…] — gptc grad of MODEL at the parameters
# $tmp/p.st on BATCH, the gradients into $tmp/NAME.st; prints the loss, nothing when the
# command fails (its stderr in $tmp/err; the emulator fails it on any access out of bounds)
grad_loss() {
    local name=$1 model=$2 be=$3 dt=$4 batch=$5; shift 5
    env "$@" "$GPTC" grad "$model" --params "$tmp/p.st" --batch "$batch" --backend "$be" --dtype "$dt" \
        --grads "$tmp/$name.st" >"$tmp/out" 2>"$tmp/err" && sed -n 's/^loss: //p' "$tmp/out"
}

# backends_match_ref NAME MODEL BATCH — random parameters (gptc init --seed 1), then the cpu
# backend and the cuda backend on the CUDA emulator, in f32, each held to ref f64 by match_ref
backends_match_ref() {
    local m=$1 model=$2 batch=$3 ref got be envs
    if ! "$GPTC" init "$model" -o "$tmp/p.st" --seed 1 >/dev/null 2>"$tmp/err"; then fail "$m init" "$(cat "$tmp/err")"; return; fi
    ref=$(grad_loss ref "$model" ref f64 "$batch")
    if [ -z "$ref" ]; then fail "$m ref f64 grad runs" "$(tail -5 "$tmp/err")"; return; fi
    for be in cpu cuda; do
        envs=(); [ $be = cuda ] && envs=(GPTC_CUDA_EMULATE=1)
        got=$(grad_loss $be "$model" $be f32 "$batch" "${envs[@]}")
        if [ -z "$got" ]; then fail "$m $be f32 grad runs" "$(tail -5 "$tmp/err")"; continue; fi
        match_ref "$m $be f32" "$got" "$ref" "$tmp/$be.st" "$tmp/ref.st"
    done
}
