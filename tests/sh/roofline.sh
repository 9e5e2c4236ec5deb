#!/usr/bin/env bash
# The roofline model of `gptc compile --target cuda` (codegen/roofline.c):
#   - its printed lines are there and add up (the split and the kinds to the total, the
#     three executors to the device memory);
#   - estimates recomputed here by hand from plan.txt, ptxas's registers and the H100's
#     constants: a memory-bound elementwise kernel, an under-occupied one, a product with a
#     partial last wave of tiles;
#   - an elementwise kernel of fewer bytes but fewer blocks is estimated slower;
#   - attention recomputed from the tiles its kernels visit, and its estimate growing with
#     the window and falling with shorter documents;
#   - the device memory it states is what the cuda backend allocates on the emulator
#     (gptc bench's planned bytes to the byte, gptc train's memory plan for validation,
#     whose logits run in chunks as the trainer runs them).
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export XDG_CACHE_HOME=$tmp/cache

# A model whose kernels are known by shape: embed (1025 x 1023, an odd count: one element a
# thread) and mix (1023 x 1024, eight elements a thread) have Adam updates of about the same
# bytes in 4096 and 512 blocks; dlogits^T h is a [1025, 1024] product over K = 4096 tokens.
cat >"$tmp/roof.gptc" <<'EOF'
config {
    vocab = 1025
    eot = 1024
    dim = 1023
    seq_len = 4096
    val_seq_len = 4096
    val_tokens = 8192
    steps = 1
}
optim a = adam(lr = 0.01, beta1 = 0.8, beta2 = 0.95, eps = 1e-10)
param embed : f32[vocab, dim] init normal(0, 1) opt a
param mix : f32[dim, dim + 1] init normal(0, 0.03) opt a
param head : f32[vocab, dim + 1] init normal(0, 0.03) opt a
input tokens : i32[T]
input targets : i32[T]
model {
    h = matmul(rms_norm(embed[tokens]), mix)
    return cross_entropy(linear(h, head), targets)
}
EOF

# est SECTION PATTERN [TC_FLOPS]: recomputes the estimate of the first plan.txt line of
# SECTION (grad, update) matching PATTERN: a loop kernel from its launch, bytes, FLOPs and
# ptxas's registers and shared memory; a product (TC_FLOPS given) as 128 x 128 tiles, one an
# SM. Prints "EST BOUND OCC" as plan.txt does, then the line's own "EST BOUND OCC".
est() {
    local sec=$1 pat=$2 tc=${3:-}
    PAT=$pat awk -v sec="$sec" -v tc="$tc" -v px="$tmp/roof/$sec.ptxas.txt" '
        function ceil(x) { return x == int(x) ? x : int(x) + 1 }
        function min(a, b) { return a < b ? a : b }
        function field(name,   i) { for (i = 1; i <= NF; i++) if (index($i, name "=") == 1) return substr($i, length(name) + 2); return "" }
        /^######## / { in_sec = $2 == sec; next }
        !in_sec || done || $0 !~ ENVIRON["PAT"] { next }
        {
            done = 1
            if (tc != "") {                       # a product: tiles against the SMs, one an SM
                M = $4; N = $5; gsub(/[^0-9]/, "", M); gsub(/[^0-9]/, "", N)   # "[M," "N]"
                blocks = ceil(M / 128) * ceil(N / 128); per = 1
                work = tc / 790e12; b = "tc"
            } else {
                split(field("launch"), l, "x"); blocks = l[1]; threads = l[2]
                fn = $3; regs = -1; smem = 0
                while ((getline s < px) > 0) {
                    if (s ~ "Compiling entry function .?" fn) want = 1
                    else if (want && s ~ /Used [0-9]+ registers/) {
                        match(s, /Used [0-9]+/); regs = substr(s, RSTART + 5, RLENGTH - 5)
                        if (match(s, /[0-9]+ bytes smem/)) smem = substr(s, RSTART, RLENGTH - 11)
                        want = 0
                    }
                }
                warps = ceil(threads / 32)
                per = min(32, int(2048 / (warps * 32)))
                per = min(per, int(65536 / (ceil(regs * 32 / 256) * 256 * warps)))
                per = min(per, int(233472 / (ceil((smem + 1024) / 128) * 128)))
                mem = (field("read") + field("written")) / 3.0e12; fp = field("flops") / 67e12
                work = mem > fp ? mem : fp; b = mem > fp ? "mem" : "fp32"
            }
            slots = 132 * per; occ = blocks / (ceil(blocks / slots) * slots)
            t = 3e-6 + work / occ
            if (3e-6 >= work / occ) b = "launch"
            printf "%.4f %s %.2f %s %s %s\n", t * 1e3, b, occ, substr(field("est"), 1, length(field("est")) - 2), field("bound"), field("occ")
        }' "$tmp/roof/plan.txt"
}

