#!/usr/bin/env bash
# gptc train: a SIGKILLed run resumed ends with the uninterrupted run's checkpoint bit for bit
# (CPU, f32: parameters, optimizer state, step, data position; the run.* clock and log sizes aside); SIGINT writes a checkpoint and stops cleanly; a NaN loss stops with the step
# named and the last good checkpoint kept; micro-batches on the cpu backend train as on ref; logs
# and flags.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
G=tests/golden/tiny_x02
run=(models/gpt2m.gptc --data $G --quiet --dtype f32)
init=(--init $G/params.safetensors)
for kv in vocab=200 eot=199 dim=64 heads=2 head_dim=32 n_emb=3 block=16 seq_len=256 val_seq_len=256 \
          val_tokens=512 steps=6 val_every=3; do run+=(--set "$kv"); done
gold=("${run[@]}" --checkpoint-every 1)

"$GPTC" train "${gold[@]}" "${init[@]}" --out "$tmp/full" >/dev/null 2>&1
expect_status "uninterrupted run" 0 test -f "$tmp/full/checkpoint.safetensors"

# SIGKILL at a random moment, then resume (again if it was killed before the first checkpoint)
"$GPTC" train "${gold[@]}" "${init[@]}" --out "$tmp/killed" >/dev/null 2>&1 &
pid=$!
sleep "$(awk -v s=$RANDOM 'BEGIN { printf "%.2f", 0.3 + (s % 300) / 100 }')"
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
if [ -f "$tmp/killed/checkpoint.safetensors" ]; then
    "$GPTC" train "${gold[@]}" --out "$tmp/killed" --resume "$tmp/killed" >"$tmp/log" 2>&1
else
    rm -rf "$tmp/killed"
    "$GPTC" train "${gold[@]}" "${init[@]}" --out "$tmp/killed" >"$tmp/log" 2>&1
fi
expect_status "resumed run finishes" 0 test -f "$tmp/killed/checkpoint.safetensors"
expect_output "killed + resumed = uninterrupted, bit for bit" "^worst: 0.000e\+00" \
    "$GPTC" compare "$tmp/killed/checkpoint.safetensors" "$tmp/full/checkpoint.safetensors" --tol 0 --quiet --skip run.
expect_output "resumed log has every step once" "^6$" bash -c "grep -c 'train_loss' $tmp/killed/log.jsonl"
expect_output "resumed log.txt equals the uninterrupted one (times aside)" "^same$" bash -c \
    "diff <(sed 's/train_time.*//' $tmp/killed/log.txt) <(sed 's/train_time.*//' $tmp/full/log.txt) >/dev/null && echo same"

# SIGINT once step 0 is logged: the step under way finishes, then the run writes a checkpoint
# of where it stopped, says so and exits 130 (exit 0 means the signal was missed); --resume
# completes the run identically. No --checkpoint-every here: only the validations (steps 0,
# 3, 6) write checkpoints of their own, so the checkpoint's step shows who wrote it.
"$GPTC" train "${run[@]}" "${init[@]}" --out "$tmp/int" >"$tmp/log" 2>&1 &
pid=$!
for _ in $(seq 1200); do grep -qs train_loss "$tmp/int/log.jsonl" && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
kill -INT $pid; wait $pid; rc=$?
n=$(grep -cs train_loss "$tmp/int/log.jsonl"); n=${n:-0}
if [ $rc -eq 130 ]; then pass "SIGINT exits 130"
else fail "SIGINT exits 130" "exit $rc$([ $rc -eq 0 ] && echo ': the signal was missed')" "$(tail -5 "$tmp/log")"; fi
if [ "$n" -ge 1 ] && [ "$n" -lt 6 ]; then pass "SIGINT stops before the last step"
else fail "SIGINT stops before the last step" "$n training steps logged of 6"; fi
expect_output "SIGINT names the step and the checkpoint" \
    "^gptc train: interrupted after step $n; checkpoint written to $tmp/int/checkpoint\.safetensors \(continue with --resume $tmp/int\)$" \
    cat "$tmp/log"
