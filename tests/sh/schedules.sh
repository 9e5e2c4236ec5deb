#!/usr/bin/env bash
# Every schedule a graph reads is set by name at each step, whatever the model calls it:
# tests/models/ramp.gptc multiplies a layer by its own schedule `ramp` (0 at step 0, 1 from
# step 4). Trained 6 steps, the cpu backend, the ref backend and the cuda backend on the
# CUDA emulator log the same losses (f32, within 1e-5): none reads the schedule as 0 and
# none stops for want of its value.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
run=(train tests/models/ramp.gptc --data tests/golden/tiny_x02 --quiet --dtype f32)
losses() { sed -n 's/.*"train_loss": \([-0-9.e+]*\).*/\1/p' "$1/log.jsonl"; }
for be in cpu ref cuda; do
    env=(); [ $be = cuda ] && env=(GPTC_CUDA_EMULATE=1)
    if env "${env[@]}" "$GPTC" "${run[@]}" --backend $be --out "$tmp/$be" >"$tmp/$be.log" 2>&1; then pass "ramp trains on $be"
    else fail "ramp trains on $be" "$(tail -3 "$tmp/$be.log")"; fi
done
for be in ref cuda; do
    worst=$(paste <(losses "$tmp/$be") <(losses "$tmp/cpu") | awk '
        { d = $1 - $2; if (d < 0) d = -d; if (d / $2 > w) w = d / $2; n++ } END { printf "%d %.3e", n, w }')
    if [ "${worst%% *}" = 6 ] && awk -v w="${worst#* }" 'BEGIN { exit !(w <= 1e-5) }'; then
        pass "ramp: $be and cpu log the same 6 losses (worst rel ${worst#* })"
    else fail "ramp: $be and cpu log the same 6 losses" "$worst"; fi
done

# ---- --schedule NAME=VALUE pins a schedule at every step, wherever it is read ----------------
# grad: ramp pinned to 1 gives the loss of a copy of the model whose ramp is the constant 1
# (and not the loss at ramp's own value at step 0, 0), on cpu and ref
M=tests/models/ramp.gptc G=tests/golden/tiny_x02
t256=(--set seq_len=256 --set val_seq_len=256)   # the golden batch's T
"$GPTC" init $M "${t256[@]}" -o "$tmp/p.st" >/dev/null 2>&1
sed 's/^schedule ramp = .*/schedule ramp = 1/' $M >"$tmp/ramp1.gptc"
loss() { "$GPTC" grad "$@" "${t256[@]}" --params "$tmp/p.st" --batch $G/inputs.safetensors 2>"$tmp/err" | sed -n 's/^loss: //p'; }
for be in cpu ref; do
    free=$(loss $M --backend $be) pinned=$(loss $M --backend $be --schedule ramp=1) one=$(loss "$tmp/ramp1.gptc" --backend $be)
    if [ -n "$free" ] && [ -n "$pinned" ] && [ "$pinned" = "$one" ] && [ "$pinned" != "$free" ]; then
        pass "grad --schedule ramp=1 on $be: the loss of ramp = 1 ($pinned; ramp's own value at step 0: $free)"
    else fail "grad --schedule ramp=1 on $be: the loss of ramp = 1" "pinned '$pinned', ramp = 1 '$one', unpinned '$free'" \
        "$(tail -2 "$tmp/err")"; fi
done
# step: the optimizers read the pin too: with lr and ramp pinned to 0 and 1, three steps leave
# the parameters, so the loss, as they were; ramp alone pinned, they learn
losses=$("$GPTC" step $M "${t256[@]}" --params "$tmp/p.st" --batch $G/inputs.safetensors --step 0 --count 3 \
         --backend ref --schedule lr=0 --schedule ramp=1 --out "$tmp/o.st" 2>&1 | sed -n 's/^step [0-9]: loss //p' | sort -u)
learn=$("$GPTC" step $M "${t256[@]}" --params "$tmp/p.st" --batch $G/inputs.safetensors --step 0 --count 3 \
        --backend ref --schedule ramp=1 --out "$tmp/o.st" 2>&1 | sed -n 's/^step [0-9]: loss //p' | sort -u)
if [ "$(echo "$losses" | wc -w)" = 1 ] && [ "$losses" = "$(loss "$tmp/ramp1.gptc" --backend ref)" ] &&
   [ "$(echo "$learn" | wc -w)" = 3 ]; then pass "step --schedule lr=0: the optimizers read the pin (3 steps, one loss $losses)"
else fail "step --schedule lr=0: the optimizers read the pin" "lr=0: $losses" "lr free: $learn"; fi

# train: log.jsonl holds every schedule at each step, in declaration order (the cpu run above:
# ramp = min(step / 4, 1)); a run with ramp pinned logs the pin and the losses of a model
# whose ramp is that constant, and its checkpoint records the pin
want='{"lr": 0.05, "ramp": 0.0} {"lr": 0.05, "ramp": 0.0} {"lr": 0.05, "ramp": 0.25} {"lr": 0.05, "ramp": 0.5} {"lr": 0.05, "ramp": 0.75} {"lr": 0.05, "ramp": 0.75} {"lr": 0.05, "ramp": 1.0} {"lr": 0.05, "ramp": 1.0} {"lr": 0.05, "ramp": 1.0}'
got=$(sed -n 's/.*"schedules": \({[^}]*}\).*/\1/p' "$tmp/cpu/log.jsonl" | tr '\n' ' ')
[ "${got% }" = "$want" ] && pass "log.jsonl: the schedules at every step and validation" ||
    fail "log.jsonl: the schedules at every step and validation" "got  $got" "want $want"
sed 's/^schedule ramp = .*/schedule ramp = 0.5/' $M >"$tmp/ramp05.gptc"
"$GPTC" train $M --data $G --quiet --backend ref --schedule ramp=0.5 --out "$tmp/pin" >"$tmp/pin.log" 2>&1
"$GPTC" train "$tmp/ramp05.gptc" --data $G --quiet --backend ref --out "$tmp/half" >>"$tmp/pin.log" 2>&1
n=$(grep -c '"schedules": {"lr": 0.05, "ramp": 0.5}' "$tmp/pin/log.jsonl")
if [ "$n" = 9 ] && [ "$(losses "$tmp/pin")" = "$(losses "$tmp/half")" ] && [ "$(losses "$tmp/pin")" != "$(losses "$tmp/ref")" ]
then pass "train --schedule ramp=0.5: logged at all 9 records, the losses of ramp = 0.5"
else fail "train --schedule ramp=0.5: logged and trained with" "$n records log it" "$(tail -3 "$tmp/pin.log")"; fi
expect_output "resume without the pin says the run was made with it" "schedule:ramp 0\.5 → \(none\)" \
    "$GPTC" train $M --data $G --quiet --backend ref --set steps=8 --out "$tmp/pin" --resume "$tmp/pin"

# usage errors (exit 2) that name the problem, on every command that takes --schedule
for cmd in grad step bench compile train; do
    case $cmd in
    grad) args=(--params "$tmp/p.st" --batch $G/inputs.safetensors) ;;
    step) args=(--params "$tmp/p.st" --batch $G/inputs.safetensors --step 0 --out "$tmp/x.st") ;;
    bench) args=() ;;
    compile) args=(--target c -o "$tmp/c") ;;
    train) args=(--data $G --out "$tmp/t-$cmd") ;;
    esac
    expect_output "$cmd: an unknown schedule is refused, with the model's schedules" \
        "^gptc $cmd: --schedule: the model has no schedule 'rampp'; did you mean 'ramp'\? \(its schedules: lr, ramp\)$" \
        "$GPTC" $cmd $M "${t256[@]}" "${args[@]}" --schedule lr=0.1,rampp=1
    expect_status "$cmd: an unknown schedule is a usage error" 2 "$GPTC" $cmd $M "${t256[@]}" "${args[@]}" --schedule zz=1
