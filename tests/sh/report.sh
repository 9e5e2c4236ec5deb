#!/usr/bin/env bash
# gptc report on modded-nanogpt log files (tests/data/modded: x00 and x01, two seeds each,
# behind the script and nvidia-smi lines such a log opens with): every figure a PNG, the
# tables' numbers recomputed from the logs, the t-test's p for one degree of freedom in closed
# form, the last logged lambdas plotted, zoom and threshold options, usage errors.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
. tests/study_lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
L=tests/data/modded

expect_output "report --help" "^usage: gptc report" "$GPTC" report --help
expect_output "help report" "^usage: gptc report" "$GPTC" help report
expect_status "report without inputs" 2 "$GPTC" report -o "$tmp/x"
expect_status "report without -o" 2 "$GPTC" report $L
expect_status "report unknown option" 2 "$GPTC" report $L -o "$tmp/x" --frob
expect_status "report --zoom malformed" 2 "$GPTC" report $L -o "$tmp/x" --zoom 50
expect_status "report --zoom reversed" 2 "$GPTC" report $L -o "$tmp/x" --zoom 90:50
expect_status "report --threshold not a number" 2 "$GPTC" report $L -o "$tmp/x" --threshold low
expect_output "report of a missing path" "$tmp/none: cannot read: No such file" "$GPTC" report "$tmp/none" -o "$tmp/x"
expect_status "report of a missing path exits 1" 1 "$GPTC" report "$tmp/none" -o "$tmp/x"
mkdir "$tmp/empty"
expect_output "report of a folder without runs" "no runs found" "$GPTC" report "$tmp/empty" -o "$tmp/x"
expect_output "report of a file without validation lines" "no validation lines" "$GPTC" report README.md -o "$tmp/x"

expect_output "report on modded-nanogpt logs" "report: $tmp/r/report.md and 10 figures \(2 variants, 4 runs read\)" \
    "$GPTC" report $L -o "$tmp/r"
check_figures "$tmp/r" 1 2
check_numbers "$tmp/r/report.md" $L/*.txt

# the t-test: with two seeds T has one degree of freedom, P(T <= t) = 1/2 + atan(t)/pi
want=$(for f in $L/x01-*.txt; do final_tuple $f; done | awk -v thr=3.3 '{ x[++n] = $2; m += $2 } END { m /= n
    for (i = 1; i <= n; i++) ss += (x[i] - m) ^ 2; t = (m - thr) / (sqrt(ss / (n - 1)) / sqrt(n))
    printf "%.3f | %.4f", t, 0.5 + atan2(t, 1) / 3.141592653589793 }')
"$GPTC" report $L -o "$tmp/t" --threshold 3.3 >/dev/null
got=$(awk -F' *[|] *' '/^[|] x01 \(n_emb=2\)/ { print $9 " | " $10; exit }' "$tmp/t/report.md")
[ "$got" = "$want" ] && pass "t-test against --threshold: t and p" || fail "t-test against --threshold: t and p" "want $want, got $got"
expect_output "threshold in the table" "p \(mean < 3\.300000\)" cat "$tmp/t/report.md"

# the lambdas plotted are the last logged (step 100, not 50): layer 13 of x01, mean of two seeds
want=$(for f in $L/x01-*.txt; do grep '^step:100/100 x01_lambdas:' $f; done |
       awk -F'[][]' '{ split($2, v, ", "); s += v[14] } END { printf "13 %.6f", s / 2 }')
got=$(awk '/^# x01_lambdas/ { on = 1; next } on && $1 == 13 { printf "13 %.6f", $2; exit }' "$tmp/r/gnuplot/lambdas-n_emb=2.dat")
[ "$got" = "$want" ] && pass "lambdas: the last logged values, averaged" || fail "lambdas: the last logged values, averaged" "want $want, got $got"

# zoom windows: automatic (the last 35 % of steps) and given
expect_output "automatic step zoom" "^set xrange \[65:100\]" cat "$tmp/r/gnuplot/val_loss-step-zoom.gp"
"$GPTC" report $L -o "$tmp/z" --zoom 50:100 --time-zoom 10:25 >/dev/null
expect_output "--zoom sets the window" "^set xrange \[50:100\]" cat "$tmp/z/gnuplot/val_loss-step-zoom.gp"
expect_output "--time-zoom sets the window" "^set xrange \[10:25\]" cat "$tmp/z/gnuplot/val_loss-time-zoom.gp"
# the zoomed y-range: the seeds' mean losses at steps 50 … 100, padded by 8 % of their span
want=$(for f in $L/*.txt; do k=$(final_tuple $f | cut -d' ' -f1); sed -n "s|^step:\([0-9]*\)/100 val_loss:\([0-9.]*\) .*|$k \1 \2|p" $f; done |
       awk '$2 >= 50 { s[$1 " " $2] += $3; n[$1 " " $2]++ } END { lo = 1e9; hi = -1e9
            for (x in s) { m = s[x] / n[x]; if (m < lo) lo = m; if (m > hi) hi = m }
            printf "%.6f:%.6f", lo - 0.08 * (hi - lo), hi + 0.08 * (hi - lo) }')
got=$(sed -n 's/^set yrange \[\(.*\):\(.*\)\]/\1 \2/p' "$tmp/z/gnuplot/val_loss-step-zoom.gp" | awk '{ printf "%.6f:%.6f", $1, $2 }')
[ -n "$want" ] && [ "$got" = "$want" ] && pass "zoomed y-range fits the window's mean losses ($got)" \
    || fail "zoomed y-range fits the window's mean losses" "want $want, got $got"

# an unfinished log is left out and named
head -n 25 $L/x01-seed1.txt >"$tmp/x01-cut.txt"
mkdir "$tmp/mix" && cp $L/*.txt "$tmp/mix/" && mv "$tmp/x01-cut.txt" "$tmp/mix/x01-seed2.txt"
"$GPTC" report "$tmp/mix" -o "$tmp/m" >/dev/null
expect_output "unfinished run named" "x01-seed2.txt \(n_emb=2\): last validation at step [0-9]+ of 100" cat "$tmp/m/report.md"
check_numbers "$tmp/m/report.md" $L/*.txt
