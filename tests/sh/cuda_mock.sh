#!/usr/bin/env bash
# The cuda backend's host side without a GPU: gptc starts and fails cleanly where there is
# no driver or no device, and, on the recording stand-in for the driver and cuBLASLt
# (tests/cuda_mock.c), it loads its cubin and finds every kernel it launches in it, makes
# one device allocation per executor and frees it, captures each step once as a graph and
# replays it, and keeps every kernel argument, copy and cuBLASLt operand inside its
# allocation with agreeing shapes. No kernel runs here: the values are checked on a GPU by
# tools/gpu-check.sh.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
MOCK=$PWD/$(dirname "$GPTC")/tests/libcudamock.so
[ -f "$MOCK" ] || MOCK=$PWD/build/tests/libcudamock.so
export XDG_CACHE_HOME=$tmp/cache

G=tests/golden/tiny_x02
grad=(grad models/gpt2m.gptc --params $G/params.safetensors --schedule window_long=3,window_short=1 --backend cuda)
for kv in vocab=200 eot=199 dim=64 heads=2 head_dim=32 n_emb=3 block=16 seq_len=256; do grad+=(--set "$kv"); done

# ---- no driver, no device ------------------------------------------------------------------
expect_status "no driver: exit 1" 1 env GPTC_LIBCUDA=$tmp/none/libcuda.so.1 "$GPTC" "${grad[@]}" --batch $G/inputs.safetensors
expect_output "no driver: says so" "no NVIDIA driver: .*libcuda.so.1.* cannot be loaded.*--backend cpu" \
    env GPTC_LIBCUDA=$tmp/none/libcuda.so.1 "$GPTC" "${grad[@]}" --batch $G/inputs.safetensors
if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; then
    expect_output "no driver installed: plain --backend cuda says so" "no NVIDIA driver" \
        "$GPTC" "${grad[@]}" --batch $G/inputs.safetensors
fi
expect_output "no device: says so" "no usable GPU: cuInit failed" \
    env GPTC_LIBCUDA=$MOCK GPTC_MOCK_NO_DEVICE=1 "$GPTC" "${grad[@]}" --batch $G/inputs.safetensors
expect_status "no device: exit 1" 1 env GPTC_LIBCUDA=$MOCK GPTC_MOCK_NO_DEVICE=1 "$GPTC" "${grad[@]}" --batch $G/inputs.safetensors
expect_output "f64 on cuda is refused" "the cuda backend computes in bf16 or f32" \
    "$GPTC" "${grad[@]}" --batch $G/inputs.safetensors --dtype f64
expect_output "bf16 on cpu is refused" "needs --backend cuda" \
    "$GPTC" grad models/gpt2m.gptc --params x --batch y --dtype bf16

