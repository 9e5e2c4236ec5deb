#!/usr/bin/env bash
# Front-end regressions: a parameter shaped with T and a val_seq_len other than
# seq_len are refused by check and train (validation runs on the trained parameters; it read
# past them); --set values the trainer would misread are refused with the entry's name.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
m=tests/models/learned_positions.gptc

# expect_exact NAME EXPECTED CMD… — stderr and the exit status are exactly EXPECTED
expect_exact() {
    local name=$1 want=$2; shift 2
    local out; out=$("$@" 2>&1 >/dev/null; echo "exit status: $?")
    if [ "$out" = "$want" ]; then pass "$name"; else fail "$name" "$(diff <(printf '%s\n' "$out") <(printf '%s\n' "$want") | head -20)"; fi
}

wpe="$m:15:7: error: parameter 'wpe' is f32[32, 8] with T = seq_len = 32 but f32[64, 8] with T = val_seq_len = 64: \
validation runs on the trained parameters, so their shapes must not depend on T; set val_seq_len = seq_len (32)
   15 | param wpe : f32[T, dim] init normal(0, 0.1) opt adamw
      |       ^"
expect_exact "check: a parameter shaped with T and val_seq_len != seq_len" "$wpe
$m: 1 error
exit status: 1" "$GPTC" check $m
expect_exact "train: the same refusal, before anything runs" "$wpe
gptc train: the model cannot be trained as it is: 1 error above
exit status: 1" "$GPTC" train $m --data tests/golden/tiny_x02/train.bin --out "$tmp/run" --quiet
if [ ! -e "$tmp/run" ]; then pass "train: no run folder after the refusal"; else fail "train: no run folder after the refusal"; fi
expect_status "check: val_seq_len = seq_len is accepted" 0 "$GPTC" check $m --set val_seq_len=32
expect_status "check: seq_len = val_seq_len is accepted" 0 "$GPTC" check $m --set seq_len=64

b=tests/models/bigram.gptc
expect_exact "--set steps=1.5 is refused" "gptc: error: --set steps=1.5: config 'steps' is an integer (6 without --set), not 1.5
$b:10:5: note: 'steps' is defined here
   10 |     steps = 6
      |     ^
$b: 1 error
exit status: 1" "$GPTC" check $b --set steps=1.5
expect_exact "--set steps=0 is refused" "gptc: error: --set steps=0: config 'steps' (the number of training steps) must be an integer of at least 1
$b: 1 error
exit status: 1" "$GPTC" check $b --set steps=0
expect_output "--set steps=2.0 is the integer 2" "^  steps +2$" "$GPTC" summary $b --set steps=2.0
