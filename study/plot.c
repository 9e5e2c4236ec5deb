/* plot.c — the report's figures: for each, a data file and a gnuplot script in
 * REPORT_DIR/gnuplot/ (paths relative to that folder, so a script can be edited and rerun
 * there by hand), then `gnuplot NAME.gp` run in that folder writes REPORT_DIR/NAME.png.
 *
 *   val_loss-step[-zoom].png, val_loss-time[-zoom].png   mean curves, one line per variant
 *   lambdas-VARIANT.png         x and x0NN lambdas per layer, mean ± 1 std over seeds
 *   lambdas-other-VARIANT.png   the other logged vectors likewise
 *   final-val_loss.png, final-time.png   per variant: seeds, mean ± std, threshold, overhead */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "study/study.h"

/* tab10: distinct colours in an order readers of training plots know */
static const char *const colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                     "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define COLOR(i) colors[(i) % (int)(sizeof colors / sizeof colors[0])]

typedef struct {
    const StPlotOptions *o;
    StFigure *figs;
    int nfigs;
    FILE *gp, *dat;
    char *err;
    size_t errlen;
} Plot;

/* ---- files and running gnuplot ---------------------------------------------------------------- */

/* Opens gnuplot/NAME.gp and gnuplot/NAME.dat and writes the script's common preamble. */
static int begin(Plot *p, const char *name, const char *title, int width, int height) {
    char path[4096];
    snprintf(path, sizeof path, "%s/gnuplot/%s.gp", p->o->dir, name);
    p->gp = fopen(path, "w");
    snprintf(path, sizeof path, "%s/gnuplot/%s.dat", p->o->dir, name);
    p->dat = fopen(path, "w");
    if (!p->gp || !p->dat) return fail_at(p->err, p->errlen, path, "cannot write: %s", strerror(errno));
    p->figs = xrealloc(p->figs, sizeof *p->figs * (size_t)(p->nfigs + 1));
    StFigure *f = &p->figs[p->nfigs++];
    snprintf(f->name, sizeof f->name, "%s.png", name);
    snprintf(f->title, sizeof f->title, "%s", title);
    fprintf(p->gp, "# %s — written by gptc report; run `gnuplot %s.gp` in this folder\n", title, name);
    fprintf(p->gp, "set terminal pngcairo size %d,%d font 'sans,11' noenhanced\n", width, height);
    fprintf(p->gp, "set output '../%s.png'\n", name);
    fprintf(p->gp, "set title \"%s\"\nset grid lc rgb '#dddddd'\nset key top right box opaque\n", title);
    return 0;
}

/* Closes the figure's files and runs gnuplot on its script in REPORT_DIR/gnuplot. */
static int finish(Plot *p) {
    fclose(p->gp);
    fclose(p->dat);
    p->gp = p->dat = NULL;
    const char *name = p->figs[p->nfigs - 1].name;
    char dir[4096], script[300];
    snprintf(dir, sizeof dir, "%s/gnuplot", p->o->dir);
    snprintf(script, sizeof script, "%.*s.gp", (int)strlen(name) - 4, name);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        if (chdir(dir) == 0) execlp("gnuplot", "gnuplot", script, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0) return fail_at(p->err, p->errlen, "gnuplot", "cannot start: %s", strerror(errno));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
        return fail_at(p->err, p->errlen, "gnuplot", "not found; install it (Debian: apt-get install gnuplot-nox, "
                       "or tools/deps.sh)");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return fail_at(p->err, p->errlen, script, "gnuplot failed (in %s)", dir);
    return 0;
}

/* ---- validation curves ------------------------------------------------------------------------ */

StRange st_zoom_auto(const StVariant *v, int n, bool by_time) {
    double lo = INFINITY, hi = 0;   /* the variants' shortest and longest curve */
    for (int i = 0; i < n; i++)
        if (v[i].npts > 0) {
            double x = by_time ? v[i].sec[v[i].npts - 1] : (double)v[i].step[v[i].npts - 1];
            lo = fmin(lo, x), hi = fmax(hi, x);
        }
    if (hi <= 0) return (StRange){0, 0};
    return (StRange){by_time ? 0.65 * lo : floor(0.65 * lo), hi};
}

