#!/usr/bin/env bash
# The GPU checks of the cuda backend in one call on a lent GPU machine (docs/gpu-check.md):
#   a. environment   GPU, driver, nvcc, PyTorch, compilers, CUDA libraries
#   b. build         make build/gptc there, else the bundled .gpu/gptc (tools/gpu-bundle.sh)
#   c. golden        gptc grad --backend cuda on tests/golden (f32 and bf16) against the
#                    float64 loss and gradients
#   d. curves        50 steps of x02 at the tiny preset from one init file, cpu (f32) and
#                    cuda (bf16), training losses side by side
#   e. bench         gptc bench at the medium preset (x00, x04)
#   f. profile       one step of x04 at the medium preset with every kernel timed
#                    (GPTC_PROFILE=1), measured against the roofline model's estimate per
#                    kind of kernel
#   g. pytorch       bench/pytorch/bench.py at the medium preset (1 and 5 embeddings), and
#                    gptc against it
# Every run has a time limit and the whole script a budget (GPU_CHECK_BUDGET seconds,
# default 300), so it ends inside a 360 s device call: with the machine's start, one call
# and a rerun fit the 15 minutes a task is lent. A failed stage is reported and the next
# one runs. Logs go to ${OUT:-/tmp/gpu-check} (at most 8 files); the last output is a
# table: stage | result | figures, then the profile's table. Without a GPU it stops after
# a and b. LD_LIBRARY_PATH (the bundle's libraries, the toolkit's lib64) is set for gptc
# alone: python3 and torch run with the machine's own.
#   bash tools/gpu-check.sh            (from the repository root, .gpu carried)
# For tests here: GPTC=PATH uses that binary (no build); GPU_CHECK_ASSUME_GPU=1 goes on
# past a missing GPU. A dry run on the CUDA emulator (tests/sh/gpu_check.sh) sizes the work
# down: GPU_CHECK_MODEL="--set K=V …" replaces the presets of d, e and f (and skips g),
# GPU_CHECK_CURVE_STEPS the 50 steps of d, GPU_CHECK_DATA the Brown shards, and
# GPU_CHECK_SLOW=N multiplies every time limit and the budget by N, GPU_CHECK_SETS names
# the golden sets of c.
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
T0=$SECONDS
SLOW=${GPU_CHECK_SLOW:-1}
BUDGET=$((${GPU_CHECK_BUDGET:-300} * SLOW))
PEAK_TFLOPS=${PEAK_TFLOPS:-989}       # bf16 dense peak for MFU (H100/H200 SXM), as bench.py
OUTD=${OUT:-/tmp/gpu-check}
mkdir -p "$OUTD" || exit 1
W=$(mktemp -d /tmp/gpu-check-work.XXXXXX) || exit 1
trap 'rm -rf "$W"' EXIT
LOG_ENV=$OUTD/env.log LOG_BUILD=$OUTD/build.log LOG_GOLDEN=$OUTD/golden.log
LOG_CURVES=$OUTD/curves.log LOG_BENCH=$OUTD/bench.log LOG_PROFILE=$OUTD/profile.log SUMMARY=$OUTD/summary.txt
: >"$LOG_ENV"; : >"$LOG_BUILD"; : >"$LOG_GOLDEN"; : >"$LOG_CURVES"; : >"$LOG_BENCH"; : >"$LOG_PROFILE"

ROWS=()
row() { ROWS+=("$1|$2|$3"); printf '  -> %s: %s  %s\n' "$1" "$2" "$3"; }
have() { command -v "$1" >/dev/null 2>&1; }
elapsed() { echo $((SECONDS - T0)); }
hdr() { printf '\n== %s  [t=%ss]\n' "$1" "$(elapsed)"; }

table() {
    local r s res fig
    {
        printf '\n%-25s | %-6s | %s\n' stage result figures
        printf '%-25s-+-%-6s-+-%s\n' ------------------------- ------ --------------------------------
        for r in "${ROWS[@]}"; do
            IFS='|' read -r s res fig <<<"$r"
            printf '%-25s | %-6s | %s\n' "$s" "$res" "$fig"
        done
        printf '(%ss in all; logs in %s)\n' "$(elapsed)" "$OUTD"
        [ -n "$PROFILE_TABLE" ] && printf '\n%s\n' "$PROFILE_TABLE"
    } | tee "$SUMMARY"
}
PROFILE_TABLE=

