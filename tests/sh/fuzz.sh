#!/usr/bin/env bash
# Runs the front-end fuzz target (libFuzzer, ASan + UBSan) for FUZZ_SECONDS (default 30;
# longer for a soak run) from a seed corpus of the models and tests/bad. A finding is saved as
# build-fuzz/crash-* and fails the test; reproduce with build-fuzz/fuzz_frontend FILE.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
bin=build-fuzz/fuzz_frontend
if [ ! -x "$bin" ]; then fail fuzz_frontend "$bin is not built (make fuzz)"; exit 0; fi
corpus=$(mktemp -d); trap 'rm -rf "$corpus"' EXIT
cp models/*.gptc tests/bad/*.gptc "$corpus"/
secs=${FUZZ_SECONDS:-30}
log=build-fuzz/fuzz.log
ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
    -dict=tests/fuzz.dict -artifact_prefix=build-fuzz/ -print_final_stats=1 "$corpus" >"$log" 2>&1
rc=$?
runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
if [ $rc -eq 0 ]; then pass "fuzz_frontend ($runs inputs in ${secs}s, no finding)"
else fail fuzz_frontend "exit $rc; see $log" "$(grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -5)"; fi