# check NAME SECTION PATTERN [TC_FLOPS]: the line's estimate is the one recomputed
check() {
    local r; r=$(est "$2" "$3" "${4:-}")
    read -r e b o pe pb po <<<"$r"
    if [ -n "$r" ] && [ "$e $b $o" = "$pe $pb $po" ]; then pass "$1: est=${e}ms bound=$b occ=$o"
    else fail "$1" "recomputed: est=$e bound=$b occ=$o, plan.txt: est=$pe bound=$pb occ=$po"; fi
}

# attn PATTERN W L: recomputes the estimate of the first grad line matching PATTERN, an
# attention call (forward or backward) in window W blocks over documents of L tokens, from
# the steps cuda_lib.c's tensor-core kernels take; prints "EST" as plan.txt does, then the line's own.
attn() {
    PAT=$1 awk -v W="$2" -v L="$3" -v px="$tmp/att/grad.ptxas.txt" '
        function ceil(x) { return x == int(x) ? x : int(x) + 1 }
        function min(a, b) { return a < b ? a : b }
        function max(a, b) { return a > b ? a : b }
        function field(name,   i) { for (i = 1; i <= NF; i++) if (index($i, name "=") == 1) return substr($i, length(name) + 2); return "" }
        # blocks of fn resident on one SM, from its registers and shared memory in ptxas log
        function per_sm(fn, threads,   s, want, regs, smem, warps, n) {
            while ((getline s < px) > 0) {
                if (s ~ "Compiling entry function .?" fn "'\''") want = 1
                else if (want && s ~ /Used [0-9]+ registers/) {
                    match(s, /Used [0-9]+/); regs = substr(s, RSTART + 5, RLENGTH - 5)
                    smem = match(s, /[0-9]+ bytes smem/) ? substr(s, RSTART, RLENGTH - 11) : 0
                    want = 0
                }
            }
            close(px)
            warps = ceil(threads / 32)
            n = min(32, int(2048 / (warps * 32)))
            n = min(n, int(65536 / (ceil(regs * 32 / 256) * 256 * warps)))
            return min(n, int(233472 / (ceil((smem + 1024) / 128) * 128)))
        }
        function t(tc, bytes, blocks, per,   slots, occ, work) {
            slots = 132 * per; occ = blocks / (ceil(blocks / slots) * slots)
            work = max(tc / 790e12, bytes / 3e12)
            return 3e-6 + work / occ
        }
        function doc(q) { return int(q / L) }
        # the tensor-core kernels, query-major: per warp of 16 queries, steps of g keys from
        # the first visible key of its first query (window start, then document start), rounded
        # down to g, to its last query
        function qsteps(g,   q0, q1, k, n) {
            for (q0 = 0; q0 < T; q0 += 16) {
                q1 = min(q0 + 16, T); k = max(0, (int(q0 / B) - W + 1) * B); k = max(k, doc(q0) * L)
                n += ceil((q1 - (k - k % g)) / g)
            }
            return n
        }
        # key-major: per warp of 16 keys, steps of 16 queries to the end of its last key window
        # or document
        function ksteps(   k0, k1, qend, n) {
            for (k0 = 0; k0 < T; k0 += 16) {
                k1 = min(k0 + 16, T); qend = min(T, (int((k1 - 1) / B) + W) * B); qend = min(qend, (doc(k1 - 1) + 1) * L)
                if (qend > k0) n += ceil((qend - k0) / 16)
            }
            return n
        }
        /^######## / { in_grad = $2 == "grad"; next }
        !in_grad || done || $0 !~ ENVIRON["PAT"] { next }
        {
            done = 1; bwd = $2 == "attention_bwd"
            s = bwd ? $5 " " $6 " " $7 : $4 " " $5 " " $6; gsub(/[^0-9 ]/, "", s); split(s, d, " ")
            T = d[1]; H = d[2]; D = d[3]; B = 64
            m = T * H * D * 2; stat = H * T * 4; ids = 4 * T; blocks = ceil(T / 64) * H
            # mma m16n8k16 (4096 FLOPs) per step: forward 3D/4 (32 keys, p·v as a bf16 pair),
            # statistics D/8, dq D/2, dk and dv 3D/4; 4 warps of 16 rows, 64 rows a block
            e = t(0, 8 * T, 1, per_sm("cg_doc_ids", 1024)); f = 4096 * H
            if (!bwd) e += t(f * qsteps(32) * 3 * D / 4, 4 * m + stat + ids, blocks, per_sm("cg_attn_tc_fwd_bf16", 128))
            else {
                q16 = qsteps(16)
                e += t(f * q16 * D / 8, 4 * m + 2 * stat + ids, blocks, per_sm("cg_attn_tc_bwd_stats_bf16", 128))
                e += t(f * q16 * D / 2, 5 * m + 2 * stat + ids, blocks, per_sm("cg_attn_tc_bwd_dq_bf16", 128))
                e += t(f * ksteps() * 3 * D / 4, 6 * m + 2 * stat + ids, blocks, per_sm("cg_attn_tc_bwd_dkv_bf16", 128))
            }
            est = field("est"); printf "%.4f %s\n", e * 1e3, substr(est, 1, length(est) - 2)
        }' "$tmp/att/plan.txt"
}