HAVE_TIMEOUT=0; have timeout && HAVE_TIMEOUT=1
# lim CAP RESERVE [STAGE_END]: seconds for the next run: CAP, or less so that RESERVE
# seconds of the budget stay for the later stages (and the run ends by STAGE_END)
lim() {
    local l=$((BUDGET - $(elapsed) - $2 * SLOW)) cap=$(($1 * SLOW))
    [ "$l" -gt "$cap" ] && l=$cap
    if [ $# -ge 3 ]; then local s=$(($3 - SECONDS)); [ "$l" -gt "$s" ] && l=$s; fi
    echo "$l"
}
LAST_LIMIT=0
# run LIMIT OUTFILE CMD…: CMD under `timeout`, stdout+stderr to OUTFILE; CMD's status (124: timed out)
run() {
    local l=$1 f=$2; shift 2
    LAST_LIMIT=$l
    printf '$ %s   [limit %ss]\n' "$*" "$l" >"$f"
    if [ $HAVE_TIMEOUT = 1 ]; then timeout -k 5 "$l" "$@" >>"$f" 2>&1; else "$@" >>"$f" 2>&1; fi
}
why() { case $1 in 124 | 137) echo "timed out (limit ${2:-$LAST_LIMIT} s)" ;; 127) echo "not found" ;; *) echo "exit $1" ;; esac; }
rel() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; if (b < 0) b = -b; printf "%.2e", d / b }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0 && a != "" && a !~ /nan|inf/) }'; }
# errline FILE: the run's error message (a 'gptc CMD: …' line, else the last line), shortened
errline() {
    local e
    e=$(grep -v '^\$ ' "$1" | grep -E '^gptc [a-z]+: |rror' | grep -vE 'forward \+ backward in|^gptc bench: .* T=' | tail -1)
    [ -n "$e" ] || e=$(grep -v '^\$ ' "$1" | grep . | tail -1)
    printf '%s' "${e:0:${2:-90}}"
}
num() { [[ $1 =~ ^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$ ]]; }

# ---------------------------------------------------------------------------------------
hdr "a. environment"
export PATH=$PATH:/usr/local/cuda/bin
{ echo "date: $(date -u)"; echo "host: $(uname -a)"; echo "cwd: $ROOT"; echo "budget: ${BUDGET}s"; } >>"$LOG_ENV"
missing=()
[ $HAVE_TIMEOUT = 1 ] || { missing+=(timeout); echo "WARNING: no 'timeout' (coreutils): runs have no time limit"; }
GPU=""
if have nvidia-smi; then
    smi=$(timeout 30 nvidia-smi -L 2>&1); echo "$smi" | tee -a "$LOG_ENV"
    GPU=$(echo "$smi" | sed -n 's/^GPU 0: \(.*\) (UUID.*/\1/p')
    q=$(timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1)
    echo "nvidia-smi: $q" | tee -a "$LOG_ENV"
else
    missing+=(nvidia-smi); echo "nvidia-smi: not found" | tee -a "$LOG_ENV"
fi
if have nvcc; then nv=$(nvcc --version | grep -i release); else nv="nvcc not found"; missing+=(nvcc); fi
echo "nvcc: $nv" | tee -a "$LOG_ENV"
TORCH=""
if have python3; then
    TORCH=$(timeout 90 python3 -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>>"$LOG_ENV" | tail -1)
    [ -n "$TORCH" ] || missing+=(torch)
    echo "python3: $(python3 --version 2>&1) at $(command -v python3); torch: ${TORCH:-not importable}" | tee -a "$LOG_ENV"
else
    missing+=(python3); echo "python3: not found" | tee -a "$LOG_ENV"
fi
for t in cc make flex bison xz; do
    if have $t; then echo "$t: $($t --version 2>&1 | head -1)"; else echo "$t: not found"; fi
done | tee -a "$LOG_ENV"
for t in cc make flex bison xz; do have $t || missing+=("$t"); done
echo "glibc: $(ldd --version 2>&1 | head -1); cores: $(nproc); memory: $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)" | tee -a "$LOG_ENV"