expect_output "SIGINT checkpoint holds the step it stopped after" "^$n$" ckpt_int "$tmp/int/checkpoint.safetensors" trainer.step
"$GPTC" train "${gold[@]}" --out "$tmp/int" --resume "$tmp/int" >/dev/null 2>&1
expect_output "interrupted + resumed = uninterrupted" "^worst: 0.000e\+00" \
    "$GPTC" compare "$tmp/int/checkpoint.safetensors" "$tmp/full/checkpoint.safetensors" --tol 0 --quiet --skip run.

# micro-batches on the cpu backend take the gradients through the host (one process shares
# them between its executors otherwise): the same training as the ref backend's, in float32
for be in cpu ref; do
    "$GPTC" train "${run[@]}" "${init[@]}" --set steps=2 --set val_every=2 --grad-accum 2 --backend $be \
        --out "$tmp/acc_$be" >/dev/null 2>&1
done
expect_status "--grad-accum 2: the cpu backend's checkpoint = the ref backend's (5e-3, as without micro-batches)" 0 \
    "$GPTC" compare "$tmp/acc_cpu/checkpoint.safetensors" "$tmp/acc_ref/checkpoint.safetensors" --tol 5e-3 --quiet \
    --skip run.

# NaN: the run stops naming the step; the checkpoint of the last validation stays
expect_status "NaN loss stops the run" 1 "$GPTC" train tests/models/bigram.gptc --data $G --out "$tmp/nan" --set nan_step=4 --quiet
expect_output "NaN message names the step" "step 5: the training loss is nan; stopped" \
    "$GPTC" train tests/models/bigram.gptc --data $G --out "$tmp/nan2" --set nan_step=4 --quiet
expect_status "NaN keeps the checkpoint" 0 test -f "$tmp/nan/checkpoint.safetensors"
expect_output "the run validated at steps 0 and 3 before the NaN" "^0 3 $" bash -c \
    "sed -n 's/^{\"step\": \\([0-9]*\\), \"val_loss\".*/\\1/p' $tmp/nan/log.jsonl | tr '\\n' ' '"

# logs and flags (the run folder is created with its parents)
"$GPTC" train tests/models/bigram.gptc --data $G --out "$tmp/runs/bg" --quiet
mv "$tmp/runs/bg" "$tmp/bg"
expect_output "log.txt validation line" "^step:3/6 val_loss:[0-9]+\.[0-9]{6} train_time:[0-9]+ms step_avg:[0-9]+\.[0-9]{2}ms$" cat "$tmp/bg/log.txt"
expect_output "log.txt training line" "^step:4/6 train_time:[0-9]+ms step_avg:[0-9]+\.[0-9]{2}ms$" cat "$tmp/bg/log.txt"
expect_output "log.txt log declaration" "^step:6/6 head_row:\[-?[0-9]" cat "$tmp/bg/log.txt"
expect_output "log.jsonl step object" '^\{"step": 2, "train_loss": [0-9.e-]+, "schedules": \{"lr": 0\.05\}, "train_time_ms": [0-9.]+\}$' cat "$tmp/bg/log.jsonl"
expect_status "train needs --data" 2 "$GPTC" train tests/models/bigram.gptc --out "$tmp/x"
expect_status "train --grad-accum range" 2 "$GPTC" train tests/models/bigram.gptc --data $G --out "$tmp/x" --grad-accum 0
expect_output "train: missing shards" "no \*train\*\.bin files in tests/models" \
    "$GPTC" train tests/models/bigram.gptc --data tests/models --out "$tmp/x"
expect_output "train: too little data" "too few tokens" \
    "$GPTC" train tests/models/bigram.gptc --data $G --out "$tmp/x" --set steps=100 --quiet