/* The y-range of the curves' points inside [r.x0, r.x1], padded; false if it holds none. */
static bool fit_y(const StVariant *v, int n, bool by_time, StRange r, double *y0, double *y1) {
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < v[i].npts; k++) {
            double x = by_time ? v[i].sec[k] : (double)v[i].step[k];
            if (x < r.x0 || x > r.x1) continue;
            if (v[i].loss[k] < lo) lo = v[i].loss[k];
            if (v[i].loss[k] > hi) hi = v[i].loss[k];
        }
    if (lo > hi) return false;
    double pad = hi > lo ? 0.08 * (hi - lo) : 0.01 * fabs(hi) + 1e-6;
    *y0 = lo - pad, *y1 = hi + pad;
    return true;
}

static int plot_curves(Plot *p, const StVariant *v, int n, bool by_time, const StRange *zoom) {
    char name[64], title[256];
    snprintf(name, sizeof name, "val_loss-%s%s", by_time ? "time" : "step", zoom ? "-zoom" : "");
    int lo = v[0].nruns, hi = v[0].nruns;
    for (int i = 1; i < n; i++) lo = v[i].nruns < lo ? v[i].nruns : lo, hi = v[i].nruns > hi ? v[i].nruns : hi;
    char seeds[64];
    if (lo == hi) snprintf(seeds, sizeof seeds, "mean over %d seed%s", lo, lo == 1 ? "" : "s");
    else snprintf(seeds, sizeof seeds, "mean over %d to %d seeds", lo, hi);
    if (zoom)
        snprintf(title, sizeof title, "Validation loss, %s %.4g to %.4g (%s)", by_time ? "seconds" : "steps", zoom->x0,
                 zoom->x1, seeds);
    else
        snprintf(title, sizeof title, "Validation loss per %s (%s)", by_time ? "second of training time" : "step", seeds);
    if (begin(p, name, title, 960, 600) != 0) return -1;
    fprintf(p->gp, "set xlabel '%s'\nset ylabel 'validation loss'\n", by_time ? "training time (s)" : "step");
    if (zoom) {
        double y0, y1;
        fprintf(p->gp, "set xrange [%.17g:%.17g]\n", zoom->x0, zoom->x1);
        if (fit_y(v, n, by_time, *zoom, &y0, &y1)) fprintf(p->gp, "set yrange [%.17g:%.17g]\n", y0, y1);
    }
    fprintf(p->gp, "plot \\\n");
    for (int i = 0; i < n; i++) {
        fprintf(p->dat, "# %s\n", v[i].label);
        for (int k = 0; k < v[i].npts; k++)
            fprintf(p->dat, "%.17g %.17g\n", by_time ? v[i].sec[k] : (double)v[i].step[k], v[i].loss[k]);
        fprintf(p->dat, "\n\n");
        st_variant_title(&v[i], title, sizeof title);
        fprintf(p->gp, "  '%s.dat' index %d using 1:2 with linespoints lw 2 pt 7 ps 0.6 lc rgb '%s' title \"%s\"%s\n",
                name, i, COLOR(i), title, i + 1 < n ? ", \\" : "");
    }
    return finish(p);
}

/* ---- vectors per layer --------------------------------------------------------------------------- */

static bool is_mix_vector(const char *name) {   /* x_lambdas, x00_lambdas, x01_lambdas, … */
    size_t n = strlen(name);
    return name[0] == 'x' && n >= 9 && !strcmp(name + n - 8, "_lambdas") && strspn(name + 1, "0123456789") == n - 9;
}

