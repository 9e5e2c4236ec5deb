/* cmd_report.c — gptc report: figures (gnuplot) and report.md from gptc run folders, sweep
 * folders and modded-nanogpt log files (study/). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "base/base.h"
#include "study/study.h"

const char report_usage[] =
    "usage: gptc report RUN_OR_SWEEP_DIR_OR_LOG… -o REPORT_DIR [--threshold X]\n"
    "                   [--zoom STEP0:STEP1] [--time-zoom SEC0:SEC1]\n"
    "Reads gptc run folders (log.txt, else log.jsonl) and modded-nanogpt log files (the lines\n"
    "'step:N/M val_loss:X train_time:Tms …' and 'step:N/M NAME:[a, b, …]'); a folder is searched\n"
    "for runs recursively. Runs are grouped by variant: the sweep's label (run.json), else\n"
    "n_emb = the number of x0NN_lambdas vectors logged, else the parent folder's name\n"
    "('n_emb=2'). Only runs that validated at their last step count. REPORT_DIR receives\n"
    "report.md (final losses with a one-sided t-test against the threshold, training times,\n"
    "step-time overhead per added embedding) and PNG figures drawn by gnuplot: validation loss\n"
    "per step and per second (each also zoomed), lambdas per layer for every variant, final\n"
    "loss and time per variant; REPORT_DIR/gnuplot/ keeps each figure's script and data.\n"
    "  -o REPORT_DIR         the output folder (created if missing)\n"
    "  --threshold X         the loss the t-test compares with (default: the mean final loss of\n"
    "                        the variant with the fewest embeddings)\n"
    "  --zoom S0:S1          the zoomed steps (default: the last 35 % of training)\n"
    "  --time-zoom T0:T1     the zoomed seconds of training time (default: from 65 % of the\n"
    "                        shortest variant's time to the longest's end)\n"
    "  -h, --help            show this help\n";

typedef struct {
    const char **inputs;
    int ninputs;
    const char *out, *threshold, *zoom, *time_zoom;
} ReportArgs;

/* "A:B" with numbers A < B. */
static bool parse_range(const char *s, StRange *r) {
    char *end;
    r->x0 = strtod(s, &end);
    if (end == s || *end != ':') return false;
    const char *t = end + 1;
    r->x1 = strtod(t, &end);
    return end != t && !*end && isfinite(r->x0) && isfinite(r->x1) && r->x0 < r->x1;
}

/* -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, ReportArgs *a, StPlotOptions *o) {
    struct { const char *name; const char **dst; } opts[] = {
        {"-o", &a->out}, {"--threshold", &a->threshold}, {"--zoom", &a->zoom}, {"--time-zoom", &a->time_zoom}};
    a->inputs = xcalloc((size_t)argc, sizeof *a->inputs);
    for (int i = 1; i < argc; i++) {
        int k = 0;
        while (k < 4 && strcmp(argv[i], opts[k].name)) k++;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("%s", report_usage);
            return 0;
        } else if (k < 4) {
            if (i + 1 >= argc) return usage_error("report", "%s needs a value", argv[i]);
            *opts[k].dst = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage_error("report", "unknown option '%s'", argv[i]);
        } else {
            a->inputs[a->ninputs++] = argv[i];
        }
    }
    if (a->ninputs == 0) return usage_error("report", "no run folder, sweep folder or log file given");
    if (!a->out) return usage_error("report", "-o REPORT_DIR is required");
    char *end;
    o->threshold = a->threshold ? strtod(a->threshold, &end) : NAN;
    if (a->threshold && (*end || end == a->threshold || !isfinite(o->threshold)))
        return usage_error("report", "--threshold takes a number, got '%s'", a->threshold);
    if (a->zoom && !parse_range(a->zoom, &o->zoom_step))
        return usage_error("report", "--zoom takes STEP0:STEP1 with STEP0 < STEP1, got '%s'", a->zoom);
    if (a->time_zoom && !parse_range(a->time_zoom, &o->zoom_sec))
        return usage_error("report", "--time-zoom takes SEC0:SEC1 with SEC0 < SEC1, got '%s'", a->time_zoom);
    o->dir = a->out;
    return -1;
}

/* Reads, groups, plots and writes; 0 or 1. */
static int make_report(const ReportArgs *a, StPlotOptions *o) {
    char err[4096] = "";
    StRun *runs = NULL;
    StVariant *v = NULL;
    StFigure *figs = NULL;
    int nruns = 0, nv = 0, nfigs = 0, rc = 0;
    for (int i = 0; i < a->ninputs && rc == 0; i++) rc = st_runs_find(a->inputs[i], &runs, &nruns, err, sizeof err);
    for (int i = 0; i < nruns; i++)
        if (runs[i].cut)
            fprintf(stderr, "gptc report: warning: %s: the last line is cut (no end of line: a run writing it, or a disk "
                    "that filled); it is left out\n", runs[i].cut);
    if (rc == 0 && nruns == 0) rc = fail_at(err, sizeof err, a->inputs[0], "no runs found (no log.txt, log.jsonl or log file with validation lines)");
    if (rc == 0) rc = st_variants_group(runs, nruns, &v, &nv, err, sizeof err);
    if (rc == 0 && nv == 0)
        rc = fail_at(err, sizeof err, a->inputs[0], "none of the %d runs found has finished (validated at its last step)", nruns);
    if (rc == 0 && isnan(o->threshold)) o->threshold = v[0].loss_s.mean;
    if (rc == 0) rc = mkdir_p(o->dir, err, sizeof err);
    if (rc == 0) rc = st_plot_all(v, nv, o, &figs, &nfigs, err, sizeof err);
    if (rc == 0) rc = st_report_write(v, nv, runs, nruns, o, figs, nfigs, err, sizeof err);
    if (rc == 0)
        printf("report: %s/report.md and %d figures (%d variant%s, %d run%s read)\n", o->dir, nfigs, nv, nv == 1 ? "" : "s",
               nruns, nruns == 1 ? "" : "s");
    else
        fprintf(stderr, "gptc report: %s\n", err);
    free(figs);
    st_variants_free(v, nv);
    st_runs_free(runs, nruns);
    return rc == 0 ? 0 : 1;
}

int cmd_report(int argc, char **argv) {
    ReportArgs a = {0};
    StPlotOptions o = {0};
    int rc = parse_args(argc, argv, &a, &o);
    if (rc < 0) rc = make_report(&a, &o);
    free(a.inputs);
    return rc;
}