# the bundle's libraries, unpacked once outside the tree (a .gpu/lib would travel next time)
LIBDIR=${TMPDIR:-/tmp}/gpu-check-lib
if [ -f .gpu/lib.tar.xz ] && [ "$(cat "$LIBDIR/.sha256" 2>/dev/null)" != "$(cat .gpu/lib.sha256 2>/dev/null)" ]; then
    rm -rf "$LIBDIR"; mkdir -p "$LIBDIR"
    if have xz; then tar -C "$LIBDIR" -xJf .gpu/lib.tar.xz
    elif have python3; then python3 -c 'import sys, tarfile as t; t.open(sys.argv[1]).extractall(sys.argv[2], **({"filter": "data"} if hasattr(t, "data_filter") else {}))' .gpu/lib.tar.xz "$LIBDIR"
    fi 2>&1 | tee -a "$LOG_ENV"
    if [ -e "$LIBDIR/libopenblas.so.0" ]; then cp .gpu/lib.sha256 "$LIBDIR/.sha256"
    else echo "could not unpack .gpu/lib.tar.xz (no xz, no python3?)" | tee -a "$LOG_ENV"; fi
fi
[ -d .gpu ] || echo "no .gpu bundle here (tools/gpu-bundle.sh, carried as .gpu): only a local build can run" | tee -a "$LOG_ENV"
# gptc's library path, for gptc alone (putting the toolkit's lib64 first for python3 is a
# known way to break `import torch`)
GPTC_LD=$LIBDIR:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# the driver's folder on these images, last, in case ld.so.cache does not name libcuda.so.1
if ! ldconfig -p 2>/dev/null | grep -qF libcuda.so.1 && [ -d /usr/local/nvidia/lib64 ]; then
    GPTC_LD=$GPTC_LD:/usr/local/nvidia/lib64
fi
echo "gptc's LD_LIBRARY_PATH=$GPTC_LD" >>"$LOG_ENV"
# the libraries gptc loads at run time (informative: gptc says itself what it cannot load)
culibs=""
for l in libcuda.so.1 libnvrtc.so libcublasLt.so libnccl.so.2; do
    found=""
    ldconfig -p 2>/dev/null | grep -qF "$l" && found=1
    IFS=: read -ra dirs <<<"$GPTC_LD"
    for d in "${dirs[@]}" /usr/local/nvidia/lib64; do ls "$d/$l"* >/dev/null 2>&1 && found=1; done
    if [ -n "$found" ]; then culibs+="$l "; else culibs+="($l missing) "; missing+=("$l"); fi