/* One figure of the vectors of v that are (mix) or are not (!mix) embedding lambdas. */
static int plot_vectors(Plot *p, const StVariant *v, bool mix) {
    const StRun *r0 = v->runs[0];
    int count = 0, layers = 0;
    for (int i = 0; i < r0->nvec; i++)
        if (is_mix_vector(r0->vec[i].name) == mix) count++, layers = r0->vec[i].n > layers ? r0->vec[i].n : layers;
    if (count == 0) return 0;
    char slug[200], vt[200], name[256], title[512];
    st_variant_slug(v, slug, sizeof slug);
    st_variant_title(v, vt, sizeof vt);
    snprintf(name, sizeof name, "lambdas-%s%s", mix ? "" : "other-", slug);
    snprintf(title, sizeof title, "%s: %s per layer at step %lld, mean ± 1 std over %d seed%s", vt,
             mix ? "lambdas of x and the embeddings" : "other logged vectors", (long long)r0->steps, v->nruns,
             v->nruns == 1 ? "" : "s");
    if (begin(p, name, title, 960, 600) != 0) return -1;
    fprintf(p->gp, "set xlabel 'layer'\nset ylabel 'value'\nset xtics 1\nset key outside right top\n"
                   "set offsets 0, 0, graph 0.05, graph 0.05\nset xrange [-0.3:%.1f]\n", layers - 0.7);
    fprintf(p->gp, "set style fill transparent solid 0.2 noborder\nplot \\\n");
    int block = 0;
    for (int i = 0; i < r0->nvec; i++) {
        const char *vn = r0->vec[i].name;
        int L;
        double *sd, *mean = is_mix_vector(vn) == mix ? st_variant_vector(v, vn, &L, &sd) : NULL;
        if (!mean) continue;
        fprintf(p->dat, "# %s: layer mean std\n", vn);
        for (int l = 0; l < L; l++) fprintf(p->dat, "%d %.17g %.17g\n", l, mean[l], sd[l]);
        fprintf(p->dat, "\n\n");
        free(mean);
        size_t len = strlen(vn);
        int shown = mix ? (int)len - 8 : (int)len;   /* "x01_lambdas" shows as "x01" */
        fprintf(p->gp, "%s  '%s.dat' index %d using 1:($2-$3):($2+$3) with filledcurves lc rgb '%s' notitle, \\\n",
                block ? ", \\\n" : "", name, block, COLOR(block));
        fprintf(p->gp, "  '%s.dat' index %d using 1:2 with linespoints lw 2 pt 7 ps 0.7 lc rgb '%s' title \"%.*s\"",
                name, block, COLOR(block), shown, vn);
        block++;
    }
    fprintf(p->gp, "\n");
    return finish(p);
}

/* ---- per-variant summaries ------------------------------------------------------------------------- */

/* Data rows "index mean std" and one "index value" row per seed, as blocks 0 and 1; xtics
 * named by variant. */
static void variant_axis(Plot *p, const StVariant *v, int n) {
    fprintf(p->gp, "set xrange [-0.5:%d.5]\nset xtics (", n - 1);
    for (int i = 0; i < n; i++) {
        char t[200];
        st_variant_title(&v[i], t, sizeof t);
        fprintf(p->gp, "%s\"%s\" %d", i ? ", " : "", t, i);
    }
    fprintf(p->gp, ")\n");
}

/* Data blocks for one summary (which: 0 final loss, 1 training time, 2 time per step):
 * "index mean std" per variant, then "index value" per seed; and a y-range holding them all
 * with room above for labels (gnuplot's autoscale cannot widen a single value by itself). */
static void summary_blocks(Plot *p, const StVariant *v, int n, int which) {
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        const StSummary *s = which == 0 ? &v[i].loss_s : which == 1 ? &v[i].sec_s : &v[i].step_s;
        double sd = isnan(s->std) ? 0 : s->std;
        fprintf(p->dat, "%d %.17g %.17g\n", i, s->mean, sd);
        lo = fmin(lo, s->mean - sd), hi = fmax(hi, s->mean + sd);
    }
    fprintf(p->dat, "\n\n");
    for (int i = 0; i < n; i++)
        for (int k = 0; k < v[i].nruns; k++) {
            double x = which == 0 ? v[i].final_loss[k] : which == 1 ? v[i].final_sec[k] : v[i].step_ms[k];
            fprintf(p->dat, "%d %.17g\n", i, x);
            lo = fmin(lo, x), hi = fmax(hi, x);
        }
    fprintf(p->dat, "\n\n");
    if (which == 0) lo = fmin(lo, p->o->threshold), hi = fmax(hi, p->o->threshold);
    double span = hi > lo ? hi - lo : 0.01 * fabs(hi) + 1e-9;
    fprintf(p->gp, "set yrange [%.17g:%.17g]\n", lo - 0.1 * span, hi + 0.2 * span);
}