# ---- on the stand-in ----------------------------------------------------------------------------
export GPTC_LIBCUDA=$MOCK GPTC_LIBCUBLASLT=$MOCK
# mock_run NAME LOG CMD…: the command succeeds on the stand-in, which saw no error (its
# output in LOG.out: two can run at once)
mock_run() {
    local name=$1 log=$2; shift 2
    rm -f "$log"
    if GPTC_MOCK_LOG=$log "$@" >"$log.out" 2>&1 && grep -q '^errors 0$' "$log"; then pass "$name"
    else fail "$name" "$(tail -5 "$log.out")" "$(cat "$log" 2>/dev/null | head -8)"; fi
}
# field LOG KEY [N]: the N-th number after KEY
field() { awk -v k="$2" -v n="${3:-1}" '$1 == k { print $(n + 1) }' "$1"; }
check_eq() { if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got '$2', expected '$3'"; fi; }

# both precisions at once: NVRTC compiles on one core
for dt in bf16 f32; do
    mock_run "grad $dt runs on the stand-in" $tmp/grad-$dt.log "$GPTC" "${grad[@]}" --batch $G/inputs.safetensors --dtype $dt --grads $tmp/g-$dt.st &
done
wait
for dt in bf16 f32; do
    log=$tmp/grad-$dt.log
    check_eq "grad $dt: one device allocation" "$(field $log allocations)" 1
    check_eq "grad $dt: freed" "$(field $log allocations 5)" 0
    check_eq "grad $dt: one module" "$(field $log modules)" 1
    check_eq "grad $dt: one graph captured" "$(field $log graphs)" 1
    check_eq "grad $dt: replayed once" "$(field $log graph_launches)" 1
    check_eq "grad $dt: nothing launched outside the graph" "$(field $log eager_launches)" 0
    n=$(field $log gemms); if [ "${n:-0}" -gt 50 ]; then pass "grad $dt: cuBLASLt products checked ($n)"; else fail "grad $dt: products" "$n"; fi
done
# bf16 stores activations in 2 bytes: less device memory than f32
b=$(field $tmp/grad-bf16.log allocations 3); f=$(field $tmp/grad-f32.log allocations 3)
if [ "$b" -lt "$f" ]; then pass "bf16 plans less memory than f32 ($b < $f bytes)"; else fail "bf16 memory" "$b vs $f"; fi

# an out-of-range token is reported before anything runs
python3 - "$G/inputs.safetensors" "$tmp/bad.safetensors" <<'EOF'
import json, struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
n = struct.unpack('<Q', b[:8])[0]
t = json.loads(b[8:8 + n])['tokens']['data_offsets'][0] + 8 + n
b[t + 4 * 3:t + 4 * 3 + 4] = struct.pack('<i', 5000)
open(sys.argv[2], 'wb').write(b)
EOF
expect_output "a token outside the vocabulary is named" "5000 .*outside \[0, 200\)" \
    "$GPTC" "${grad[@]}" --batch $tmp/bad.safetensors
expect_status "a token outside the vocabulary: exit 1" 1 "$GPTC" "${grad[@]}" --batch $tmp/bad.safetensors

# gptc compile --target cuda makes the very cubins the backend loads: after it, the
# backend compiles nothing (the kernel cache holds its sources' hashes). Each precision
# compiles into an empty cache of its own, both at once; the benches below use them.
cubins() { ls "$1"/gptc/*.cubin 2>/dev/null | sort; }
compile=(compile models/gpt2m_x02.gptc --preset tiny --target cuda)
XDG_CACHE_HOME=$tmp/cache16 "$GPTC" "${compile[@]}" -o $tmp/c16 >"$tmp/out16" 2>&1 & pid16=$!
XDG_CACHE_HOME=$tmp/cache32 "$GPTC" "${compile[@]}" --precision f32 -o $tmp/c32 >"$tmp/out32" 2>&1 & pid32=$!
wait $pid16; rc16=$?; wait $pid32; rc32=$?
if [ $rc16 -eq 0 ] && [ $rc32 -eq 0 ]; then pass "compile --target cuda, bf16 and f32"
else fail "compile --target cuda" "$(tail -3 "$tmp/out16" "$tmp/out32")"; fi
before16=$(cubins $tmp/cache16) before32=$(cubins $tmp/cache32)

# training steps: grad and update executors, each captured once and replayed every step
log=$tmp/bench.log
mock_run "bench runs on the stand-in" $log env XDG_CACHE_HOME=$tmp/cache16 \
    "$GPTC" bench models/gpt2m_x02.gptc --preset tiny --backend cuda --steps 3 --warmup 1
check_eq "bench: one allocation per executor" "$(field $log allocations)" 2
check_eq "bench: one graph per executor" "$(field $log graphs)" 2
check_eq "bench: replayed every step" "$(field $log graph_launches)" 8
check_eq "bench: freed" "$(field $log allocations 5)" 0
check_eq "compile --target cuda covers every kernel the backend launches" "$(cubins $tmp/cache16)" "$before16"
mock_run "bench --dtype f32 runs on the stand-in" $tmp/x.log env XDG_CACHE_HOME=$tmp/cache32 \
    "$GPTC" bench models/gpt2m_x02.gptc --preset tiny --backend cuda --dtype f32 --steps 1 --warmup 0
check_eq "compile --precision f32 covers --dtype f32" "$(cubins $tmp/cache32)" "$before32"

# a short training run: validation, logs and a checkpoint through the cuda executors
run=(train models/gpt2m.gptc --data $G --init $G/params.safetensors --quiet --backend cuda --set steps=3 --set val_every=2)
for kv in vocab=200 eot=199 dim=64 heads=2 head_dim=32 n_emb=3 block=16 seq_len=256 val_seq_len=256 val_tokens=512; do run+=(--set "$kv"); done
mock_run "train runs on the stand-in" $log "$GPTC" "${run[@]}" --out $tmp/run
check_eq "train: grad, update and validation each captured once" "$(field $log graphs)" 3
if [ -s $tmp/run/checkpoint.safetensors ] && grep -q 'step:3/3' $tmp/run/log.txt; then pass "train: log and checkpoint written"
else fail "train: log and checkpoint" "$(ls $tmp/run)"; fi
expect_output "train: micro-batches are refused on cuda" "does not accumulate micro-batches" \
    "$GPTC" "${run[@]}" --out $tmp/run2 --grad-accum 2

# two ranks: NCCL bootstrapped through MPI, every gradient averaged inside the captured step
if command -v mpirun >/dev/null; then
    MPIRUN=(mpirun --allow-run-as-root --oversubscribe --mca btl self,vader)
    export LSAN_OPTIONS=suppressions=$PWD/tests/lsan-mpi.supp ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0
    export GPTC_LIBNCCL=$MOCK GPTC_MOCK_LOG=$tmp/mpi.log
    MPIRUN+=(-x LSAN_OPTIONS -x ASAN_OPTIONS -x GPTC_LIBCUDA -x GPTC_LIBCUBLASLT -x GPTC_LIBNCCL -x GPTC_MOCK_LOG -x XDG_CACHE_HOME)
    # the ranks' kernels into the cache first, without leak checks: the slow unwinding that
    # the suppressions need (fast_unwind_on_malloc=0) makes NVRTC's allocations crawl
    GPTC_MOCK_LOG=$tmp/mpi0.log ASAN_OPTIONS=detect_leaks=0 "${MPIRUN[@]}" -np 2 "$GPTC" "${run[@]}" --out $tmp/mpi0 >/dev/null 2>&1
    if "${MPIRUN[@]}" -np 2 "$GPTC" "${run[@]}" --out $tmp/mpi >"$tmp/out" 2>&1; then pass "mpirun -np 2 on the stand-in"
    else fail "mpirun -np 2 on the stand-in" "$(tail -5 "$tmp/out")"; fi
    nparams=$("$GPTC" summary models/gpt2m.gptc --set n_emb=3 2>/dev/null |
              awk '/^parameters:/ { p = 1; next } p && /^  [a-z_]+[.a-z0-9_]* +\[/ { n++ } END { print n }')
    for r in 0 1; do
        check_eq "rank $r: no error" "$(field $tmp/mpi.log.$r errors)" 0
        check_eq "rank $r: each of the $nparams gradients all-reduced once, inside the captured step" \
            "$(field $tmp/mpi.log.$r allreduces) $(field $tmp/mpi.log.$r allreduces 3)" "$nparams $nparams"
    done
    # sharded Muon: each matrix updated by its owner, then broadcast to the other rank
    nmuon=$("$GPTC" summary models/gpt2m.gptc --set n_emb=3 2>/dev/null |
            awk '/^parameters:/ { p = 1; next } p && / muon/ { n++ } END { print n }')
    check_eq "each Muon matrix broadcast once a step on both ranks" \
        "$(field $tmp/mpi.log.0 broadcasts) $(field $tmp/mpi.log.1 broadcasts)" "$((3 * nmuon)) $((3 * nmuon))"
    check_eq "... by its owner: the ranks share the $nmuon matrices" \
        "$(($(field $tmp/mpi.log.0 broadcasts 3) + $(field $tmp/mpi.log.1 broadcasts 3)))" "$((3 * nmuon))"
    if [ "$(field $tmp/mpi.log.0 broadcasts 3)" -gt 0 ] && [ "$(field $tmp/mpi.log.1 broadcasts 3)" -gt 0 ]; then
        pass "both ranks own Muon matrices"; else fail "both ranks own Muon matrices" "$(grep broadcasts $tmp/mpi.log.*)"; fi
    unset GPTC_MOCK_LOG GPTC_LIBNCCL
fi
