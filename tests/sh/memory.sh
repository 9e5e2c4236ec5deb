#!/usr/bin/env bash
# memory.sh — running out of memory is an error that states the memory plan and a hint,
# exits 1 and writes nothing: never an abort (exit 134) in the middle of a step.
cd "$(dirname "$0")/../.."
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# The medium preset's gradient step on the cpu backend needs far more than any test machine
# (about 110 GB); the plan is refused before anything is allocated or written.
"$GPTC" train models/gpt2m_x04.gptc --preset medium --data tests/data --out "$tmp/run" >"$tmp/out" 2>&1
rc=$?
plan='^gptc train: cpu: out of memory: the memory plan needs [0-9.]+ GB \(arena [0-9.]+ GB, leaves [0-9.]+ GB\); this machine has [0-9.]+ GB$'
hint='^gptc train: hint: a smaller preset \(--preset NAME\) or a shorter sequence \(--set seq_len=N\) needs less memory$'
[ $rc -eq 1 ] && pass "train --preset medium on the cpu exits 1" || fail "train --preset medium on the cpu exits 1" "exit $rc" "$(head -5 "$tmp/out")"
grep -qE "$plan" "$tmp/out" && pass "train states the memory plan" || fail "train states the memory plan" "$(head -5 "$tmp/out")"
grep -qE "$hint" "$tmp/out" && pass "train gives the hint" || fail "train gives the hint" "$(head -5 "$tmp/out")"
[ ! -e "$tmp/run" ] && pass "train wrote nothing" || fail "train wrote nothing" "$(ls -la "$tmp/run")"

"$GPTC" bench models/gpt2m_x04.gptc --preset medium --steps 1 >"$tmp/out" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -qE "${plan/train/bench}" "$tmp/out" && grep -qE "${hint/train/bench}" "$tmp/out" \
    && pass "bench --preset medium states the plan and the hint" \
    || fail "bench --preset medium states the plan and the hint" "exit $rc" "$(head -5 "$tmp/out")"

# Host copies (parameters, gradients, optimizer state in double) larger than the machine: an
# error with their size, before any backend is made (the ref backend plans nothing itself).
"$GPTC" bench models/gpt2m_x04.gptc --preset medium --set dim=4096 --set heads=32 --steps 1 --backend ref \
    >"$tmp/out" 2>&1
rc=$?
copies='^gptc bench: out of memory: the host copies of the parameters, gradients and optimizer state \(4 x [0-9]+ values in double\) need [0-9.]+ GB; this machine has [0-9.]+ GB$'
[ $rc -eq 1 ] && grep -qE "$copies" "$tmp/out" && grep -qE "${hint/train/bench}" "$tmp/out" \
    && pass "bench with host copies larger than memory states their size" \
    || fail "bench with host copies larger than memory states their size" "exit $rc" "$(head -5 "$tmp/out")"

