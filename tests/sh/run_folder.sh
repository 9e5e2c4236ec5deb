#!/usr/bin/env bash
# gptc train: a run folder never loses a run. A fresh run does not start over a run that is
# there; one trainer at a time (train.lock, the holder's PID in the refusal); temp files of
# dead checkpoint writers are removed; a non-finite loss or parameter stops before anything
# is written and names the step the kept checkpoint holds; log.jsonl stays JSON line by
# line; --init refuses NaN and takes a checkpoint's parameters; --resume checks the model,
# config, --grad-accum and the logs' sizes, says when a run is finished and takes a folder
# with a trailing slash; a full disk and a log that cannot be written stop the run with the
# last checkpoint intact. Besides: `data info` on a FIFO, --data FILE, `report` on a log
# whose last line is cut. The bigram model keeps every run short.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d)
mounted=
trap '[ -n "$mounted" ] && umount "$tmp/full"; rm -rf "$tmp"' EXIT
G=tests/golden/tiny_x02
bg=(tests/models/bigram.gptc --data $G --quiet)

# sums DIR — checksums of a run folder's logs and checkpoint (what must not change)
sums() { cat "$1/log.txt" "$1/log.jsonl" "$1/checkpoint.safetensors" 2>/dev/null | md5sum; }
# valid_jsonl FILE — "valid" when every line is one JSON object (no NaN, no Infinity)
valid_jsonl() {
    python3 -c 'import json, sys
def bad(c): raise ValueError(c)
for line in open(sys.argv[1]): assert isinstance(json.loads(line, parse_constant=bad), dict)
print("valid")' "$1" 2>&1
}

# ---- a fresh run does not replace a run -------------------------------------------------------
"$GPTC" train "${bg[@]}" --out "$tmp/done" >"$tmp/done.out" 2>&1
expect_status "a run finishes" 0 test -f "$tmp/done/checkpoint.safetensors"
before=$(sums "$tmp/done")
expect_status "a fresh run into a run's folder is refused" 1 "$GPTC" train "${bg[@]}" --out "$tmp/done"
expect_output "the refusal says what is there and what to do" \
    "^gptc train: $tmp/done: holds a run already \(checkpoint\.safetensors at step 6, log\.txt of [0-9.]+ KB, log\.jsonl of [0-9.]+ KB\): continue it with --resume $tmp/done, or give --out another folder" \
    "$GPTC" train "${bg[@]}" --out "$tmp/done"
[ "$(sums "$tmp/done")" = "$before" ] && pass "a refused run leaves the folder as it was" \
    || fail "a refused run leaves the folder as it was"
cp -r "$tmp/done" "$tmp/over"
expect_status "--overwrite starts afresh" 0 "$GPTC" train "${bg[@]}" --out "$tmp/over" --overwrite --seed 1
expect_output "--overwrite rewrote the logs" "^6$" bash -c "grep -c train_loss '$tmp/over/log.jsonl'"

