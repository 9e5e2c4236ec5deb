#!/usr/bin/env bash
# The command line: help on every command, exit statuses, the study's models with every
# preset, and the parameter totals of the spec.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh

# the names of the "commands:" section of gptc --help, each with its description, in order
help_commands() {
    "$GPTC" --help | sed -n '/^commands:$/,/^$/s/^  \([a-z][a-z]*\)  *[a-z(].*/\1/p' | tr '\n' ' '
}

expect_status "help" 0 "$GPTC" --help
expect_output "help lists commands" "^check summary ir init data train bench step sweep report compare grad compile help $" \
    help_commands
expect_status "no command is a usage error" 2 "$GPTC"
expect_status "unknown command" 2 "$GPTC" frobnicate
for cmd in $(help_commands); do
    expect_output "$cmd --help" "^usage: gptc $cmd " "$GPTC" $cmd --help
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

# gptc grad and gptc init: usage and data errors name the file and the tensor
G=tests/golden/tiny_x02
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
gold=(--set vocab=200 --set eot=199 --set dim=64 --set heads=2 --set head_dim=32 --set block=16 --set seq_len=256)
expect_status "grad needs --params" 2 "$GPTC" grad models/gpt2m_x02.gptc "${gold[@]}" --batch $G/inputs.safetensors
expect_status "grad --schedule format" 2 "$GPTC" grad models/gpt2m_x02.gptc "${gold[@]}" --params $G/params.safetensors --batch $G/inputs.safetensors --schedule 3
expect_status "grad unknown backend" 2 "$GPTC" grad models/gpt2m_x02.gptc --params a --batch b --backend tpu
expect_status "init needs -o" 2 "$GPTC" init models/gpt2m_x02.gptc
"$GPTC" init models/gpt2m.gptc "${gold[@]}" --set n_emb=2 -o "$tmp/n2.st" --seed 3
"$GPTC" init models/gpt2m.gptc "${gold[@]}" --set n_emb=4 -o "$tmp/n4.st" --seed 3
"$GPTC" init models/gpt2m.gptc "${gold[@]}" --set n_emb=3 --set dim=32 --set head_dim=16 -o "$tmp/d32.st"
expect_output "grad: missing tensor" "n2.st: missing tensor 'embed.2'" \
    "$GPTC" grad models/gpt2m_x02.gptc "${gold[@]}" --params "$tmp/n2.st" --batch $G/inputs.safetensors
expect_output "grad: unexpected tensor" "n4.st: tensor 'embed.3' is not a parameter of this model" \
    "$GPTC" grad models/gpt2m_x02.gptc "${gold[@]}" --params "$tmp/n4.st" --batch $G/inputs.safetensors
expect_output "grad: wrong shape" "d32.st: tensor 'embed.0' has shape \[200, 32\], expected \[200, 64\]" \
    "$GPTC" grad models/gpt2m_x02.gptc "${gold[@]}" --params "$tmp/d32.st" --batch $G/inputs.safetensors
expect_output "grad: truncated file" "truncated" \
    bash -c "head -c 5000 $G/params.safetensors > $tmp/cut.st; $GPTC grad models/gpt2m_x02.gptc ${gold[*]} --params $tmp/cut.st --batch $G/inputs.safetensors"
v96=(--set vocab=96 --set eot=95 --set dim=64 --set heads=2 --set head_dim=32 --set n_emb=3 --set block=16 --set seq_len=256)
"$GPTC" init models/gpt2m.gptc "${v96[@]}" -o "$tmp/v96.st"
expect_output "grad: token id beyond vocab" "'tokens' has id [0-9]+ at position [0-9]+, outside \[0, 96\)" \
    "$GPTC" grad models/gpt2m.gptc "${v96[@]}" --params "$tmp/v96.st" --batch $G/inputs.safetensors
"$GPTC" init models/gpt2m.gptc "${gold[@]}" --set n_emb=2 -o "$tmp/n2b.st" --seed 3
expect_output "init: same seed, same file" "^worst: 0.000e\+00" "$GPTC" compare "$tmp/n2b.st" "$tmp/n2.st" --quiet
"$GPTC" init models/gpt2m.gptc "${gold[@]}" --set n_emb=2 -o "$tmp/n2c.st" --seed 4
expect_output "init: another seed, other parameters" "^worst: [1-9]\.[0-9]{3}e[-+][0-9]{2} \\(" \
    "$GPTC" compare "$tmp/n2c.st" "$tmp/n2.st" --quiet
# a NaN fails a comparison (fmax alone would skip it): [1, NaN, 3] against [1, 2, 3]
python3 - "$tmp" <<'EOF'
import json, struct, sys
for name, vals in (('nan', [1.0, float('nan'), 3.0]), ('ref', [1.0, 2.0, 3.0])):
    head = json.dumps({'x': {'dtype': 'F32', 'shape': [3], 'data_offsets': [0, 12]}}).encode()
    head += b' ' * (-len(head) % 8)
    open('%s/%s.st' % (sys.argv[1], name), 'wb').write(struct.pack('<Q', len(head)) + head + struct.pack('<3f', *vals))
EOF
expect_status "compare: a NaN fails" 1 "$GPTC" compare "$tmp/nan.st" "$tmp/ref.st" --tol 1
expect_output "compare: a NaN is an infinite error" "^worst: inf \(x\)" "$GPTC" compare "$tmp/nan.st" "$tmp/ref.st" --quiet
# one ATTENTION_BWD per attention layer (15 of 16: layer 7 has none), one CE_BWD
expect_output "ir --train has the backward primitives" "^15 ATTENTION_BWD 1 CE_BWD $" bash -c \
    "'$GPTC' ir models/gpt2m_x00.gptc --preset tiny --train | grep -oE '= (ATTENTION_BWD|CE_BWD)\(' | sort | uniq -c |
     awk '{ printf \"%s %s \", \$1, substr(\$3, 1, length(\$3) - 1) }'"