if [ -e /usr/local/cuda/lib64/libnvrtc.so ] || [ -n "${CUDA_HOME:-}" ]; then
    out=$("$GPTC" compile "$tmp/roof.gptc" --target cuda -o "$tmp/roof" 2>&1); rc=$?
    if [ $rc -ne 0 ]; then
        fail "compile --target cuda" "$out"
    else
        re='^estimated step on H100: ([0-9.]+) ms \(tensor-core ([0-9.]+) ms, CUDA-core ([0-9.]+) ms, memory ([0-9.]+) ms, under-occupied ([0-9.]+) ms, launch ([0-9.]+) ms\)$'
        line=$(printf '%s\n' "$out" | grep -E "$re")
        if [[ "$line" =~ $re ]]; then
            sum=$(awk -v a="${BASH_REMATCH[1]}" -v b="${BASH_REMATCH[2]}" -v c="${BASH_REMATCH[3]}" -v d="${BASH_REMATCH[4]}" \
                      -v e="${BASH_REMATCH[5]}" -v f="${BASH_REMATCH[6]}" 'BEGIN { s = b + c + d + e + f; print (s - a < 0.004 && a - s < 0.004) ? "ok" : s }')
            if [ "$sum" = ok ]; then pass "estimated step: its split adds up ($line)"
            else fail "estimated step: its split adds up" "$line: the parts sum to $sum"; fi
        else
            fail "estimated step line" "$out"
        fi
        kinds=$(printf '%s\n' "$out" | sed -n 's/^  \(loop\|product\|attention\|attention backward\|scatter-add\|conversions\): \([0-9]*\) calls, \([0-9]*\) launches, \([0-9.]*\) ms$/\4/p')
        ksum=$(printf '%s\n' "$kinds" | awk -v t="${BASH_REMATCH[1]}" '{ s += $1; n++ } END { print (n == 6 && s - t < 0.004 && t - s < 0.004) ? "ok" : n " kinds, " s }')
        if [ "$ksum" = ok ]; then pass "six kinds, their times add up to the step's"
        else fail "six kinds, their times add up to the step's" "$ksum" "$out"; fi
        expect_output "plan.txt: every kernel line has est, bound, occ" '^ok$' \
            awk '/^ +[0-9]+ (loop|matmul|attention|attention_bwd|scatter_add) / && !/ est=[0-9.]+ms bound=(launch|tc|fp32|mem) occ=[0-9.]+ / { bad++ }
                 END { print bad ? bad " lines without" : "ok" }' "$tmp/roof/plan.txt"
        check "memory-bound elementwise kernel (Adam of embed, 4096 blocks)" update ' loop k_[0-9a-f]+ \[1025, 1023\] axis=-1 '
        check "under-occupied elementwise kernel (Adam of mix, 512 blocks)" update ' loop k_[0-9a-f]+ \[1023, 1024\] axis=-1 '
        check "product dlogits^T h: 72 tiles of 132 SMs, tensor cores" grad ' matmul %[0-9]+ \[1025, 1024\] a\^T=1 ' \
            "$((2 * 1025 * 1024 * 4096))"
        e1=$(est update ' loop k_[0-9a-f]+ \[1025, 1023\] axis=-1 ' | cut -d' ' -f4)
        e2=$(est update ' loop k_[0-9a-f]+ \[1023, 1024\] axis=-1 ' | cut -d' ' -f4)
        b1=$(grep -E ' loop k_[0-9a-f]+ \[1025, 1023\] axis=-1 ' "$tmp/roof/plan.txt" | head -1 | sed 's/.* read=\([0-9]*\).*/\1/')
        b2=$(grep -E ' loop k_[0-9a-f]+ \[1023, 1024\] axis=-1 ' "$tmp/roof/plan.txt" | head -1 | sed 's/.* read=\([0-9]*\).*/\1/')
        if [ -n "$e1" ] && [ -n "$e2" ] && [ "$b1" -gt "$b2" ] && awk -v a="$e1" -v b="$e2" 'BEGIN { exit !(a < b) }'; then
            pass "more blocks, a lower estimate: ${e1}ms in 4096 blocks < ${e2}ms in 512 for fewer bytes ($b2 < $b1 read)"
        else
            fail "more blocks, a lower estimate" "4096 blocks: ${e1}ms, $b1 bytes read; 512 blocks: ${e2}ms, $b2 bytes read"
        fi
    fi
    # attention: the first call of gpt2m (layer 0, the long window) and the first backward
    # (layer 15, long too), on T = 4096 in blocks of 64 with 2 heads of 128
    att=()
    for kv in vocab=200 eot=199 dim=256 heads=2 head_dim=128 block=64 seq_len=4096 val_seq_len=4096 val_tokens=8192; do
        att+=(--set "$kv")
    done
    kinds() { sed -n 's/^  \(attention\|attention backward\): .* \([0-9.]*\) ms$/\2/p' | tr '\n' ' '; }
    if out=$("$GPTC" compile models/gpt2m.gptc "${att[@]}" --schedule window_long=4,window_short=2 --doc-len 512 --target cuda -o "$tmp/att" 2>&1); then
        expect_output "compile prints the schedules the graph reads, as the estimate assumes them" \
            "^  assuming schedules window_long=4 window_short=2 and documents of 512 tokens$" echo "$out"
        for what in "attention %" "attention_bwd %"; do
            read -r e pe <<<"$(attn " $what" 4 512)"
            if [ -n "$e" ] && [ "$e" = "$pe" ]; then pass "${what% %}: the tiles the mask lets it visit (window 4 blocks, documents of 512): est=${e}ms"
            else fail "${what% %}: the tiles the mask lets it visit" "recomputed est=${e}ms, plan.txt est=${pe}ms"; fi
        done
        # on tensor cores short windows are memory-bound: windows of 16 blocks (1,024 keys) in
        # one document make the work count, then twice the window, then documents of 256
        cmp() { "$GPTC" compile models/gpt2m.gptc "${att[@]}" --schedule "window_long=$1,window_short=$2" --doc-len "$3" --target cuda -o "$tmp/att2" | kinds; }
        read -r a0 b0 <<<"$(cmp 16 8 4096)"
        read -r a1 b1 <<<"$(cmp 32 16 4096)"
        read -r a2 b2 <<<"$(cmp 16 8 256)"
        if awk -v a0="$a0" -v b0="$b0" -v a1="$a1" -v b1="$b1" -v a2="$a2" -v b2="$b2" \
               'BEGIN { exit !(a0 > 0 && a1 > a0 && b1 > b0 && a2 < a0 && b2 < b0) }'; then
            pass "attention, backward: ${a0}, ${b0} ms; a window twice as long ${a1}, ${b1} ms; documents of 256 ${a2}, ${b2} ms"
        else
            fail "attention follows the window and the documents" "window 16,8: $a0 $b0; 32,16: $a1 $b1; documents of 256: $a2 $b2"
        fi
    else
        fail "compile the attention model" "$out"
    fi
    expect_status "--doc-len takes a positive number" 2 "$GPTC" compile "$tmp/roof.gptc" --target cuda --doc-len 0 -o "$tmp/x"
    expect_status "--schedule is checked" 2 "$GPTC" compile "$tmp/roof.gptc" --target cuda --schedule 3 -o "$tmp/x"
