/* run.c — the training loop of spec S-8.1 on a backend (runtime.h): validation at step 0,
 * every val_every steps and at the end; gradient accumulation over micro-batches and
 * averaging across ranks; logs; atomic checkpoints that a resumed run continues exactly;
 * a clean stop on SIGINT and on a non-finite loss.
 *
 * Ranks and micro-batches. With W processes and G micro-batches per step, the data are
 * read as by W·G ranks of the spec's loader: process r computes virtual ranks r·G .. r·G +
 * G − 1 one after the other. So `mpirun -np 2` and `--grad-accum 2` read the same tokens
 * and average the same gradients. */
#include "trainer/trainer.h"

#include "base/base.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/runtime.h"

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) { (void)sig; interrupted = 1; }

static int64_t cfg_int(const Program *p, const char *name, int64_t dflt) {
    const ConfigEntry *e = fe_config(p, name);
    return e ? (int64_t)e->value : dflt;
}

/* ---- evaluation (the validation graph, T = val_seq_len) ------------------------------------- */

static double eval_batch(TrainRun *r, const int32_t *in, const int32_t *tg, double wl, double ws, char *err, size_t errlen) {
    Program *p = &r->eval_c->prog;
    RtExec *e = r->eval_r;
    for (int i = 0; i < p->nparams; i++) rt_exec_set(e, p->params[i].node, r->t.param[i]);
    rt_exec_set_i32(e, r->eval_tokens, in);
    rt_exec_set_i32(e, r->eval_targets, tg);
    rt_exec_set_scalar(e, "window_long", wl);
    rt_exec_set_scalar(e, "window_short", ws);
    double v = NAN;
    if (rt_exec_run(e, err, errlen) == 0) rt_exec_get(e, p->graph->outputs[0], &v);
    return v;
}

/* S-8.1: nb = val_tokens / (W·T_val) batches per rank, each rank's mean, averaged. */
static int validate(TrainRun *r, int64_t step, double *val_loss, char *err, size_t errlen) {
    trainer_sync(&r->t);   /* the evaluation reads the host parameters */
    double wl = fe_schedule_value(r->c, "window_long", step), ws = fe_schedule_value(r->c, "window_short", step);
    double sum = 0;
    for (int j = 0; j < r->accum; j++) {
        Loader *d = &r->val[j];
        loader_reset(d);
        for (int64_t b = 0; b < r->val_batches; b++) {
            if (loader_next(d, r->val_tokens, r->val_targets, err, errlen) != 0) return -1;
            double v = eval_batch(r, r->val_tokens, r->val_targets, wl, ws, err, errlen);
            if (isnan(v) && err[0]) return -1;
            sum += v / (double)r->val_batches;
        }
    }
    sum /= r->accum;
    rt_dist_allreduce_mean_f64(&sum, 1);
    *val_loss = sum;
    return 0;
}

/* ---- checkpoints ---------------------------------------------------------------------------- */

enum { X_STEP, X_VAL_DONE, X_TRAIN_MS, X_LOG_TXT, X_LOG_JSONL, X_SEED, X_NDATA };

/* The fields a checkpoint holds beside the parameters: X_NDATA fixed ones, then a file and a
 * position for the loader of each micro-batch. Values start as the defaults a load keeps
 * when the file lacks the field (-1 marks a checkpoint that is not a training one). */
typedef struct {
    TrainerExtra x[X_NDATA + 2 * TRAIN_MAX_ACCUM];
    char names[2 * TRAIN_MAX_ACCUM][48];
    int n;
} CkptFields;

static void ckpt_fields(const TrainRun *r, CkptFields *f) {
    static const char *const fixed[X_NDATA] = {"trainer.step",      "trainer.val_done",    "run.train_time_us",
                                               "run.log_txt_bytes", "run.log_jsonl_bytes", "trainer.seed"};
    for (int i = 0; i < X_NDATA; i++) f->x[i] = (TrainerExtra){fixed[i], i == X_STEP ? -1 : 0};
    f->n = X_NDATA;
    for (int j = 0; j < r->accum; j++) {
        snprintf(f->names[2 * j], sizeof f->names[0], "trainer.data%d_file", j);
        snprintf(f->names[2 * j + 1], sizeof f->names[0], "trainer.data%d_pos", j);
        f->x[f->n++] = (TrainerExtra){f->names[2 * j], -1};
        f->x[f->n++] = (TrainerExtra){f->names[2 * j + 1], -1};
    }
}

