#!/usr/bin/env bash
# Data parallelism: `mpirun -np 2 gptc train` gives the same parameters after 5 steps as one
# process with --grad-accum 2 (f32, ≤ 1e-6 relative), and the same validation losses.
# Both run single-threaded: OpenBLAS's results depend on its thread count, and mpirun may
# bind each rank to one core, so equal thread counts make the comparison exact.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if ! command -v mpirun >/dev/null; then fail "mpirun is installed" "tools/deps.sh installs openmpi-bin"; exit 0; fi
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --mca btl self,vader)
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan-mpi.supp ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
MPIRUN+=(-x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS -x LSAN_OPTIONS -x ASAN_OPTIONS)
G=tests/golden/tiny_x02
args=(models/gpt2m.gptc --data $G --quiet --dtype f32 --seed 7)
for kv in vocab=200 eot=199 dim=32 heads=4 head_dim=8 n_emb=2 block=4 seq_len=64 val_seq_len=64 \
          val_tokens=256 steps=5 val_every=5; do args+=(--set "$kv"); done
"$GPTC" train "${args[@]}" --grad-accum 2 --out "$tmp/accum" >"$tmp/log1" 2>&1
expect_status "one process, --grad-accum 2" 0 test -f "$tmp/accum/checkpoint.safetensors"
"${MPIRUN[@]}" -np 2 "$GPTC" train "${args[@]}" --out "$tmp/mpi" >"$tmp/log2" 2>&1
if [ -f "$tmp/mpi/checkpoint.safetensors" ]; then pass "mpirun -np 2"; else fail "mpirun -np 2" "$(tail -20 "$tmp/log2")"; fi
expect_output "np 2 = grad-accum 2 after 5 steps" "^worst: [0-9.e+-]+ .*tensors$" \
    "$GPTC" compare "$tmp/mpi/checkpoint.safetensors" "$tmp/accum/checkpoint.safetensors" --tol 1e-6 --quiet --skip run. --skip trainer.data
expect_output "same validation losses" "^same$" bash -c \
    "diff <(grep -o 'val_loss:[0-9.]*' $tmp/mpi/log.txt) <(grep -o 'val_loss:[0-9.]*' $tmp/accum/log.txt) >/dev/null && echo same"
expect_output "one log, written by rank 0" "^5$" bash -c "grep -c train_loss $tmp/mpi/log.jsonl"