else
    echo "skip: estimates (no CUDA toolkit under /usr/local/cuda or \$CUDA_HOME: no ptxas figures)"
fi

# ---- the device memory: what compile states, the backend allocates (on the emulator) --------
export GPTC_CUDA_EMULATE=1
make_shards "$tmp/data" 3 emu_train_000000.bin:2000 emu_val_000000.bin:600
# validation 4 times as long as a step, with logits large enough that running them in
# chunks of a step's rows, as the trainer does, shows in its memory
small=()
for kv in vocab=4096 eot=199 dim=32 heads=4 head_dim=8 n_emb=2 block=4 seq_len=64 val_seq_len=256 val_tokens=256 \
          steps=1 val_every=0; do small+=(--set "$kv"); done
out=$("$GPTC" compile models/gpt2m.gptc "${small[@]}" --target cuda -o "$tmp/small" 2>&1) || fail "compile the small model" "$out"
mem=$(printf '%s\n' "$out" | sed -n 's/^device memory for training: \([0-9.]*\) GB (gradient step \([0-9.]*\) GB, update \([0-9.]*\) GB, validation \([0-9.]*\) GB)$/\1 \2 \3 \4/p')
if [ -n "$mem" ] && awk -v m="$mem" 'BEGIN { split(m, v, " "); d = v[1] - v[2] - v[3] - v[4]; exit !(d < 0.015 && d > -0.015) }'; then
    pass "device memory line: the three executors add up ($mem)"
