/* study.h — the study's tools: reading runs' logs (gptc run folders and modded-nanogpt log
 * files), statistics over seeds, gnuplot figures and report.md (`gptc report`), and running
 * every variant × seed of a sweep as child `gptc train` processes (`gptc sweep`).
 * Ownership: an StRun, an StVariant and an StSweep own their strings and arrays; the
 * StVariants' run pointers borrow the StRun array they were grouped from. */
#ifndef GPTC_STUDY_H
#define GPTC_STUDY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- runs.c: one run's validation curve and logged vectors --------------------------------- */

typedef struct {
    char *name;                /* "x00_lambdas" */
    int n;                     /* (L,) one value per layer */
    double *v;
} StVector;

typedef struct {
    char *path;                /* the run folder, or the log file */
    char *variant;             /* group label: "n_emb=2" */
    int n_emb;                 /* input embeddings (x00 … count), 0 if unknown */
    int64_t steps;             /* M of "step:N/M"; 0 if the log does not say */
    int nval;
    int64_t *step;             /* (nval,) validation steps, in log order */
    double *loss, *ms;         /* (nval,) validation loss, training time in ms */
    int nvec;
    StVector *vec;             /* each logged vector as last logged */
    char *cut;                 /* the log whose last line has no end (cut while written), left out; or NULL */
} StRun;

/* Reads one log: a modded-nanogpt log.txt-format file or a gptc log.jsonl (by name).
 * Lines that are neither validation nor vector lines are ignored; so is a last line
 * without its end of line (r->cut names the log then). In log.jsonl, null stands for a
 * number that was not finite. 0, or -1 with err. */
int st_run_read(StRun *r, const char *log_path, char *err, size_t errlen);
/* Reads a gptc run folder (log.txt, else log.jsonl; run.json's variant if present). */
int st_run_read_dir(StRun *r, const char *dir, char *err, size_t errlen);
/* Every run under path: a run folder, a log file, or a folder searched recursively (a folder
 * with log.txt or log.jsonl is a run; other *.txt / *.log files are runs when they hold a
 * validation line). Appends to *runs (*n of them). 0, or -1 with err. */
int st_runs_find(const char *path, StRun **runs, int *n, char *err, size_t errlen);
/* The log validated at its last step (a log that does not state the length counts as done). */
bool st_run_finished(const StRun *r);
/* Fills variant and n_emb where the log did not: from the folder name ("n_emb=2"), the count
 * of x0NN_lambdas vectors, or the file name. */
void st_run_label(StRun *r);
void st_run_free(StRun *r);
void st_runs_free(StRun *runs, int n);
/* The last "step:N/M" of a log.txt (read from its end): 0 with *step, *steps; -1 if none. */
int st_log_progress(const char *log_txt, int64_t *step, int64_t *steps);

/* ---- stats.c: mean, spread and the one-sided t-test ---------------------------------------- */

typedef struct {
    int n;
    double mean, std;          /* std: sample standard deviation (n − 1); NAN for n < 2 */
} StSummary;

typedef struct {
    double t, df, p;           /* p = P(T_df <= t); NAN when n < 2 or the spread is 0 */
} StTTest;

StSummary st_summary(const double *x, int n);
/* The regularized incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1. */
double st_incbeta(double a, double b, double x);
/* P(T <= t) for Student's t with df > 0 degrees of freedom. */
double st_t_cdf(double t, double df);
/* One-sample, one-sided t-test of H1: mean(x) < mu0. */
StTTest st_ttest_below(const double *x, int n, double mu0);

/* ---- variants.c: runs grouped by variant, curves averaged over seeds ------------------------ */

typedef struct {
    char *label;
    int n_emb;
    int nruns;
    StRun **runs;              /* finished runs of this variant (borrowed) */
    int npts;                  /* validation steps that every run logged */
    int64_t *step;             /* (npts,) */
    double *loss, *sec;        /* (npts,) mean validation loss, mean training time in s */
    double *final_loss, *final_sec, *step_ms;   /* (nruns,) per run, at its last step */
    StSummary loss_s, sec_s, step_s;
} StVariant;

