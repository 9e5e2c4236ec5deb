#!/usr/bin/env bash
# gptc sweep: 2 variants × 2 seeds of a 2-layer model on the golden shards (24 steps each);
# gptc report on it (every figure a PNG, the numbers equal the logs'); running it again
# skips the finished runs; a sweep stopped by SIGINT and one killed by SIGKILL are resumed
# (the children stop at a checkpoint either way); a failed run is named; runs under mpirun
# (--launcher); usage errors.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
. tests/study_lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
SW=$tmp/sweep
base=(models/gpt2m.gptc --preset tiny --data tests/golden/tiny_x02)
for kv in vocab=200 eot=199 layers=2 seq_len=64 val_seq_len=64 val_tokens=256 steps=24 val_every=8; do base+=(--set "$kv"); done

# ---- usage ----
expect_output "sweep --help" "^usage: gptc sweep" "$GPTC" sweep --help
expect_output "help sweep" "^usage: gptc sweep" "$GPTC" help sweep
expect_status "sweep without --vary" 2 "$GPTC" sweep "${base[@]}" --seeds 1 --out "$tmp/x"
expect_status "sweep without --seeds" 2 "$GPTC" sweep "${base[@]}" --vary n_emb=1,2 --out "$tmp/x"
expect_status "sweep without --out" 2 "$GPTC" sweep "${base[@]}" --vary n_emb=1,2 --seeds 1
expect_status "sweep --seeds 0" 2 "$GPTC" sweep "${base[@]}" --vary n_emb=1 --seeds 0 --out "$tmp/x"
expect_status "sweep -j 0" 2 "$GPTC" sweep "${base[@]}" --vary n_emb=1 --seeds 1 --out "$tmp/x" -j 0
expect_status "sweep --vary without values" 2 "$GPTC" sweep "${base[@]}" --vary n_emb= --seeds 1 --out "$tmp/x"
expect_status "sweep --vary empty value" 2 "$GPTC" sweep "${base[@]}" --vary n_emb=1,,2 --seeds 1 --out "$tmp/x"
expect_output "sweep --vary not a number" "--vary values are numbers: 'n_emb=two'" \
    "$GPTC" sweep "${base[@]}" --vary n_emb=1,two --seeds 1 --out "$tmp/x"
expect_output "sweep --vary and --set of one name" "'steps' is both set \(--set\) and varied" \
    "$GPTC" sweep "${base[@]}" --vary steps=8,16 --seeds 1 --out "$tmp/x"
expect_status "sweep unknown option" 2 "$GPTC" sweep "${base[@]}" --vary n_emb=1 --seeds 1 --out "$tmp/x" --frob
expect_status "sweep does not take --resume" 2 "$GPTC" sweep "${base[@]}" --vary n_emb=1 --seeds 1 --out "$tmp/x" --resume "$tmp/x"
expect_status "sweep --dtype f16" 2 "$GPTC" sweep "${base[@]}" --vary n_emb=1 --seeds 1 --out "$tmp/x" --dtype f16
expect_output "sweep of an unknown config name" "did you mean 'n_emb'" \
    "$GPTC" sweep "${base[@]}" --vary n_embb=1,2 --seeds 1 --out "$tmp/x"
[ ! -e "$tmp/x" ] && pass "sweep errors start nothing" || fail "sweep errors start nothing" "$tmp/x exists"

# ---- a sweep, its report, and running it again ----
"$GPTC" sweep "${base[@]}" --vary n_emb=1,2 --seeds 2 --out "$SW" 2>"$tmp/err"; rc=$?
[ $rc -eq 0 ] && pass "sweep of 4 runs" || fail "sweep of 4 runs" "exit $rc" "$(tail -20 "$tmp/err")"
expect_output "progress names runs done of total" "done +n_emb=2/seed=1 .*\[4/4 done\]" cat "$tmp/err"
n=$(grep -l '^step:24/24 val_loss:' "$SW"/n_emb=*/seed=*/log.txt 2>/dev/null | wc -l)
[ "$n" -eq 4 ] && pass "sweep: 4 finished run folders" || fail "sweep: 4 finished run folders" "$n finished" "$(ls -R "$SW")"
expect_output "sweep.json lists the runs" '"dir": "n_emb=2/seed=1", "variant": "n_emb=2", "seed": 1' cat "$SW/sweep.json"
expect_output "train.out holds the child's command and output" \
    "^\\$ gptc train models/gpt2m.gptc .* --set n_emb=2 --seed 1 --out $SW/n_emb=2/seed=1" cat "$SW/n_emb=2/seed=1/train.out"
expect_output "seeds differ" "differ" bash -c "cmp -s $SW/n_emb=1/seed=0/log.jsonl $SW/n_emb=1/seed=1/log.jsonl || echo differ"

expect_output "report on the sweep" "and 10 figures \(2 variants, 4 runs read\)" "$GPTC" report "$SW" -o "$tmp/rep"
check_figures "$tmp/rep" 1 2
check_numbers "$tmp/rep/report.md" "$SW"/n_emb=*/seed=*/log.txt

# a run folder holding only log.jsonl reads the same: variant from its lambdas, final loss
mkdir -p "$tmp/js/b" && cp "$SW/n_emb=2/seed=0/log.jsonl" "$tmp/js/b/"
loss=$(sed -n 's/^step:24\/24 val_loss:\([0-9.]*\) .*/\1/p' "$SW/n_emb=2/seed=0/log.txt")
"$GPTC" report "$tmp/js" -o "$tmp/jsrep" >/dev/null
expect_output "report reads log.jsonl" "^[|] $tmp/js/b [|] n_emb=2 [|] 24 [|] $loss [|]" cat "$tmp/jsrep/report.md"