done
echo "CUDA libraries: $culibs" | tee -a "$LOG_ENV"
ms=""; [ ${#missing[@]} -gt 0 ] && ms="missing: $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')"
nvs=${nv##*release }; nvs=${nvs%%,*}
envres="no GPU"; [ -n "$GPU" ] && envres=ok
row "a. environment" "$envres" "${GPU:+$GPU; }nvcc ${nvs}; torch ${TORCH:-not importable}; $ms"

# ---------------------------------------------------------------------------------------
hdr "b. build"
src_hash() {
    find base formats ir frontend step codegen runtime trainer study cli . -maxdepth 1 -type f \
        \( -name '*.c' -o -name '*.h' -o -name '*.l' -o -name '*.y' -o -name '*.def' -o -name Makefile \) \
        2>/dev/null | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1
}
GPTC=${GPTC:-}
how=""
if [ -n "$GPTC" ]; then
    how="GPTC=$GPTC (given)"
else
    mk=(make -j"$(nproc)" build/gptc)
    if ! have cc || ! have make; then
        how="no build (cc or make missing)"
    else
        if { ! have flex || ! have bison; } && [ -d .gpu/gen ] && [ ! -e build/gen/parser.c ]; then
            mkdir -p build/gen && cp .gpu/gen/* build/gen/ && touch build/gen/parser.c build/gen/parser.h &&
                touch build/gen/lexer.c build/gen/lexer.h && echo "flex/bison missing: their output from .gpu/gen" | tee -a "$LOG_BUILD"
        fi
        cflags="-O2 -g"
        if ! printf '#include <cblas.h>\n' | cc -E -x c - >/dev/null 2>&1 && [ -f .gpu/include/cblas.h ]; then
            cflags+=" -I$ROOT/.gpu/include"; mk+=("CFLAGS=$cflags"); echo "no cblas.h: .gpu/include" | tee -a "$LOG_BUILD"
        fi
        if ! printf 'int main(void) { return 0; }\n' | cc -x c - -o "$W/a.out" -lopenblas >/dev/null 2>&1 && [ -e "$LIBDIR/libopenblas.so.0" ]; then
            mk+=("LDLIBS=-fopenmp -L$LIBDIR -l:libopenblas.so.0 -lm -lpthread -ldl")
            echo "no -lopenblas: links the bundle's libopenblas.so.0 ($LIBDIR)" | tee -a "$LOG_BUILD"
        fi
        t=$SECONDS
        run "$(lim 60 300)" "$W/build.out" "${mk[@]}"; rc=$?
        cat "$W/build.out" >>"$LOG_BUILD"
        if [ $rc -eq 0 ] && [ -x build/gptc ]; then
            GPTC=build/gptc; how="built here by make in $((SECONDS - t)) s"
        else
            how="make failed ($(why $rc)): $(grep -v '^\$ ' "$W/build.out" | grep -m1 -iE 'error|not found|No such' | cut -c1-90)"
        fi
    fi
    if [ -z "$GPTC" ] && [ -x .gpu/gptc ]; then
        GPTC=.gpu/gptc
        if [ "$(cat .gpu/SOURCES.sha256 2>/dev/null)" != "$(src_hash)" ]; then how+="; bundled .gpu/gptc is OLDER than these sources"; fi
    fi
fi
echo "build: $how" | tee -a "$LOG_BUILD"
ok_gptc=0
if [ -n "$GPTC" ]; then
    echo "gptc: $GPTC" | tee -a "$LOG_BUILD"
    if LD_LIBRARY_PATH=$GPTC_LD ldd "$GPTC" 2>/dev/null | grep -q 'libgomp.*not found' && [ -e "$LIBDIR/fallback/libgomp.so.1" ]; then
        GPTC_LD=$GPTC_LD:$LIBDIR/fallback; echo "no libgomp.so.1 here: the bundle's" | tee -a "$LOG_BUILD"
    fi
    LD_LIBRARY_PATH=$GPTC_LD ldd "$GPTC" >>"$LOG_BUILD" 2>&1
    # from here on $GPTC is a wrapper that gives gptc, and only gptc, its library path
    real=$(cd "$(dirname "$GPTC")" && pwd)/$(basename "$GPTC")
    printf '#!/usr/bin/env bash\nLD_LIBRARY_PATH=%q exec %q "$@"\n' "$GPTC_LD" "$real" >"$W/gptc" && chmod +x "$W/gptc" && GPTC=$W/gptc
    if "$GPTC" check models/gpt2m_x00.gptc --preset tiny >>"$LOG_BUILD" 2>&1; then ok_gptc=1
    else echo "gptc does not run:" | tee -a "$LOG_BUILD"; LD_LIBRARY_PATH=$GPTC_LD ldd "$real" 2>&1 | grep -E 'not found' | tee -a "$LOG_BUILD"; fi
fi
if [ $ok_gptc = 1 ]; then row "b. build" ok "$GPTC: $how"; else row "b. build" FAIL "no runnable gptc: $how"; fi

if [ -z "$GPU" ] && [ "${GPU_CHECK_ASSUME_GPU:-0}" != 1 ]; then
    table
    echo "gpu-check: no NVIDIA GPU on this machine ($(have nvidia-smi && echo 'nvidia-smi lists none' || echo 'no nvidia-smi')): stopped after the environment and build stages."
    exit 2
fi
if [ $ok_gptc = 0 ]; then
    table
    echo "gpu-check: no runnable gptc (see $LOG_BUILD): stopped after the environment and build stages."
    exit 1
fi

# ---------------------------------------------------------------------------------------
# The cpu side of the loss curves (d) needs no GPU: it runs in the background meanwhile.
CSTEPS=${GPU_CHECK_CURVE_STEPS:-50}
read -ra CURVE_MODEL <<<"${GPU_CHECK_MODEL:---preset tiny}"
read -ra BENCH_MODEL <<<"${GPU_CHECK_MODEL:---preset medium}"
DATA=${GPU_CHECK_DATA:-}
[ -n "$DATA" ] || for d in data/brown .gpu/data/brown; do ls $d/*train*.bin >/dev/null 2>&1 && ls $d/*val*.bin >/dev/null 2>&1 && { DATA=$d; break; }; done
TRAIN_ARGS=("${CURVE_MODEL[@]}" --data "$DATA" --init "$W/init.safetensors" --seed 0 --set steps=$CSTEPS --set val_every=$(((CSTEPS + 1) / 2)) --quiet)
cpu_pid=""
cpu_lim=0
init_ok=0
if [ -n "$DATA" ] && "$GPTC" init models/gpt2m_x02.gptc "${CURVE_MODEL[@]}" -o "$W/init.safetensors" --seed 0 >>"$LOG_CURVES" 2>&1; then
    init_ok=1
    threads=$(($(nproc) / 2)); [ $threads -lt 1 ] && threads=1
    cpu_lim=$(lim 120 110)
    OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads OMP_WAIT_POLICY=PASSIVE \
        run "$cpu_lim" "$W/train_cpu.out" "$GPTC" train models/gpt2m_x02.gptc "${TRAIN_ARGS[@]}" --out "$W/run_cpu" --backend cpu &
    cpu_pid=$!
fi

# ---------------------------------------------------------------------------------------
hdr "c. golden (gptc grad --backend cuda vs the float64 golden data)"
# the sets, their config overrides, windows and losses: those of the golden tests
. tests/golden_sets.sh
read -ra sets <<<"${GPU_CHECK_SETS:-${golden_sets[*]}}"
declare -A LTOL=([f32]=1e-4 [bf16]=2e-2) GTOL=([f32]=1e-4 [bf16]=5e-2)
g_end=$((SECONDS + $(lim 70 170)))
printf '%-10s %-5s %-10s %-10s %-24s %s\n' set dtype loss_rel grads_rel worst_tensor result
for dt in f32 bf16; do
    for s in "${sets[@]}"; do
        G=tests/golden/$s
        args=(); for kv in ${cfg[$s]}; do args+=(--set "$kv"); done
        l=$(lim 30 170 $g_end)
        if [ "$l" -lt 5 ]; then row "c. golden $s $dt" SKIP "no time left"; continue; fi
        run "$l" "$W/grad.out" "$GPTC" grad models/gpt2m.gptc "${args[@]}" --params "$G/params.safetensors" \
            --batch "$G/inputs.safetensors" --schedule "${sched[$s]}" --backend cuda --dtype $dt --grads "$W/g_${s}_$dt.safetensors"
        rc=$?; cat "$W/grad.out" >>"$LOG_GOLDEN"
        if [ $rc -ne 0 ]; then
            row "c. golden $s $dt" FAIL "grad $(why $rc): $(errline "$W/grad.out")"; continue
        fi
        got=$(sed -n 's/^loss: //p' "$W/grad.out")
        le_=$(rel "$got" "${loss[$s]}")
        # bf16: skip_weights' gradient is a sum of thousands of bf16 products that cancel, a few
        # scalars held to 2e-1 on their own (as tests/sh/cuda_emu.sh holds them)
        sel=(); [ $dt = bf16 ] && sel=(--skip skip_weights)
        "$GPTC" compare "$W/g_${s}_$dt.safetensors" "$G/grads.safetensors" "${sel[@]}" >"$W/cmp.out" 2>&1; crc=$?
        { echo "\$ gptc compare g_${s}_$dt.safetensors $G/grads.safetensors ${sel[*]} (exit $crc)"; cat "$W/cmp.out"; } >>"$LOG_GOLDEN"
        w=$(grep '^worst:' "$W/cmp.out")
        ge=$(echo "$w" | sed -n 's/^worst: \([^ ]*\) .*/\1/p'); gt=$(echo "$w" | sed -n 's/^worst: [^ ]* (\([^)]*\)).*/\1/p')
        res=PASS
        le "$le_" "${LTOL[$dt]}" || res=FAIL
        le "$ge" "${GTOL[$dt]}" || res=FAIL
        [ $crc -eq 0 ] || res=FAIL
        sw=""
        if [ $dt = bf16 ]; then
            "$GPTC" compare "$W/g_${s}_$dt.safetensors" "$G/grads.safetensors" --only skip_weights >"$W/cmp.out" 2>&1 || res=FAIL
            cat "$W/cmp.out" >>"$LOG_GOLDEN"
            se=$(sed -n 's/^worst: \([^ ]*\) .*/\1/p' "$W/cmp.out")
            le "$se" 2e-1 || res=FAIL
            sw="; skip_weights ${se:-?} (tol 2e-1)"
        fi
        printf '%-10s %-5s %-10s %-10s %-24s %s\n' "$s" $dt "$le_" "${ge:-?}" "${gt:-?}" $res | tee -a "$LOG_GOLDEN"
        row "c. golden $s $dt" $res "loss $le_ (tol ${LTOL[$dt]}), grads ${ge:-?} in ${gt:-?} (tol ${GTOL[$dt]})$sw"
    done
done

# ---------------------------------------------------------------------------------------
hdr "d. loss curves (x02 ${CURVE_MODEL[*]}, $CSTEPS steps, one init: cpu f32 vs cuda bf16)"
train_losses() { sed -n 's/^{"step": \([0-9]*\), "train_loss": \([^,]*\),.*/\1 \2/p' "$1/log.jsonl" 2>/dev/null; }
val_losses() { sed -n 's/^{"step": \([0-9]*\), "val_loss": \([^,]*\),.*/\1 \2/p' "$1/log.jsonl" 2>/dev/null; }
if [ -z "$DATA" ]; then
    row "d. curves" SKIP "no Brown shards (data/brown or .gpu/data/brown: run tools/gpu-bundle.sh)"
elif [ $init_ok = 0 ]; then
    row "d. curves" FAIL "gptc init failed (see curves.log)"
else
    l=$(lim 60 150)
    if [ "$l" -lt 10 ]; then crc=124; echo "no time left" >"$W/train_cuda.out"
    else run "$l" "$W/train_cuda.out" "$GPTC" train models/gpt2m_x02.gptc "${TRAIN_ARGS[@]}" --out "$W/run_cuda" --backend cuda --dtype bf16; crc=$?; fi
    wait "$cpu_pid"; prc=$?
    { echo "== cpu run (exit $prc)"; cat "$W/train_cpu.out"; echo "== cuda run (exit $crc)"; cat "$W/train_cuda.out"; } >>"$LOG_CURVES"
    train_losses "$W/run_cpu" >"$W/cpu.tl"; train_losses "$W/run_cuda" >"$W/cuda.tl"
    val_losses "$W/run_cpu" >"$W/cpu.vl"; val_losses "$W/run_cuda" >"$W/cuda.vl"
    # side by side: every 5th step and the last, both runs' training loss and |difference|
    awk 'FNR == NR { c[$1] = $2; next } { g[$1] = $2; if ($1 + 0 > last) last = $1 + 0 }
         END {
             printf "%5s %10s %10s %9s\n", "step", "cpu_f32", "cuda_bf16", "|diff|"
             for (s = 0; s <= last; s++) {
                 if (!(s in c) || !(s in g)) continue
                 d = c[s] - g[s]; if (d < 0) d = -d; if (d > m) m = d; n++
                 if (s % 5 == 0 || s == last) printf "%5d %10.4f %10.4f %9.4f\n", s, c[s], g[s], d
             }
             if (n) printf "max |diff| over %d common steps: %.4f\n", n, m; else print "no common steps"
         }' "$W/cpu.tl" "$W/cuda.tl" | tee "$W/curves.txt" | tee -a "$LOG_CURVES"
    vals=$(awk 'FNR == NR { c[$1] = $2; next } ($1 in c) { printf "%sval@%d %.3f/%.3f", (n++ ? ", " : "cpu/cuda "), $1, c[$1], $2 }' "$W/cpu.vl" "$W/cuda.vl")
    [ -n "$vals" ] && echo "$vals" | tee -a "$LOG_CURVES"
    n_cpu=$(wc -l <"$W/cpu.tl"); n_cuda=$(wc -l <"$W/cuda.tl")
    maxd=$(sed -n 's/^max |diff| over [0-9]* common steps: //p' "$W/curves.txt")
    fin=$(awk 'FNR == NR { c = $2; cs = $1; next } { g = $2; gs = $1 } END { printf "last train loss cpu %.3f (step %s) cuda %.3f (step %s)", c, cs, g, gs }' "$W/cpu.tl" "$W/cuda.tl")
    if [ $prc -ne 0 ] || [ $crc -ne 0 ] || [ "$n_cpu" -lt "$CSTEPS" ] || [ "$n_cuda" -lt "$CSTEPS" ]; then
        e=""; [ $prc -ne 0 ] && e+="cpu $(why $prc "$cpu_lim"): $(errline "$W/train_cpu.out" 70); "
        [ $crc -ne 0 ] && e+="cuda $(why $crc): $(errline "$W/train_cuda.out" 70); "
        row "d. curves" FAIL "${e}steps cpu $n_cpu cuda $n_cuda; max|diff| ${maxd:-?}"
    else
        res=ok; le "$maxd" 0.1 || res=LOOK
        row "d. curves" $res "max |diff| $maxd nats ($CSTEPS steps); $fin; ${vals}"
    fi
fi
[ -n "$cpu_pid" ] && wait "$cpu_pid" 2>/dev/null   # never let the cpu run overlap the benchmark

# ---------------------------------------------------------------------------------------
hdr "e. bench (medium, 65536 tokens a step, windows 27/13: gptc cuda bf16)"
declare -A g_ms g_mb p_ms p_mb p_fl
for k in 0 4; do
    n=$((k + 1))
    l=$(lim 60 $((k == 0 ? 100 : 70)))
    if [ "$l" -lt 10 ]; then row "e. gptc x0$k (n_emb $n)" SKIP "no time left"; continue; fi
    run "$l" "$W/gb.out" "$GPTC" bench models/gpt2m_x0$k.gptc "${BENCH_MODEL[@]}" --backend cuda --steps 3 --warmup 1 --schedule window_long=27,window_short=13
    rc=$?; cat "$W/gb.out" >>"$LOG_BENCH"
    ms=$(sed -n 's/^median_ms_per_step: //p' "$W/gb.out"); mb=$(sed -n 's/^device_mb: //p' "$W/gb.out")
    su=$(sed -n 's/^setup_ms: //p' "$W/gb.out")
    if [ $rc -eq 0 ] && num "$ms"; then
        g_ms[$n]=$ms; g_mb[$n]=$mb
        row "e. gptc x0$k (n_emb $n)" ok "${ms} ms/step, ${mb:-?} MB planned, setup ${su:-?} ms"
    else
        row "e. gptc x0$k (n_emb $n)" FAIL "bench $(why $rc): $(errline "$W/gb.out")"
    fi
done

# ---------------------------------------------------------------------------------------
hdr "f. profile (x04 medium: every kernel timed, against the roofline model's estimate)"
# the second run of each executor (the first loads the module): per kind of kernel, the
# measured time and the estimate, summed over the gradient step and the update
l=$(lim 45 50)
if [ "$l" -lt 15 ]; then row "f. profile x04" SKIP "no time left"
else
    GPTC_PROFILE=1 run "$l" "$W/prof.out" "$GPTC" bench models/gpt2m_x04.gptc "${BENCH_MODEL[@]}" --backend cuda --steps 1 --warmup 1 --schedule window_long=27,window_short=13
    rc=$?; cat "$W/prof.out" >>"$LOG_PROFILE"
    PROFILE_TABLE=$(awk '
        /^cuda profile \(executor [0-9]+, run 2\)/ { on = 1; next }
        /^cuda profile/ || /^  slowest:/ { on = 0 }
        on && $0 ~ /^  [a-z]/ && $1 != "kind" {
            n = NF; est = (n >= 5 && $(n - 1) ~ /^[0-9.]+$/ && $(n - 2) ~ /^[0-9.]+$/) ? 1 : 0
            k = $1; for (i = 2; i <= n - 2 - 2 * est; i++) k = k " " $i
            if (!(k in cnt)) order[no++] = k
            cnt[k] += $(n - 1 - 2 * est); ms[k] += $(n - 2 * est); if (est) e[k] += $(n - 1); any += est
        }
        END {
            if (!no) exit 1
            printf "%-20s | %7s | %11s | %12s | %s\n", "kind (x04 medium)", "kernels", "measured_ms", "estimated_ms", "measured/estimated"
            for (i = 0; i <= no; i++) {
                if (i < no) { k = order[i]; tm += ms[k]; te += e[k]; c = cnt[k]; m = ms[k]; x = e[k] }
                else { k = "all"; c = ""; m = tm; x = te }
                xs = "-"; r = "-"   # (a ">" inside printf would redirect it)
                if (any) xs = sprintf("%.3f", x)
                if (any && x > 0) r = sprintf("%.2f", m / x)
                printf "%-20s | %7s | %11.3f | %12s | %s\n", k, c, m, xs, r
            }
        }' "$W/prof.out")
    if [ $rc -eq 0 ] && [ -n "$PROFILE_TABLE" ]; then
        row "f. profile x04" ok "$(echo "$PROFILE_TABLE" | awk -F'|' '$1 ~ /^all / { gsub(/ /, ""); printf "%s ms measured, %s ms estimated (un-graphed, events between kernels)", $3, $4 }')"
    else
        PROFILE_TABLE=""
        row "f. profile x04" FAIL "bench $(why $rc): $(errline "$W/prof.out")"
    fi
fi

# ---------------------------------------------------------------------------------------
hdr "g. pytorch (bench/pytorch/bench.py, the same work), and gptc against it"
BP=bench/pytorch/bench.py
pt_extra=()
if [ -f $BP ]; then
    # the same work as gptc bench: windows 27/13 and an eot about every 400 tokens
    grep -q -- '--window' $BP && pt_extra+=(--window 27)
    grep -q -- '--doc-len' $BP && pt_extra+=(--doc-len 400)
    grep -q -- '--peak-tflops' $BP && pt_extra+=(--peak-tflops "$PEAK_TFLOPS")
fi
for n in 1 5; do
    if [ -n "${GPU_CHECK_MODEL:-}" ]; then row "g. pytorch n_emb $n" SKIP "GPU_CHECK_MODEL: a dry run"; continue; fi
    if [ ! -f $BP ]; then row "g. pytorch n_emb $n" SKIP "$BP missing"; continue; fi
    if [ -z "$TORCH" ]; then row "g. pytorch n_emb $n" SKIP "python3 with torch missing"; continue; fi
    l=$(lim 90 $((n == 1 ? 30 : 0)))
    if [ "$l" -lt 15 ]; then row "g. pytorch n_emb $n" SKIP "no time left"; continue; fi
    PYTHONUNBUFFERED=1 run "$l" "$W/pb.out" python3 $BP --preset medium --n-emb $n --tokens 65536 --steps 3 --warmup 1 \
        --device cuda --compile "${pt_extra[@]}"
    rc=$?; cat "$W/pb.out" >>"$LOG_BENCH"
    line=$(grep '^pytorch preset=' "$W/pb.out" | tail -1)
    ms=$(echo "$line" | sed -n 's/.* step_ms=\([^ ]*\).*/\1/p'); mb=$(echo "$line" | sed -n 's/.* peak_mb=\([^ ]*\).*/\1/p')
    fl=$(echo "$line" | sed -n 's/.* flops=\([^ ]*\).*/\1/p'); mf=$(echo "$line" | sed -n 's/.* mfu=\([^ ]*\).*/\1/p')
    if [ $rc -eq 0 ] && num "$ms"; then
        p_ms[$n]=$ms; p_mb[$n]=$mb; p_fl[$n]=$fl
        row "g. pytorch n_emb $n" ok "${ms} ms/step, peak ${mb} MB, ${fl} FLOP/step, MFU ${mf}"
    else
        row "g. pytorch n_emb $n" FAIL "bench.py $(why $rc): $(errline "$W/pb.out")"
    fi
done
# gptc against PyTorch: step-time ratio and MFU with PyTorch's FLOP count; per-embedding overhead
for n in 1 5; do
    if [ -n "${g_ms[$n]:-}" ] && [ -n "${p_ms[$n]:-}" ]; then
        f=$(awk -v g="${g_ms[$n]}" -v p="${p_ms[$n]}" -v fl="${p_fl[$n]}" -v pk="$PEAK_TFLOPS" \
            'BEGIN { printf "gptc/pytorch %.2f; MFU gptc %.3f pytorch %.3f", g / p, fl / (g / 1e3) / (pk * 1e12), fl / (p / 1e3) / (pk * 1e12) }')
        f+="; GPU MB gptc ${g_mb[$n]:-?} (planned) pytorch ${p_mb[$n]:-?} (peak)"
        row "g. compare n_emb $n" "$(awk -v g="${g_ms[$n]}" -v p="${p_ms[$n]}" 'BEGIN { print (g <= p ? "faster" : "slower") }')" "$f (peak $PEAK_TFLOPS TFLOP/s)"
    fi
done
ovh() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f%%", (b - a) / 4 / a * 100 }'; }
o=""
[ -n "${g_ms[1]:-}" ] && [ -n "${g_ms[5]:-}" ] && o+="gptc $(ovh "${g_ms[1]}" "${g_ms[5]}") "
[ -n "${p_ms[1]:-}" ] && [ -n "${p_ms[5]:-}" ] && o+="pytorch $(ovh "${p_ms[1]}" "${p_ms[5]}")"
[ -n "$o" ] && row "g. per-embedding cost" ok "(t_x04 - t_x00)/4/t_x00: $o"

table
