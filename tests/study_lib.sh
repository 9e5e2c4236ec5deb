# study_lib.sh — helpers of the sweep and report tests (tests/sh/sweep.sh, tests/sh/report.sh):
# the figures a report must hold, and the report's numbers recomputed from the logs with awk.

# the figures of every report; and per variant K: lambdas-n_emb=K.png, lambdas-other-n_emb=K.png
REPORT_FIGURES="val_loss-step val_loss-step-zoom val_loss-time val_loss-time-zoom final-val_loss final-time"

# is_png FILE — a nonzero size and the 8-byte PNG signature
is_png() { [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; }

# check_figures DIR K… — every figure of a report over the variants n_emb=K… is a PNG
check_figures() {
    local dir=$1 bad=() f; shift
    local names=$REPORT_FIGURES
    for k in "$@"; do names+=" lambdas-n_emb=$k lambdas-other-n_emb=$k"; done
    for f in $names; do is_png "$dir/$f.png" || bad+=("$f.png"); done
    if [ ${#bad[@]} -eq 0 ]; then pass "report: $(echo $names | wc -w) figures are PNGs"
    else fail "report: every figure is a PNG" "not a PNG or missing: ${bad[*]}"; fi
    local extra; extra=$(ls "$dir" | grep '\.png$' | wc -l)
    [ "$extra" -eq "$(echo $names | wc -w)" ] && pass "report: no other figures" || fail "report: no other figures" "$(ls "$dir")"
    for f in $names; do grep -q "]($f.png)" "$dir/report.md" || bad+=("$f"); done
    [ ${#bad[@]} -eq 0 ] && pass "report.md links every figure" || fail "report.md links every figure" "${bad[*]}"
}

# final_tuple LOG — "K final_loss train_ms steps" of a log.txt-format file, K = the number of
# x0NN_lambdas vectors it logs
final_tuple() {
    awk '/^step:[0-9]+\/[0-9]+ val_loss:/ { split($1, a, /[:\/]/)
             if (a[2] == a[3]) { l = substr($2, 10); t = $3; sub(/^train_time:/, "", t); sub(/ms$/, "", t); m = a[3] } }
         /^step:[0-9]+\/[0-9]+ x[0-9][0-9]_lambdas:/ { split($2, b, ":"); seen[b[1]] = 1 }
         END { for (x in seen) k++; print k, l, t, m }' "$1"
}

# expected_rows — reads "K loss ms steps" lines (seeds in the report's order) and prints per
# K: "xNN (n_emb=K) seeds steps mean std | time_mean ms_per_step_mean"
expected_rows() {
    sort -n -s -k1,1 | awk '
        { k = $1; if (!(k in n)) order[++nk] = k
          n[k]++; L[k, n[k]] = $2; T[k, n[k]] = $3 / 1000; P[k, n[k]] = $3 / $4; S[k] = $4 }
        END { for (i = 1; i <= nk; i++) {
                  k = order[i]; m = 0; tm = 0; pm = 0; ss = 0
                  for (j = 1; j <= n[k]; j++) { m += L[k, j]; tm += T[k, j]; pm += P[k, j] }
                  m /= n[k]; tm /= n[k]; pm /= n[k]
                  for (j = 1; j <= n[k]; j++) ss += (L[k, j] - m) ^ 2
                  printf "x%02d (n_emb=%d) %d %d %.6f %.6f | %.3f %.3f\n", k - 1, k, n[k], S[k], m, sqrt(ss / (n[k] - 1)), tm, pm } }'
}

# report_rows REPORT_MD — the same fields read from report.md's two tables
report_rows() {
    awk -F' *[|] *' '/^## Final validation loss/ { s = 1 } /^## Training time/ { s = 2 } /^## Figures/ { s = 0 }
        s == 1 && /^[|] x[0-9]/ { r[$2] = $2 " " $3 " " $4 " " $5 " " $6; o[++n] = $2 }
        s == 2 && /^[|] x[0-9]/ { t[$2] = $3 " " $5 }
        END { for (i = 1; i <= n; i++) print r[o[i]] " | " t[o[i]] }' "$1"
}

# check_numbers REPORT_MD LOG… — report.md's table rows equal the numbers recomputed from the logs
check_numbers() {
    local md=$1; shift
    local want got
    want=$(for l in "$@"; do final_tuple "$l"; done | expected_rows)
    got=$(report_rows "$md")
    if [ -n "$want" ] && [ "$want" = "$got" ]; then pass "report.md numbers equal the logs' ($(echo "$want" | wc -l) variants)"
    else fail "report.md numbers equal the logs'" "from the logs:" "$want" "in report.md:" "$got"; fi
}
