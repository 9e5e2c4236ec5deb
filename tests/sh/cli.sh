#!/usr/bin/env bash
# The command line: help on every command, exit statuses, the study's models with every
# preset, and the parameter totals of the spec.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh

expect_status "help" 0 "$GPTC" --help
expect_output "help lists commands" "check .*summary|summary" "$GPTC" --help
expect_status "no command is a usage error" 2 "$GPTC"
expect_status "unknown command" 2 "$GPTC" frobnicate
for cmd in check summary ir help; do
    expect_output "$cmd --help" "^usage: gptc $cmd" "$GPTC" $cmd --help
done
expect_status "unknown option" 2 "$GPTC" check models/gpt2m.gptc --frob
expect_status "missing model" 2 "$GPTC" check
expect_status "--set without value" 2 "$GPTC" check models/gpt2m.gptc --set
expect_status "--set not a number" 2 "$GPTC" check models/gpt2m.gptc --set dim=big
expect_status "unreadable model" 1 "$GPTC" check models/no_such_model.gptc
expect_output "unknown preset lists presets" "unknown preset 'huge' \(this model has: medium, small, tiny\)" \
    "$GPTC" check models/gpt2m.gptc --preset huge
expect_output "--set of an unknown name" "--set dimm: the model has no config named 'dimm'; did you mean 'dim'\?" \
    "$GPTC" check models/gpt2m.gptc --set dimm=3
expect_output "--set changes the model" "embed.2 .*\[200, 64\]" \
    "$GPTC" summary models/gpt2m.gptc --set n_emb=3 --set vocab=200 --set dim=64 --set head_dim=32 --set heads=2

for k in 0 1 2 3 4; do
    for p in tiny small medium; do
        expect_output "check x0$k $p" "ok \(.* 0 warnings\)" "$GPTC" check models/gpt2m_x0$k.gptc --preset $p
    done
done
totals=(454,496,336 505,959,520 557,422,704 608,885,888 660,349,072)
for k in 0 1 2 3 4; do
    expect_output "x0$k medium total ${totals[$k]}" "^total parameters: ${totals[$k]}$" \
        "$GPTC" summary models/gpt2m_x0$k.gptc --preset medium
done
# each added embedding adds V*d + 16 lambdas = 51,463,184
expect_output "summary shows lambdas per embedding" "lambdas +\[16, 6\] " "$GPTC" summary models/gpt2m_x04.gptc
expect_output "ir names source lines" "MATMUL\(.*# models/gpt2m.gptc:[0-9]+" "$GPTC" ir models/gpt2m_x00.gptc --preset tiny
expect_output "ir returns the loss" "^output 0 = %[0-9]+" "$GPTC" ir models/gpt2m_x00.gptc --preset tiny
