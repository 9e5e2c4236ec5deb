#!/usr/bin/env bash
# Every file in tests/bad/ is checked by `gptc check`; its output (stderr) and exit status
# must equal tests/bad/NAME.expected exactly: the messages, their locations and carets.
# Regenerate after an intended change with:  tests/sh/bad_inputs.sh --update
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
for f in tests/bad/*.gptc; do
    name=$(basename "$f" .gptc)
    exp=tests/bad/$name.expected
    out=$("$GPTC" check "$f" 2>&1 >/dev/null; echo "exit status: $?")
    if [ "${1:-}" = "--update" ]; then printf '%s\n' "$out" >"$exp"; fi
    if [ -f "$exp" ] && [ "$out" = "$(cat "$exp")" ]; then pass "bad/$name"
    else fail "bad/$name" "$(diff <(printf '%s\n' "$out") "$exp" | head -20)"; fi
done