/* Groups the finished runs by label; variants sorted by n_emb, then label (natural order). */
int st_variants_group(StRun *runs, int n, StVariant **out, int *nout, char *err, size_t errlen);
void st_variants_free(StVariant *v, int n);
/* Per layer over the variant's runs: mean and std of vector `name`; NULL if any run lacks
 * it or the lengths differ. *len gets the length; the caller frees both arrays (one block). */
double *st_variant_vector(const StVariant *v, const char *name, int *len, double **std);
/* "x01 (n_emb=2)" for the label "n_emb=2", else the label. */
void st_variant_title(const StVariant *v, char *buf, size_t len);
/* The label as a file-name part: characters other than [A-Za-z0-9._=-] become '_'. */
void st_variant_slug(const StVariant *v, char *buf, size_t len);

/* ---- plot.c: the figures, through gnuplot ---------------------------------------------------- */

typedef struct {
    double x0, x1;             /* a zoom window; x0 >= x1 means "choose it" */
} StRange;

typedef struct {
    const char *dir;           /* REPORT_DIR: PNGs here, scripts and data in dir/gnuplot/ */
    StRange zoom_step, zoom_sec;
    double threshold;
} StPlotOptions;

typedef struct {
    char name[256];            /* file name under dir */
    char title[512];
} StFigure;

/* Writes every figure; *figs gets their names (the caller frees it). 0, or -1 with err. */
int st_plot_all(const StVariant *v, int n, const StPlotOptions *o, StFigure **figs, int *nfigs,
                char *err, size_t errlen);
/* The automatic zoom: from 65 % of the shortest mean curve's x to the longest's end, so
 * every variant's last 35 % shows (steps or seconds). */
StRange st_zoom_auto(const StVariant *v, int n, bool by_time);

/* ---- sweep.c: every variant × seed as a child `gptc train`, resumably ------------------------ */

typedef enum {
    SW_START,                  /* no checkpoint: start it */
    SW_RESUME,                 /* a checkpoint, not finished: --resume it */
    SW_SKIP,                   /* finished before this sweep started */
    SW_RUNNING, SW_DONE, SW_FAILED,
    SW_STOPPED,                /* interrupted: its checkpoint stays for the next sweep */
} StSweepState;

typedef struct {
    char *dir;                 /* "SWEEP_DIR/n_emb=2/seed=0" */
    char *name;                /* "n_emb=2/seed=0" */
    char *variant;             /* "n_emb=2" (several settings: "n_emb=2,dim=64") */
    char **sets;               /* (nsets,) the variant's "NAME=VALUE" settings */
    int nsets;
    int seed;
    int64_t steps;             /* the run's length, for the ETA (0 unknown) */
    StSweepState state;
    int pid, status;
    double t0;                 /* when it started, s */
    int64_t step0, step;       /* its step when started and now */
} StSweepRun;

typedef struct {
    const char *out;           /* SWEEP_DIR */
    const char *exe;           /* the gptc to run ("/proc/self/exe"; a full path with a launcher) */
    const char *launcher;      /* words run before it ("mpirun -np 8"), or NULL */
    const char *const *train_args;   /* MODEL and the train options all runs share */
    int ntrain_args;
    int jobs;                  /* most children at once */
    StSweepRun *runs;
    int nruns, nvariants, nseeds;
} StSweep;

/* The runs: the cartesian product of the "NAME=V1,V2,…" specs (the first varies slowest)
 * × seeds 0 … nseeds − 1. 0, or -1 with err on a malformed spec. */
int st_sweep_plan(StSweep *s, const char *const *vary, int nvary, int nseeds, char *err, size_t errlen);
/* Creates SWEEP_DIR, checks that its sweep.json (if any) has the same train arguments,
 * writes sweep.json, and sets each run's state from its folder. 0, or -1 with err. */
int st_sweep_prepare(StSweep *s, const char *command, char *err, size_t errlen);
/* Runs what is left, at most s->jobs at a time, with a progress line on stderr; SIGINT and
 * SIGTERM are forwarded to the children as SIGINT. 0 when every run finished, 1 when one
 * failed, 130 when interrupted. */
int st_sweep_run(StSweep *s);
void st_sweep_free(StSweep *s);

/* ---- report.c: report.md ---------------------------------------------------------------------- */

int st_report_write(const StVariant *v, int n, const StRun *runs, int nruns, const StPlotOptions *o,
                    const StFigure *figs, int nfigs, char *err, size_t errlen);

#endif