sums() { cat "$SW"/n_emb=*/seed=*/log.txt | md5sum; }
before=$(sums)
expect_output "running it again skips every run" "4 finished already, 0 to resume, 0 to start" \
    "$GPTC" sweep "${base[@]}" --vary n_emb=1,2 --seeds 2 --out "$SW"
[ "$(sums)" = "$before" ] && pass "skipped runs are untouched" || fail "skipped runs are untouched"
expect_output "a folder of another sweep is refused" "holds a sweep with other train arguments" \
    "$GPTC" sweep "${base[@]}" --set dim=32 --set head_dim=16 --vary n_emb=1,2 --seeds 2 --out "$SW"

# ---- a third seed: SIGINT, then SIGKILL, then the rest ----
# wait_for FILE PATTERN — until FILE has a line matching PATTERN (at most 120 s)
wait_for() { for _ in $(seq 1200); do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

"$GPTC" sweep "${base[@]}" --vary n_emb=1,2 --seeds 3 --out "$SW" 2>"$tmp/err1" &
pid=$!
wait_for "$SW/n_emb=1/seed=2/log.jsonl" train_loss
kill -INT $pid; wait $pid; rc=$?
[ $rc -eq 130 ] && pass "SIGINT stops the sweep (exit 130)" || fail "SIGINT stops the sweep (exit 130)" "exit $rc" "$(cat "$tmp/err1")"
expect_output "SIGINT: the run stopped at a checkpoint" "stopped +n_emb=1/seed=2 \(its checkpoint is kept\)" cat "$tmp/err1"
expect_output "SIGINT: how to continue" "interrupted; 1 run stopped at a checkpoint. Run the same command again" cat "$tmp/err1"
expect_output "SIGINT reached the child" "interrupted after step [0-9]+; checkpoint written" cat "$SW/n_emb=1/seed=2/train.out"

"$GPTC" sweep "${base[@]}" --vary n_emb=1,2 --seeds 3 --out "$SW" 2>"$tmp/err2" &
pid=$!
wait_for "$SW/n_emb=2/seed=2/log.jsonl" train_loss
kill -KILL $pid; wait $pid 2>/dev/null
# the orphaned child gets SIGINT (parent-death signal) and stops at a checkpoint
wait_for "$SW/n_emb=2/seed=2/train.out" "interrupted after step" && pass "SIGKILL of the sweep: the child stops at a checkpoint" \
    || fail "SIGKILL of the sweep: the child stops at a checkpoint" "$(tail -5 "$SW/n_emb=2/seed=2/train.out")"
expect_output "the interrupted run was resumed" "resume +n_emb=1/seed=2" cat "$tmp/err2"

"$GPTC" sweep "${base[@]}" --vary n_emb=1,2 --seeds 3 --out "$SW" 2>"$tmp/err3"; rc=$?
[ $rc -eq 0 ] && pass "the killed sweep completes" || fail "the killed sweep completes" "exit $rc" "$(cat "$tmp/err3")"
expect_output "it resumes the killed run and skips the rest" "5 finished already, 1 to resume, 0 to start" cat "$tmp/err3"
n=$(grep -l '^step:24/24 val_loss:' "$SW"/n_emb=*/seed=*/log.txt | wc -l)
[ "$n" -eq 6 ] && pass "6 finished runs" || fail "6 finished runs" "$n"
for r in n_emb=1/seed=2 n_emb=2/seed=2; do
    expect_output "resumed $r logged every step once" "^24 4$" bash -c \
        "echo \$(grep -c train_loss $SW/$r/log.jsonl) \$(grep -c val_loss $SW/$r/log.jsonl)"
done

# ---- a failing run is named, the others go on, the exit status is 1 ----
"$GPTC" sweep "${base[@]/tests\/golden\/tiny_x02/tests/models}" --vary n_emb=1,2 --seeds 1 --out "$tmp/fail" -j 2 2>"$tmp/errf"; rc=$?
[ $rc -eq 1 ] && pass "failed runs: exit 1" || fail "failed runs: exit 1" "exit $rc" "$(cat "$tmp/errf")"
expect_output "failed run named with its folder and status" "failed: n_emb=2/seed=0 \(exit status 1, $tmp/fail/n_emb=2/seed=0/train.out\)" cat "$tmp/errf"
expect_output "failed run's message shown" "no \*train\*\.bin files" cat "$tmp/errf"

# ---- --launcher: each run under mpirun with 2 ranks ----
expect_status "sweep --launcher empty" 2 "$GPTC" sweep "${base[@]}" --vary n_emb=1 --seeds 1 --out "$tmp/x" --launcher " "
if command -v mpirun >/dev/null; then
    export LSAN_OPTIONS=suppressions=$PWD/tests/lsan-mpi.supp ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0
    L="mpirun --allow-run-as-root --oversubscribe --mca btl self,vader -np 2 -x LSAN_OPTIONS -x ASAN_OPTIONS -x OMP_NUM_THREADS=1"
    mpi=("${base[@]}" --set seq_len=32)   # 2 ranks × 32 tokens a step: the shards' 24 steps
    "$GPTC" sweep "${mpi[@]}" --vary n_emb=2 --seeds 1 --out "$tmp/mpi" --launcher "$L" 2>"$tmp/errm"; rc=$?
    [ $rc -eq 0 ] && pass "sweep --launcher mpirun" || fail "sweep --launcher mpirun" "exit $rc" "$(cat "$tmp/errm")"
    expect_output "the launcher runs gptc by its path" "^\\$ mpirun .* -np 2 .*/gptc train " cat "$tmp/mpi/n_emb=2/seed=0/train.out"
    expect_output "2 ranks, one log" "^24$" bash -c "grep -c train_loss $tmp/mpi/n_emb=2/seed=0/log.jsonl"
fi