else
    fail "device memory line: the three executors add up" "$out"
fi
planned=$(sed -n 's/^device_bytes \([0-9]*\).*/\1/p' "$tmp/small/plan.txt" | tr '\n' ' ')
read -r g u v <<<"$planned"
bench=$("$GPTC" bench models/gpt2m.gptc "${small[@]}" --backend cuda --steps 1 --warmup 0 2>&1) ||
    fail "bench the small model on the emulator" "$(printf '%s\n' "$bench" | tail -5)"
expect_output "gradient step and update: compile's bytes are what the backend allocates ($g + $u)" \
    "^planned_bytes: $g \(gradient step\) \+ $u \(update\)$" printf '%s\n' "$bench"
"$GPTC" train models/gpt2m.gptc "${small[@]}" --data "$tmp/data" --out "$tmp/run" --backend cuda >"$tmp/train.log" 2>&1 ||
    fail "train the small model on the emulator" "$(tail -5 "$tmp/train.log")"
whole=$(GPTC_EVAL_CHUNK=0 "$GPTC" compile models/gpt2m.gptc "${small[@]}" --target cuda -o "$tmp/whole" >/dev/null 2>&1 &&
        sed -n '/^######## validation/,$s/^device_bytes \([0-9]*\).*/\1/p' "$tmp/whole/plan.txt")
if [ -n "$whole" ] && [ -n "$v" ] && [ "$v" -lt "$whole" ]; then pass "validation in chunks: $v bytes, whole (GPTC_EVAL_CHUNK=0) $whole"
else fail "validation in chunks takes less memory" "chunked: $v bytes, whole: $whole"; fi
mb=$(awk -v g="$g" -v u="$u" -v v="$v" 'BEGIN { printf "%.1f MB \\(gradient step\\) \\+ %.1f MB \\(update\\) \\+ %.1f MB \\(validation\\)", g / 1e6, u / 1e6, v / 1e6 }')
expect_output "validation too: gptc train's memory plan is compile's (${v} bytes)" "^memory plan: $mb$" cat "$tmp/train.log"