static int plot_final_loss(Plot *p, const StVariant *v, int n) {
    if (begin(p, "final-val_loss", "Final validation loss per variant: seeds, mean ± 1 std", 960, 600) != 0) return -1;
    variant_axis(p, v, n);
    summary_blocks(p, v, n, 0);
    fprintf(p->gp, "set ylabel 'final validation loss'\nset key below horizontal\n");
    fprintf(p->gp, "plot '%s.dat' index 1 using 1:2 with points pt 6 ps 1.2 lc rgb '#888888' title 'seeds', \\\n"
                   "  '' index 0 using 1:2:3 with yerrorbars lw 2 pt 7 ps 1.5 lc rgb '%s' title 'mean ± std', \\\n"
                   "  %.17g with lines dt 2 lw 2 lc rgb '%s' title 'threshold %.6f'\n",
            "final-val_loss", COLOR(0), p->o->threshold, COLOR(3), p->o->threshold);
    return finish(p);
}

/* Training time and time per step, the latter labelled with its overhead over v[0]. */
static int plot_final_time(Plot *p, const StVariant *v, int n) {
    if (begin(p, "final-time", "Training time per variant: seeds, mean ± 1 std", 1200, 560) != 0) return -1;
    fprintf(p->gp, "unset title\nset multiplot layout 1,2 title 'Training time per variant: seeds, mean ± 1 std'\n");
    variant_axis(p, v, n);
    summary_blocks(p, v, n, 1);
    fprintf(p->gp, "set ylabel 'training time (s)'\nset key below horizontal\n");
    fprintf(p->gp, "plot 'final-time.dat' index 1 using 1:2 with points pt 6 ps 1.2 lc rgb '#888888' title 'seeds', \\\n"
                   "  '' index 0 using 1:2:3 with yerrorbars lw 2 pt 7 ps 1.5 lc rgb '%s' title 'mean ± std'\n", COLOR(0));
    summary_blocks(p, v, n, 2);
    fprintf(p->gp, "set ylabel 'time per step (ms)'\n");
    double base = v[0].step_s.mean;
    for (int i = 1; i < n; i++)
        fprintf(p->gp, "set label %d \"%+.2f ms/step (%+.1f%%)\" at %d, first %.17g center offset 0, 1.6 font ',10'\n", i,
                v[i].step_s.mean - base, 100 * (v[i].step_s.mean - base) / base, i,
                v[i].step_s.mean + (isnan(v[i].step_s.std) ? 0 : v[i].step_s.std));
    fprintf(p->gp, "plot 'final-time.dat' index 3 using 1:2 with points pt 6 ps 1.2 lc rgb '#888888' title 'seeds', \\\n"
                   "  '' index 2 using 1:2:3 with yerrorbars lw 2 pt 7 ps 1.5 lc rgb '%s' title 'mean ± std'\n"
                   "unset multiplot\n", COLOR(1));
    return finish(p);
}

/* ---- all figures ---------------------------------------------------------------------------------- */

int st_plot_all(const StVariant *v, int n, const StPlotOptions *o, StFigure **figs, int *nfigs, char *err, size_t errlen) {
    Plot p = {o, NULL, 0, NULL, NULL, err, errlen};
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/gnuplot", o->dir);
    int rc = mkdir(dir, 0777) != 0 && errno != EEXIST ? fail_at(err, errlen, dir, "cannot create: %s", strerror(errno)) : 0;
    StRange zs = o->zoom_step.x0 < o->zoom_step.x1 ? o->zoom_step : st_zoom_auto(v, n, false);
    StRange zt = o->zoom_sec.x0 < o->zoom_sec.x1 ? o->zoom_sec : st_zoom_auto(v, n, true);
    if (rc == 0) rc = plot_curves(&p, v, n, false, NULL);
    if (rc == 0) rc = plot_curves(&p, v, n, false, &zs);
    if (rc == 0) rc = plot_curves(&p, v, n, true, NULL);
    if (rc == 0) rc = plot_curves(&p, v, n, true, &zt);
    for (int i = 0; i < n && rc == 0; i++) {
        rc = plot_vectors(&p, &v[i], true);
        if (rc == 0) rc = plot_vectors(&p, &v[i], false);
    }
    if (rc == 0) rc = plot_final_loss(&p, v, n);
    if (rc == 0) rc = plot_final_time(&p, v, n);
    if (p.gp) fclose(p.gp);
    if (p.dat) fclose(p.dat);
    *figs = p.figs, *nfigs = p.nfigs;
    return rc;
}