done
for v in abc nan inf -inf 1e999 ""; do
    expect_output "grad --schedule ramp='$v' is refused" "^gptc grad: --schedule ramp: '$v' is not a finite number$" \
        "$GPTC" grad $M --params "$tmp/p.st" --batch $G/inputs.safetensors --schedule "ramp=$v"
    expect_status "grad --schedule ramp='$v' is a usage error" 2 \
        "$GPTC" grad $M --params "$tmp/p.st" --batch $G/inputs.safetensors --schedule "ramp=$v"
done
for s in ramp =1 ramp=1, ; do
    expect_output "grad --schedule '$s' is refused" "^gptc grad: --schedule takes NAME=VALUE\[,NAME=VALUE…\], got '" \
        "$GPTC" grad $M --params "$tmp/p.st" --batch $G/inputs.safetensors --schedule "$s"
done
expect_output "a model without schedules says so" "^gptc grad: --schedule lr: the model declares no schedules$" \
    "$GPTC" grad tests/models/activations.gptc --params "$tmp/p.st" --batch $G/inputs.safetensors --schedule lr=1
expect_output "a model without that schedule names its own" "no schedule 'window_long' \(its schedules: lr\)$" \
    "$GPTC" grad tests/models/bigram.gptc --params "$tmp/p.st" --batch $G/inputs.safetensors --schedule window_long=3

# a window pinned beyond what a kernel takes is an error of the run that names the node, no
# crash (cuda: tests/sh/cuda_emu_attn.sh)
A=(tests/models/attention.gptc "${t256[@]}" --set vocab=200 --set eot=199)
"$GPTC" init "${A[@]}" -o "$tmp/pa.st" >/dev/null 2>&1
for be in ref cpu; do
    out=$("$GPTC" grad "${A[@]}" --params "$tmp/pa.st" --batch $G/inputs.safetensors --backend $be --dtype f32 \
          --schedule window_long=1e12 2>&1); rc=$?
    if [ $rc = 1 ] && [[ $out == *"ATTENTION %"*": window 1e+12 is not a valid number of blocks"* ]]; then
        pass "$be: a pinned window of 1e12 blocks is an error naming the attention"
    else fail "$be: a pinned window of 1e12 blocks is an error naming the attention" "exit $rc" "$out"; fi
done
