/* report.c — REPORT_DIR/report.md: the variants' final validation losses with the
 * one-sided t-test against the threshold, training times and the step-time overhead of
 * each added embedding, the figures, and every run read. Losses are printed with 6
 * decimals (as log.txt has them), times in s and ms with 3. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "study/study.h"

/* "%.Nf" of x, or "–" when x is not a number (one seed has no spread). */
static const char *num(char *buf, size_t len, int decimals, double x) {
    if (isnan(x)) snprintf(buf, len, "–");
    else snprintf(buf, len, "%.*f", decimals, x);
    return buf;
}

static void write_losses(FILE *f, const StVariant *v, int n, double thr) {
    fprintf(f, "## Final validation loss\n\n"
               "One-sided one-sample t-test of each variant's final validation losses (one per seed) "
               "against the threshold %.6f: the alternative is that the variant's mean is below it; "
               "t = (mean − threshold) / (std / √n) with n − 1 degrees of freedom, p = P(T ≤ t) "
               "(Student's t; no test for one seed or no spread).\n\n", thr);
    fprintf(f, "| variant | seeds | steps | mean | std | min | max | t | p (mean < %.6f) |\n", thr);
    fprintf(f, "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < n; i++) {
        char t[200], a[32], b[32], c[32];
        double lo = INFINITY, hi = -INFINITY;
        for (int k = 0; k < v[i].nruns; k++) {
            lo = fmin(lo, v[i].final_loss[k]);
            hi = fmax(hi, v[i].final_loss[k]);
        }
        StTTest tt = st_ttest_below(v[i].final_loss, v[i].nruns, thr);
        st_variant_title(&v[i], t, sizeof t);
        fprintf(f, "| %s | %d | %lld | %.6f | %s | %.6f | %.6f | %s | %s |\n", t, v[i].nruns, (long long)v[i].runs[0]->steps,
                v[i].loss_s.mean, num(a, sizeof a, 6, v[i].loss_s.std), lo, hi, num(b, sizeof b, 3, tt.t),
                num(c, sizeof c, 4, tt.p));
    }
    fprintf(f, "\n");
}

static void write_times(FILE *f, const StVariant *v, int n) {
    char t0[200];
    st_variant_title(&v[0], t0, sizeof t0);
    fprintf(f, "## Training time and step-time overhead\n\n"
               "Training time as logged at the last validation (train_time); time per step = training "
               "time / steps. Overhead against %s, the variant with the fewest embeddings, in total and "
               "per added embedding.\n\n", t0);
    fprintf(f, "| variant | training time (s) | std | ms/step | std | overhead (ms/step) | overhead (%%) | "
               "per added embedding (ms/step) | per added embedding (%%) |\n");
    fprintf(f, "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    double base = v[0].step_s.mean;
    for (int i = 0; i < n; i++) {
        char t[200], a[32], b[32], c[32], d[32];
        int added = v[i].n_emb - v[0].n_emb;
        double over = v[i].step_s.mean - base, per = added > 0 ? over / added : NAN;
        st_variant_title(&v[i], t, sizeof t);
        fprintf(f, "| %s | %.3f | %s | %.3f | %s | %+.3f | %+.2f | %s | %s |\n", t, v[i].sec_s.mean,
                num(a, sizeof a, 3, v[i].sec_s.std), v[i].step_s.mean, num(b, sizeof b, 3, v[i].step_s.std), over,
                100 * over / base, num(c, sizeof c, 3, per), num(d, sizeof d, 2, 100 * per / base));
    }
    fprintf(f, "\n");
}

static void write_runs(FILE *f, const StVariant *v, int n, const StRun *runs, int nruns) {
    fprintf(f, "## Runs\n\n| run | variant | final step | final validation loss | training time (s) |\n"
               "|---|---|---:|---:|---:|\n");
    for (int i = 0; i < n; i++)
        for (int k = 0; k < v[i].nruns; k++) {
            const StRun *r = v[i].runs[k];
            fprintf(f, "| %s | %s | %lld | %.6f | %.3f |\n", r->path, v[i].label, (long long)r->step[r->nval - 1],
                    v[i].final_loss[k], v[i].final_sec[k]);
        }
    int left = 0;
    for (int i = 0; i < nruns; i++) {
        const StRun *r = &runs[i];
        if (st_run_finished(r)) continue;
        if (left++ == 0) fprintf(f, "\nLeft out, not finished:\n\n");
        if (r->nval > 0)
            fprintf(f, "- %s (%s): last validation at step %lld of %lld\n", r->path, r->variant,
                    (long long)r->step[r->nval - 1], (long long)r->steps);
        else
            fprintf(f, "- %s (%s): no validation yet\n", r->path, r->variant);
    }
    fprintf(f, "\n");
}

int st_report_write(const StVariant *v, int n, const StRun *runs, int nruns, const StPlotOptions *o,
                    const StFigure *figs, int nfigs, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/report.md", o->dir);
    FILE *f = fopen(path, "w");
    if (!f) return fail_at(err, errlen, path, "cannot write: %s", strerror(errno));
    int finished = 0;
    for (int i = 0; i < n; i++) finished += v[i].nruns;
    fprintf(f, "# Study report\n\n%d finished run%s of %d read, in %d variant%s. Figures and their gnuplot "
               "scripts and data: this folder and `gnuplot/`.\n\n", finished, finished == 1 ? "" : "s", nruns, n,
            n == 1 ? "" : "s");
    write_losses(f, v, n, o->threshold);
    write_times(f, v, n);
    fprintf(f, "## Figures\n\n");
    for (int i = 0; i < nfigs; i++) fprintf(f, "### %s\n\n![%s](%s)\n\n", figs[i].title, figs[i].title, figs[i].name);
    write_runs(f, v, n, runs, nruns);
    if (fclose(f) != 0) return fail_at(err, errlen, path, "cannot write: %s", strerror(errno));
    return 0;
}