# ---- one trainer at a time: the lock ------------------------------------------------------------
# the first trainer holds the lock and waits at its log.txt, a FIFO nobody reads
mkdir -p "$tmp/locked"
mkfifo "$tmp/locked/log.txt"
"$GPTC" train "${bg[@]}" --out "$tmp/locked" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1500); do [ -s "$tmp/locked/train.lock" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.02; done
expect_output "a second trainer is refused, naming the holder's PID" \
    "^gptc train: $tmp/locked: in use by another gptc train \(PID $pid, which holds $tmp/locked/train\.lock\): wait for it to finish or stop it" \
    "$GPTC" train "${bg[@]}" --out "$tmp/locked" --overwrite
kill $pid; wait $pid 2>/dev/null
rm "$tmp/locked/log.txt"
expect_status "the lock goes with the trainer that held it" 0 "$GPTC" train "${bg[@]}" --out "$tmp/locked"
expect_output "... and the lock file is empty after a run" "^0$" stat -c %s "$tmp/locked/train.lock"

# ---- temp files of dead checkpoint writers -------------------------------------------------------
sh -c 'exit 0' & dead=$!; wait $dead
mkdir -p "$tmp/stale"
: >"$tmp/stale/checkpoint.safetensors.tmp.$dead"
: >"$tmp/stale/checkpoint.safetensors.tmp.$$"
"$GPTC" train "${bg[@]}" --out "$tmp/stale" >"$tmp/stale.out" 2>&1
expect_status "a dead writer's temp file is removed at start" 1 test -e "$tmp/stale/checkpoint.safetensors.tmp.$dead"
expect_status "a live process's temp file stays" 0 test -e "$tmp/stale/checkpoint.safetensors.tmp.$$"
expect_output "the removal is said" "removed $tmp/stale/checkpoint\.safetensors\.tmp\.$dead, left by a checkpoint writer that is gone" \
    cat "$tmp/stale.out"

# ---- non-finite losses and parameters: stop, keep the last good checkpoint --------------------------
# nan_step=2: the update of step 2 makes the parameters NaN, so the validation of step 3 is NaN
"$GPTC" train "${bg[@]}" --set nan_step=2 --out "$tmp/nanv" >"$tmp/nanv.out" 2>&1; rc=$?
[ $rc -eq 1 ] && pass "a NaN validation loss stops the run" || fail "a NaN validation loss stops the run" "exit $rc"
expect_output "it names the step and the step the checkpoint holds" \
    "^gptc train: step 3: the validation loss is nan; stopped\. The last good checkpoint is $tmp/nanv/checkpoint\.safetensors, at step 0$" \
    cat "$tmp/nanv.out"
expect_output "the checkpoint kept holds step 0" "^0$" ckpt_int "$tmp/nanv/checkpoint.safetensors" trainer.step
expect_status "log.txt has no nan" 1 grep -q nan "$tmp/nanv/log.txt"
expect_output "log.jsonl is JSON line by line" "^valid$" valid_jsonl "$tmp/nanv/log.jsonl"
expect_output "log.jsonl writes null for a number that is not finite" '"schedules": \{"lr": null\}' cat "$tmp/nanv/log.jsonl"
cp -r "$tmp/nanv" "$tmp/lim"   # for the log-write test below
# nan_step=4: the training loss of step 5 is NaN; the checkpoint of step 3 stays
expect_output "a NaN training loss names the step the checkpoint holds" \
    "^gptc train: step 5: the training loss is nan; stopped\. The last good checkpoint is $tmp/nant/checkpoint\.safetensors, at step 3$" \
    "$GPTC" train "${bg[@]}" --set nan_step=4 --out "$tmp/nant"
expect_output "the checkpoint kept holds step 3" "^3$" ckpt_int "$tmp/nant/checkpoint.safetensors" trainer.step
# with a checkpoint every step, the NaN parameters of step 5 are never saved
expect_output "NaN parameters are not checkpointed" \
    "step 5: parameter '[a-z]+' holds nan \(element [0-9]+\) after the update of step 4; stopped\. The last good checkpoint is .*, at step 4$" \
    "$GPTC" train "${bg[@]}" --set nan_step=4 --checkpoint-every 1 --out "$tmp/nanc"
expect_output "the checkpoint kept holds step 4" "^4$" ckpt_int "$tmp/nanc/checkpoint.safetensors" trainer.step

# ---- --init ---------------------------------------------------------------------------------------
"$GPTC" init tests/models/bigram.gptc -o "$tmp/p.safetensors" >/dev/null 2>&1
len=$(od -An -t u8 -N8 "$tmp/p.safetensors" | tr -d ' ')
printf '\000\000\300\177' | dd of="$tmp/p.safetensors" bs=1 seek=$((8 + len)) conv=notrunc 2>/dev/null   # f32 NaN
expect_output "--init with a NaN is refused" \
    "^gptc train: $tmp/p\.safetensors: parameter '[a-z]+' holds nan \(element 0\): refusing to start from it$" \
    "$GPTC" train "${bg[@]}" --init "$tmp/p.safetensors" --out "$tmp/initnan"
expect_status "nothing is written from a NaN --init" 1 test -e "$tmp/initnan/checkpoint.safetensors"
expect_output "--init takes a training checkpoint's parameters and says so" \
    "^gptc train: $tmp/done/checkpoint\.safetensors is a training checkpoint \(step 6\): this run starts from its parameters at step 0 with a fresh optimizer \(--resume on its folder continues that run\)$" \
    "$GPTC" train "${bg[@]}" --init "$tmp/done/checkpoint.safetensors" --out "$tmp/fromckpt"
expect_output "the run from a checkpoint's parameters finishes" "^6$" bash -c "grep -c train_loss '$tmp/fromckpt/log.jsonl'"

# ---- --resume checks what it continues ------------------------------------------------------------
expect_output "resume with another config is refused, naming the change" \
    "^gptc train: $tmp/nant: the run was made otherwise: seq_len 64 → 32 \(--allow-change resumes it all the same\)$" \
    "$GPTC" train "${bg[@]}" --set nan_step=4 --set seq_len=32 --out "$tmp/nant" --resume "$tmp/nant"
expect_output "resume with another --grad-accum is refused" "the run was made otherwise: --grad-accum 1 → 2 " \
    "$GPTC" train "${bg[@]}" --set nan_step=4 --grad-accum 2 --out "$tmp/nant" --resume "$tmp/nant"
cp tests/models/bigram.gptc "$tmp/m.gptc"
"$GPTC" train "$tmp/m.gptc" --data $G --quiet --set nan_step=4 --out "$tmp/model" >/dev/null 2>&1
sed -i 's/softcap(linear(rms_norm(x), head), 15)/softcap(linear(rms_norm(x), head), 14)/' "$tmp/m.gptc"
expect_output "resume with an edited model is refused" \
    "the run was made otherwise: the model's text \($tmp/m\.gptc or a file it includes has changed\)" \
    "$GPTC" train "$tmp/m.gptc" --data $G --quiet --set nan_step=4 --out "$tmp/model" --resume "$tmp/model"
expect_output "a finished run says it is finished" \
    "^gptc train: $tmp/done: the run is finished: its checkpoint holds step 6 of 6; nothing to train$" \
    "$GPTC" train "${bg[@]}" --out "$tmp/done/" --resume "$tmp/done"
expect_status "... and exits 0 (--out R/ --resume R)" 0 "$GPTC" train "${bg[@]}" --out "$tmp/done/" --resume "$tmp/done"
[ "$(sums "$tmp/done")" = "$before" ] && pass "resuming a finished run changes nothing" \
    || fail "resuming a finished run changes nothing"
cp -r "$tmp/nant" "$tmp/short"
truncate -s 100 "$tmp/short/log.txt"
want=$(ckpt_int "$tmp/short/checkpoint.safetensors" run.log_txt_bytes)
expect_output "resume with a log shorter than recorded is refused with the numbers" \
    "^gptc train: $tmp/short/log\.txt: 100 bytes, shorter than the $want the checkpoint \(step 3\) follows" \
    "$GPTC" train "${bg[@]}" --set nan_step=4 --out "$tmp/short" --resume "$tmp/short"
expect_output "... and the log is not padded" "^100$" stat -c %s "$tmp/short/log.txt"
cp -r "$tmp/nant" "$tmp/nojsonl"
rm "$tmp/nojsonl/log.jsonl"
expect_output "resume with log.jsonl deleted says so" \
    "^gptc train: $tmp/nojsonl/log\.jsonl: missing, but the checkpoint \(step 3\) follows [0-9]+ bytes of it: put it back to resume" \
    "$GPTC" train "${bg[@]}" --set nan_step=4 --out "$tmp/nojsonl" --resume "$tmp/nojsonl"
expect_output "resume of a folder without a checkpoint says so" "^gptc train: $tmp/empty: no checkpoint\.safetensors to resume from" \
    "$GPTC" train "${bg[@]}" --out "$tmp/empty" --resume "$tmp/empty"
# changes that are meant: the NaN switch off, and two micro-batches instead of one
expect_status "--allow-change resumes with another config (--out R/ --resume R)" 0 \
    "$GPTC" train "${bg[@]}" --set nan_step=-1 --allow-change --out "$tmp/nanv/" --resume "$tmp/nanv"
expect_output "... to the end, every step logged once" "^6$" bash -c "grep -c train_loss '$tmp/nanv/log.jsonl'"
expect_status "--allow-change resumes with another --grad-accum" 0 \
    "$GPTC" train "${bg[@]}" --set nan_step=-1 --grad-accum 2 --allow-change --out "$tmp/nant" --resume "$tmp/nant"
expect_output "... to the end" "^6$" ckpt_int "$tmp/nant/checkpoint.safetensors" trainer.step

# ---- writes that fail ---------------------------------------------------------------------------------
# a log that cannot grow (a 1 KB file-size limit; the checkpoint is written only at the end):
# the run stops at the first record that does not fit, the checkpoint untouched
ck=$(md5sum <"$tmp/lim/checkpoint.safetensors")
(ulimit -f 1; exec "$GPTC" train "${bg[@]}" --backend ref --set nan_step=-1 --set steps=20 --set val_every=0 --allow-change \
     --out "$tmp/lim" --resume "$tmp/lim") >"$tmp/lim.out" 2>&1; rc=$?
[ $rc -eq 1 ] && pass "a log write that fails stops the run" || fail "a log write that fails stops the run" "exit $rc" "$(tail -3 "$tmp/lim.out")"
expect_output "... with a message naming the log and the checkpoint kept" \
    "^gptc train: $tmp/lim/log\.(txt|jsonl): cannot write: File too large; stopped\. The last good checkpoint is $tmp/lim/checkpoint\.safetensors, at step 0$" \
    cat "$tmp/lim.out"
[ "$(md5sum <"$tmp/lim/checkpoint.safetensors")" = "$ck" ] && pass "... and the checkpoint untouched" \
    || fail "... and the checkpoint untouched"
# a full disk: a 64 KB tmpfs holds the first checkpoint (40 KB) but not a second beside it
mkdir -p "$tmp/full"
if mount -t tmpfs -o size=64k gptc-run-folder-test "$tmp/full" 2>"$tmp/mount.err"; then
    mounted=1
    "$GPTC" train "${bg[@]}" --out "$tmp/full/run" >"$tmp/full.out" 2>&1; rc=$?
    [ $rc -eq 1 ] && pass "a full disk stops the run" || fail "a full disk stops the run" "exit $rc" "$(tail -3 "$tmp/full.out")"
    expect_output "... saying so, and which checkpoint is kept" \
        "^gptc train: $tmp/full/run/checkpoint\.safetensors: cannot write \(.*\): No space left on device; stopped\. The last good checkpoint is $tmp/full/run/checkpoint\.safetensors, at step 0$" \
        cat "$tmp/full.out"
    expect_output "... the checkpoint of step 0 stays" "^0$" ckpt_int "$tmp/full/run/checkpoint.safetensors" trainer.step
    expect_output "... and no temp file" "^$" bash -c "ls '$tmp/full/run' | grep tmp"
    cp -r "$tmp/full/run" "$tmp/fullcopy"
    umount "$tmp/full" && mounted=
    expect_status "... and the run resumes from it elsewhere" 0 "$GPTC" train "${bg[@]}" --out "$tmp/fullcopy" --resume "$tmp/fullcopy"
else
    echo "skip: a full disk: cannot mount a 64 KB tmpfs here ($(head -1 "$tmp/mount.err")); the file-size limit above covered a failing write"
fi

# ---- other readers and arguments -------------------------------------------------------------------
mkfifo "$tmp/fifo.bin"
expect_status "data info on a FIFO does not hang" 1 timeout 20 "$GPTC" data info "$tmp/fifo.bin"
expect_output "... and says what it expected" "fifo\.bin: a FIFO, not a regular file: expected a token shard file" \
    timeout 20 "$GPTC" data info "$tmp/fifo.bin"
expect_output "train --data FIFO says what it expected" "fifo\.bin: a FIFO: expected a folder of \*train\*\.bin shards or one shard file" \
    timeout 20 "$GPTC" train tests/models/bigram.gptc --data "$tmp/fifo.bin" --out "$tmp/fifo"
expect_output "train --data FILE explains that it serves both training and validation" \
    "warning: --data $G/train\.bin is one shard file, which serves both training and validation" \
    "$GPTC" train tests/models/bigram.gptc --data $G/train.bin --quiet --out "$tmp/onefile"
cp -r "$tmp/done" "$tmp/cut"
rm "$tmp/cut/log.txt"
head -c -40 "$tmp/done/log.jsonl" >"$tmp/cut/log.jsonl"
expect_output "report on a log whose last line is cut says so" \
    "warning: $tmp/cut/log\.jsonl: the last line is cut \(no end of line" \
    "$GPTC" report "$tmp/cut" -o "$tmp/report"
