#!/usr/bin/env bash
# The main job: prepare the Brown corpus as GPT-2 token shards, train the x02 variant at
# the tiny preset on the CPU with validation, and show the validation losses.
#   MAIN_STEPS=300 MAIN_ACCUM=2 tools/main-job.sh   (steps of training, micro-batches of 256 tokens
#   per step; on the cpu backend about 0.12 s a step on 2 cores)
set -e
cd "$(dirname "$0")/.."
GPTC=${GPTC:-build/gptc}
steps=${MAIN_STEPS:-300}
accum=${MAIN_ACCUM:-2}
echo "== the study's models: check every variant with every preset"
for k in 0 1 2 3 4; do
    for p in tiny small medium; do "$GPTC" check models/gpt2m_x0$k.gptc --preset $p | sed "s/^/[$p] /"; done
done
echo
echo "== data: the Brown corpus in GPT-2 tokens (data/brown)"
if ls data/brown/*train*.bin >/dev/null 2>&1; then echo "data/brown exists"; else "$GPTC" data brown -o data/brown; fi
echo
echo "== training models/gpt2m_x02.gptc --preset tiny for $steps steps of $accum x 256 tokens on the CPU (runs/main)"
rm -rf runs/main
"$GPTC" train models/gpt2m_x02.gptc --preset tiny --data data/brown --out runs/main --grad-accum "$accum" \
    --set steps="$steps" --set val_every=$(( steps >= 100 ? steps / 6 : 10 ))
echo
echo "== validation losses (nats; the corpus's unigram entropy is 7.26)"
grep -E '^step:[0-9]+/[0-9]+ val_loss' runs/main/log.txt
echo "logs: runs/main/log.txt, runs/main/log.jsonl; checkpoint: runs/main/checkpoint.safetensors"
