#!/usr/bin/env bash
# The main job: check every variant of the study with every preset, then summarize the
# tiny x02 model and print each variant's parameter count at full size.
set -e
cd "$(dirname "$0")/.."
GPTC=${GPTC:-build/gptc}
echo "== checking the study's models (x00 … x04) with every preset"
for k in 0 1 2 3 4; do
    for p in tiny small medium; do
        "$GPTC" check models/gpt2m_x0$k.gptc --preset $p | sed "s/^/[$p] /"
    done
done
echo
echo "== gptc summary models/gpt2m_x02.gptc --preset tiny"
"$GPTC" summary models/gpt2m_x02.gptc --preset tiny
echo
echo "== parameters at full size (--preset medium)"
for k in 0 1 2 3 4; do
    printf 'x0%d  %s\n' "$k" "$("$GPTC" summary models/gpt2m_x0$k.gptc --preset medium | sed -n 's/^total parameters: //p')"
done