/* next_step: the step the run continues with; val_done: its validation is logged already. */
static int save_checkpoint(TrainRun *r, int64_t next_step, bool val_done, char *err, size_t errlen) {
    trainer_sync(&r->t);   /* collective with sharded Muon on cuda: every rank takes part */
    if (rt_dist_rank() != 0) return 0;
    CkptFields f;
    ckpt_fields(r, &f);
    f.x[X_STEP].value = next_step;
    f.x[X_VAL_DONE].value = val_done;
    f.x[X_TRAIN_MS].value = (int64_t)llround(r->train_ms * 1000);
    runlog_sizes(&r->log, &f.x[X_LOG_TXT].value, &f.x[X_LOG_JSONL].value);
    f.x[X_SEED].value = (int64_t)r->opt.seed;
    for (int j = 0; j < r->accum; j++) {
        int64_t st[2];
        loader_get_state(&r->train[j], st);
        f.x[X_NDATA + 2 * j].value = st[0];
        f.x[X_NDATA + 2 * j + 1].value = st[1];
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", r->opt.out_dir);
    return trainer_save(&r->t, path, f.x, f.n, err, errlen);
}

/* Parameters, optimizer state, step, clock, log sizes and data positions of a run folder. */
static int resume_from(TrainRun *r, const char *dir, int64_t *step, bool *val_done, int64_t *txt, int64_t *jsonl,
                       char *err, size_t errlen) {
    CkptFields f;
    ckpt_fields(r, &f);
    TrainerExtra *x = f.x;
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    if (trainer_load(&r->t, path, true, x, f.n, err, errlen) != 0) return -1;
    if (x[X_STEP].value < 0 || x[X_NDATA].value < 0) {
        snprintf(err, errlen, "%s: not a training checkpoint of %d micro-batches (trainer.* entries missing)", path, r->accum);
        return -1;
    }
    for (int j = 0; j < r->accum; j++) {
        int64_t st[2] = {x[X_NDATA + 2 * j].value, x[X_NDATA + 2 * j + 1].value};
        if (loader_set_state(&r->train[j], st, err, errlen) != 0) return -1;
    }
    *step = x[X_STEP].value;
    *val_done = x[X_VAL_DONE].value != 0;
    r->train_ms = (double)x[X_TRAIN_MS].value / 1000;
    *txt = x[X_LOG_TXT].value;
    *jsonl = x[X_LOG_JSONL].value;
    return 0;
}

/* ---- logging -------------------------------------------------------------------------------- */

static void log_validation(TrainRun *r, int64_t step, double val_loss) {
    trainer_sync(&r->t);
    const Program *p = &r->c->prog;
    int nl = p->nlogs;
    const char **names = xmalloc(sizeof(char *) * (size_t)(nl + 1));
    double **vecs = xmalloc(sizeof(double *) * (size_t)(nl + 1));
    int *counts = xmalloc(sizeof(int) * (size_t)(nl + 1));
    for (int i = 0; i < nl; i++) {
        const LogDecl *L = &p->logs[i];
        int pi = 0;
        while (pi < p->nparams && strcmp(p->params[pi].name, L->param)) pi++;
        names[i] = L->name;
        counts[i] = (int)L->count;
        vecs[i] = xmalloc(sizeof(double) * (size_t)(L->count + 1));
        for (int64_t k = 0; k < L->count; k++) vecs[i][k] = r->t.param[pi][L->offset + k * L->stride];
    }
    ValRecord v = {step, r->steps, val_loss, r->train_ms,
                     {(int64_t)fe_schedule_value(r->c, "window_long", step), (int64_t)fe_schedule_value(r->c, "window_short", step)},
                     nl, names, vecs, counts};
    if (rt_dist_rank() == 0) runlog_val(&r->log, &v);
    if (rt_dist_rank() == 0 && r->opt.verbose)
        fprintf(stderr, "%sstep %lld/%lld  val_loss %.6f  train_time %.0f ms\n", r->progress_shown ? "\n" : "",
                (long long)step, (long long)r->steps, val_loss, r->train_ms);
    r->progress_shown = false;
    for (int i = 0; i < nl; i++) free(vecs[i]);
    free(names), free(vecs), free(counts);
}

static void progress(TrainRun *r, int64_t step, double loss, double step_ms) {
    if (rt_dist_rank() != 0 || !r->tty) return;
    double tok_s = (double)(r->T * r->accum * rt_dist_size()) / (step_ms / 1000);
    double eta = (double)(r->steps - step - 1) * (r->train_ms / (double)(step + 1 - r->first_step)) / 1000;
    fprintf(stderr, "\rstep %lld/%lld  loss %.4f  %.0f tok/s  ETA %dm%02ds   ", (long long)step + 1, (long long)r->steps,
            loss, tok_s, (int)(eta / 60), (int)fmod(eta, 60));
    r->progress_shown = true;
}

/* ---- one step --------------------------------------------------------------------------------- */

static int train_step(TrainRun *r, int64_t s, double *loss, char *err, size_t errlen) {
    Trainer *t = &r->t;
    const Program *p = &r->c->prog;
    double wl = fe_schedule_value(r->c, "window_long", s), ws = fe_schedule_value(r->c, "window_short", s);
    double total = 0;
    for (int j = 0; j < r->accum; j++) {
        double lj;
        if (loader_next(&r->train[j], r->train_tokens, r->train_targets, err, errlen) != 0) return -1;
        if (trainer_grad(t, r->train_tokens, r->train_targets, wl, ws, &lj, err, errlen) != 0) return -1;
        total += lj;
        for (int i = 0; r->accum > 1 && i < t->np; i++) {   /* one micro-batch: t->grad is the sum */
            int64_t n = fe_param_count(&p->params[i]);
            for (int64_t k = 0; k < n; k++) r->acc[i][k] = j ? r->acc[i][k] + t->grad[i][k] : t->grad[i][k];
        }
    }
    for (int i = 0; i < t->np && !t->device_grads; i++) {   /* device gradients are averaged in the step */
        int64_t n = fe_param_count(&p->params[i]);
        if (r->accum > 1)
            for (int64_t k = 0; k < n; k++) t->grad[i][k] = r->acc[i][k] / r->accum;
        rt_dist_allreduce_mean_f64(t->grad[i], n);
    }
    *loss = total / r->accum;
    rt_dist_allreduce_mean_f64(loss, 1);
    if (!isfinite(*loss)) return 0;   /* the caller stops, keeping the last checkpoint */
    return trainer_update(t, s, err, errlen);
}

/* ---- setup and the loop ------------------------------------------------------------------------- */

static int open_data(TrainRun *r, char *err, size_t errlen) {
    const Program *p = &r->c->prog;
    int32_t vocab = (int32_t)cfg_int(p, "vocab", INT32_MAX);
    int world = rt_dist_size() * r->accum;
    for (int j = 0; j < r->accum; j++) {
        int vrank = rt_dist_rank() * r->accum + j;
        if (loader_open(&r->train[j], r->opt.data_dir, "train", r->T, vrank, world, vocab, err, errlen) != 0 ||
            loader_open(&r->val[j], r->opt.data_dir, "val", r->T_val, vrank, world, vocab, err, errlen) != 0)
            return -1;
    }
    int64_t val_tokens = cfg_int(p, "val_tokens", 0);
    if (val_tokens <= 0 || val_tokens % (r->T_val * world) != 0) {
        snprintf(err, errlen, "val_tokens (%lld) must be a positive multiple of ranks × micro-batches × val_seq_len (%lld)",
                 (long long)val_tokens, (long long)(r->T_val * world));
        return -1;
    }
    r->val_batches = val_tokens / (r->T_val * world);
    return 0;
}

static int setup(TrainRun *r, FeCompile *c, FeCompile *eval_c, const TrainOptions *opt, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    r->c = c;
    r->eval_c = eval_c;
    r->opt = *opt;
    r->accum = opt->grad_accum;
    r->tty = isatty(2);
    r->T = c->prog.T;
    r->T_val = eval_c->prog.T;
    r->steps = cfg_int(&c->prog, "steps", 0);
    r->val_every = cfg_int(&c->prog, "val_every", 0);
    if (r->steps <= 0) {
        snprintf(err, errlen, "the config's 'steps' must be positive");
        return -1;
    }
    if (trainer_init(&r->t, c, opt->backend, opt->prec, err, errlen) != 0) return -1;
    if (r->t.device_grads && r->accum > 1) {
        snprintf(err, errlen, "the cuda backend keeps gradients on the device and does not accumulate micro-batches: "
                 "use --grad-accum 1 (more ranks, or a longer seq_len, for a larger batch)");
        return -1;
    }
    if (ir_optimize(eval_c->prog.graph, err, errlen) != 0) return -1;
    r->eval_r = rt_exec_new(opt->backend, eval_c->prog.graph, opt->prec, eval_c->prog.graph->outputs, 1, err, errlen);
    if (!r->eval_r) return -1;
    if (opt->backend != RT_REF_BACKEND && opt->verbose && rt_dist_rank() == 0)   /* the static plan, before step 1 */
        fprintf(stderr, "memory plan: %.1f MB (gradient step) + %.1f MB (update) + %.1f MB (validation)\n",
                rt_exec_peak_bytes(r->t.grad_r) / 1e6, rt_exec_peak_bytes(r->t.upd_r) / 1e6,
                rt_exec_peak_bytes(r->eval_r) / 1e6);
    r->eval_tokens = ir_leaf_named(eval_c->prog.graph, IR_INPUT, "tokens");
    r->eval_targets = ir_leaf_named(eval_c->prog.graph, IR_INPUT, "targets");
    r->train_tokens = xmalloc(sizeof(int32_t) * (size_t)r->T);
    r->train_targets = xmalloc(sizeof(int32_t) * (size_t)r->T);
    r->val_tokens = xmalloc(sizeof(int32_t) * (size_t)r->T_val);
    r->val_targets = xmalloc(sizeof(int32_t) * (size_t)r->T_val);
    r->acc = xcalloc((size_t)r->t.np + 1, sizeof(double *));
    for (int i = 0; r->accum > 1 && i < r->t.np; i++)
        r->acc[i] = xmalloc(sizeof(double) * (size_t)fe_param_count(&c->prog.params[i]));
    return open_data(r, err, errlen);
}

static void teardown(TrainRun *r) {
    for (int j = 0; j < r->accum; j++) {
        loader_close(&r->train[j]);
        loader_close(&r->val[j]);
    }
    if (r->acc) values_free(r->acc, r->t.np);
    free(r->acc);
    free(r->train_tokens), free(r->train_targets), free(r->val_tokens), free(r->val_targets);
    rt_exec_free(r->eval_r);
    trainer_free(&r->t);
    runlog_close(&r->log);
}

/* mkdir -p: the folder and any missing parents. */
/* Starting point: --resume (everything), --init (parameters, fresh optimizer) or a seeded
 * initialization. Opens the logs accordingly. */
static int start_state(TrainRun *r, int64_t *first, bool *val_done, char *err, size_t errlen) {
    int64_t txt = -1, jsonl = -1;
    *first = 0;
    *val_done = false;
    if (r->opt.resume_dir) {
        if (resume_from(r, r->opt.resume_dir, first, val_done, &txt, &jsonl, err, errlen) != 0) return -1;
    } else if (r->opt.init_path) {
        if (trainer_load(&r->t, r->opt.init_path, false, NULL, 0, err, errlen) != 0) return -1;
    } else {
        init_params(&r->c->prog, r->opt.seed, r->t.param);
    }
    if (rt_dist_rank() != 0) return 0;
    if (mkdir_p(r->opt.out_dir, err, errlen) != 0) return -1;
    return runlog_open(&r->log, r->opt.out_dir, txt, jsonl, err, errlen);
}

static bool is_val_step(const TrainRun *r, int64_t s) {
    return s == r->steps || (r->val_every > 0 && s % r->val_every == 0);
}

int train_run(FeCompile *c, FeCompile *eval_c, const TrainOptions *opt, char *err, size_t errlen) {
    TrainRun *r = xcalloc(1, sizeof *r);
    int64_t first = 0;
    bool val_done = false;
    int rc = setup(r, c, eval_c, opt, err, errlen);
    if (rc == 0) rc = start_state(r, &first, &val_done, err, errlen);
    r->first_step = first;
    void (*old)(int) = signal(SIGINT, on_sigint);
    interrupted = 0;
    for (int64_t s = first; rc == 0 && s <= r->steps; s++) {
        if (is_val_step(r, s) && !(s == first && val_done)) {
            double v;
            if ((rc = validate(r, s, &v, err, errlen)) != 0) break;
            log_validation(r, s, v);
            if ((rc = save_checkpoint(r, s, true, err, errlen)) != 0) break;
        }
        if (s == r->steps) break;
        double t0 = clock_seconds() * 1e3, loss;
        if ((rc = train_step(r, s, &loss, err, errlen)) != 0) break;
        if (!isfinite(loss)) {
            snprintf(err, errlen, "step %lld: the training loss is %s; stopped. The last good checkpoint is "
                     "%s/checkpoint.safetensors", (long long)s, isnan(loss) ? "nan" : loss > 0 ? "inf" : "-inf", opt->out_dir);
            rc = -1;
            break;
        }
        double dt = clock_seconds() * 1e3 - t0;
        r->train_ms += dt;
        TrainRecord tr = {s, r->steps, loss, fe_schedule_value(c, "lr_mul", s), r->train_ms,
                            {(int64_t)fe_schedule_value(c, "window_long", s), (int64_t)fe_schedule_value(c, "window_short", s)}};
        if (rt_dist_rank() == 0) runlog_train(&r->log, &tr);
        progress(r, s, loss, dt);
        if (opt->checkpoint_every > 0 && (s + 1) % opt->checkpoint_every == 0 && !is_val_step(r, s + 1))
            rc = save_checkpoint(r, s + 1, false, err, errlen);
        if (rc == 0 && interrupted) {
            rc = save_checkpoint(r, s + 1, false, err, errlen);
            if (rc == 0) {
                snprintf(err, errlen, "interrupted after step %lld; checkpoint written to %s/checkpoint.safetensors "
                         "(continue with --resume %s)", (long long)s + 1, opt->out_dir, opt->out_dir);
                rc = TRAIN_INTERRUPTED;
            }
        }
    }
    if (r->progress_shown) fputc('\n', stderr);
    signal(SIGINT, old);
    teardown(r);
    free(r);
    return rc;
}
