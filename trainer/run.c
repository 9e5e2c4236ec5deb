/* run.c — the training loop of spec S-8.1 on a backend (runtime.h): validation at step 0,
 * every val_every steps and at the end; gradient accumulation over micro-batches and
 * averaging across ranks; logs; atomic checkpoints that a resumed run continues exactly;
 * a clean stop on SIGINT, on a non-finite loss and on a write that fails, keeping the last
 * good checkpoint; the run folder's safeguards (runfolder.c) before anything is written.
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

static int eval_batch(TrainRun *r, const int32_t *in, const int32_t *tg, double *v, char *err, size_t errlen) {
    Program *p = &r->eval_c->prog;
    RtExec *e = r->eval_r;
    for (int i = 0; i < p->nparams; i++) rt_exec_set(e, p->params[i].node, r->t.param[i]);
    rt_exec_set_i32(e, r->eval_tokens, in);
    rt_exec_set_i32(e, r->eval_targets, tg);
    if (rt_exec_run(e, err, errlen) != 0) return -1;
    rt_exec_get(e, p->graph->outputs[0], v);
    return 0;
}

/* S-8.1: nb = val_tokens / (W·T_val) batches per rank, each rank's mean, averaged. */
static int validate(TrainRun *r, int64_t step, double *val_loss, char *err, size_t errlen) {
    trainer_sync(&r->t);   /* the evaluation reads the host parameters */
    trainer_schedules(r->eval_c, r->eval_r, step);
    double sum = 0;
    for (int j = 0; j < r->accum; j++) {
        Loader *d = &r->val[j];
        loader_reset(d);
        for (int64_t b = 0; b < r->val_batches; b++) {
            double v;
            if (loader_next(d, r->val_tokens, r->val_targets, err, errlen) != 0 ||
                eval_batch(r, r->val_tokens, r->val_targets, &v, err, errlen) != 0)
                return -1;
            sum += v / (double)r->val_batches;
        }
    }
    sum /= r->accum;
    rt_dist_allreduce_mean_f64(&sum, 1);
    *val_loss = sum;
    return 0;
}

/* ---- checkpoints ---------------------------------------------------------------------------- */

enum { X_STEP, X_VAL_DONE, X_TRAIN_MS, X_LOG_TXT, X_LOG_JSONL, X_SEED, X_ACCUM, X_RANKS, X_NDATA };

/* The fields a checkpoint holds beside the parameters: X_NDATA fixed ones, then a file and a
 * position for the loader of each micro-batch. Values start as the defaults a load keeps
 * when the file lacks the field (-1 marks a checkpoint that is not a training one). */
typedef struct {
    TrainerExtra x[X_NDATA + 2 * TRAIN_MAX_ACCUM];
    char names[2 * TRAIN_MAX_ACCUM][48];
    int n;
} CkptFields;

static void ckpt_fields(const TrainRun *r, CkptFields *f) {
    static const char *const fixed[X_NDATA] = {"trainer.step",        "trainer.val_done", "run.train_time_us",
                                               "run.log_txt_bytes",   "run.log_jsonl_bytes", "trainer.seed",
                                               "run.grad_accum",      "run.ranks"};
    for (int i = 0; i < X_NDATA; i++) f->x[i] = (TrainerExtra){fixed[i], i == X_STEP ? -1 : 0};
    f->n = X_NDATA;
    for (int j = 0; j < r->accum; j++) {
        snprintf(f->names[2 * j], sizeof f->names[0], "trainer.data%d_file", j);
        snprintf(f->names[2 * j + 1], sizeof f->names[0], "trainer.data%d_pos", j);
        f->x[f->n++] = (TrainerExtra){f->names[2 * j], -1};
        f->x[f->n++] = (TrainerExtra){f->names[2 * j + 1], -1};
    }
}

/* The first non-finite parameter value, as "'head' holds nan (element 17)" into where; false
 * when every value is finite. */
static bool nonfinite_param(const TrainRun *r, char *where, size_t len) {
    const Program *p = &r->c->prog;
    for (int i = 0; i < r->t.np; i++) {
        int64_t n = fe_param_count(&p->params[i]);
        for (int64_t k = 0; k < n; k++)
            if (!isfinite(r->t.param[i][k])) {
                double v = r->t.param[i][k];
                snprintf(where, len, "'%s' holds %s (element %lld)", p->params[i].name,
                         isnan(v) ? "nan" : v > 0 ? "inf" : "-inf", (long long)k);
                return true;
            }
    }
    return false;
}

/* next_step: the step the run continues with; val_done: its validation is logged already.
 * Parameters that are not finite are never saved: the checkpoint there stays. Every rank
 * checks them (they hold the same values) and keeps the step saved, so every rank stops
 * alike and says the same. */
static int save_checkpoint(TrainRun *r, int64_t next_step, bool val_done, char *err, size_t errlen) {
    trainer_sync(&r->t);   /* collective with sharded Muon on cuda: every rank takes part */
    char where[256];
    if (nonfinite_param(r, where, sizeof where)) {
        snprintf(err, errlen, "step %lld: parameter %s after the update of step %lld", (long long)next_step, where,
                 (long long)next_step - 1);
        return -1;
    }
    if (rt_dist_rank() != 0) {
        r->ckpt_step = next_step;   /* rank 0 writes it, or ends the job */
        return 0;
    }
    CkptFields f;
    ckpt_fields(r, &f);
    f.x[X_STEP].value = next_step;
    f.x[X_VAL_DONE].value = val_done;
    f.x[X_TRAIN_MS].value = (int64_t)llround(r->train_ms * 1000);
    if (runlog_sizes(&r->log, &f.x[X_LOG_TXT].value, &f.x[X_LOG_JSONL].value, err, errlen) != 0) return -1;
    f.x[X_SEED].value = (int64_t)r->opt.seed;
    f.x[X_ACCUM].value = r->id.grad_accum;
    f.x[X_RANKS].value = r->id.ranks;
    for (int j = 0; j < r->accum; j++) {
        int64_t st[2];
        loader_get_state(&r->train[j], st);
        f.x[X_NDATA + 2 * j].value = st[0];
        f.x[X_NDATA + 2 * j + 1].value = st[1];
    }
    const StMeta meta[3] = {
        {"gptc.model", r->id.model}, {"gptc.model_hash", r->id.model_hash}, {"gptc.config", r->id.config}};
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", r->opt.out_dir);
    if (trainer_save(&r->t, path, f.x, f.n, meta, 3, err, errlen) != 0) return -1;
    r->ckpt_step = next_step;
    return 0;
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
    /* Every micro-batch's loader is at the same file and position. A micro-batch the run did
     * not have (more of them, allowed by --allow-change) continues from the first one's; with
     * another batch size the position moves on to the next batch boundary. */
    for (int j = 0; j < r->accum; j++) {
        int64_t st[2] = {x[X_NDATA + 2 * j].value, x[X_NDATA + 2 * j + 1].value};
        if (st[0] < 0) st[0] = x[X_NDATA].value, st[1] = x[X_NDATA + 1].value;
        loader_align_state(&r->train[j], st);
        if (loader_set_state(&r->train[j], st, err, errlen) != 0) return -1;
    }
    *step = x[X_STEP].value;
    *val_done = x[X_VAL_DONE].value != 0;
    r->train_ms = (double)x[X_TRAIN_MS].value / 1000;
    *txt = x[X_LOG_TXT].value;
    *jsonl = x[X_LOG_JSONL].value;
    r->ckpt_step = *step;
    return 0;
}

/* ---- logging -------------------------------------------------------------------------------- */

/* Every schedule of c at step, for the logs; free values when done. */
static LogSchedules schedules_at(FeCompile *c, int64_t step) {
    const Program *p = &c->prog;
    double *v = xmalloc(sizeof(double) * (size_t)(p->nschedules + 1));
    for (int i = 0; i < p->nschedules; i++) v[i] = fe_schedule_value(c, p->schedules[i].name, step);
    return (LogSchedules){p->schedules, v, p->nschedules};
}

static int log_validation(TrainRun *r, int64_t step, double val_loss, char *err, size_t errlen) {
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
    ValRecord v = {step, r->steps, val_loss, r->train_ms, schedules_at(r->c, step), nl, names, vecs, counts};
    int rc = rt_dist_rank() == 0 ? runlog_val(&r->log, &v, err, errlen) : 0;
    if (rc == 0 && rt_dist_rank() == 0 && r->opt.verbose)
        fprintf(stderr, "%sstep %lld/%lld  val_loss %.6f  train_time %.0f ms\n", r->progress_shown ? "\n" : "",
                (long long)step, (long long)r->steps, val_loss, r->train_ms);
    r->progress_shown = false;
    for (int i = 0; i < nl; i++) free(vecs[i]);
    free(names), free(vecs), free(counts);
    free(v.schedules.values);
    return rc;
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
    trainer_set_schedules(t, s);
    double total = 0;
    for (int j = 0; j < r->accum; j++) {
        double lj;
        if (loader_next(&r->train[j], r->train_tokens, r->train_targets, err, errlen) != 0) return -1;
        if (trainer_grad(t, r->train_tokens, r->train_targets, &lj, err, errlen) != 0) return -1;
        total += lj;
        for (int i = 0; r->accum > 1 && !t->device_grads && i < t->np; i++) {   /* t->grad is the sum */
            int64_t n = fe_param_count(&p->params[i]);
            for (int64_t k = 0; k < n; k++) r->acc[i][k] = j ? r->acc[i][k] + t->grad[i][k] : t->grad[i][k];
        }
    }
    for (int i = 0; i < t->np && !t->device_grads; i++) {   /* device gradients are averaged in the step */
        if (!fe_param_trainable(&p->params[i])) continue;
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
    struct stat st;
    if (rt_dist_rank() == 0 && stat(r->opt.data_dir, &st) == 0 && S_ISREG(st.st_mode))
        fprintf(stderr, "gptc train: warning: --data %s is one shard file, which serves both training and validation: "
                "the validation loss is measured on tokens the model trains on (a folder with *train*.bin and "
                "*val*.bin shards keeps them apart)\n", r->opt.data_dir);
    return 0;
}

/* The run's settings, before anything is built. */
static int configure(TrainRun *r, FeCompile *c, FeCompile *eval_c, const TrainOptions *opt, char *err, size_t errlen) {
    r->c = c;
    r->eval_c = eval_c;
    r->opt = *opt;
    r->accum = opt->grad_accum;
    r->tty = isatty(2);
    r->T = c->prog.T;
    r->T_val = eval_c->prog.T;
    r->steps = cfg_int(&c->prog, "steps", 0);
    r->val_every = cfg_int(&c->prog, "val_every", 0);
    r->lock_fd = -1;
    r->ckpt_step = -1;
    runfolder_identity(c, r->accum, rt_dist_size(), &r->id);
    int bad = fe_check_trainable(c, r->T_val != r->T ? eval_c : NULL);   /* located, on c's diagnostics */
    if (bad) {
        snprintf(err, errlen, "the model cannot be trained as it is: %d error%s above", bad, bad == 1 ? "" : "s");
        return -1;
    }
    if (r->steps <= 0) {
        snprintf(err, errlen, "the config's 'steps' must be positive");
        return -1;
    }
    return 0;
}

/* The run folder: a fresh run must not replace a run there, a resumed one must continue
 * the same run (TRAIN_FINISHED when it has nothing left to do); every rank checks the
 * checkpoint it will read, so every rank stops alike. Checked once before the model is
 * built (a quick answer, nothing written), and again once rank 0 holds the folder's lock,
 * which it takes then (creating the folder), clearing what dead writers left and, with
 * --overwrite, the old checkpoint. */
static int check_folder(TrainRun *r, bool lock, char *err, size_t errlen) {
    const TrainOptions *o = &r->opt;
    bool rank0 = rt_dist_rank() == 0;
    if (lock && rank0) {
        if (runfolder_lock(o->out_dir, &r->lock_fd, err, errlen) != 0) return -1;
        runfolder_remove_stale(o->out_dir, stderr);
    }
    if (o->resume_dir) return runfolder_check_resume(o->resume_dir, &r->id, o->allow_change, r->steps, rank0, err, errlen);
    if (!rank0 || runfolder_check_fresh(o->out_dir, o->overwrite, err, errlen) != 0) return rank0 ? -1 : 0;
    return lock && o->overwrite ? runfolder_clear(o->out_dir, err, errlen) : 0;
}

static int setup(TrainRun *r, char *err, size_t errlen) {
    FeCompile *c = r->c, *eval_c = r->eval_c;
    const TrainOptions *opt = &r->opt;
    if (trainer_init(&r->t, c, opt->backend, opt->prec, err, errlen) != 0) return -1;
    if (trainer_micro_batches(&r->t, r->accum) != 0) {
        snprintf(err, errlen, "the cuda backend keeps gradients on the device and does not accumulate micro-batches: "
                 "use --grad-accum 1 (more ranks, or a longer seq_len, for a larger batch)");
        return -1;
    }
    if (step_eval_build(eval_c->prog.graph, r->T, err, errlen) != 0) return -1;
    r->eval_r = rt_exec_new(opt->backend, eval_c->prog.graph, opt->prec, eval_c->prog.graph->outputs, 1, err, errlen);
    if (!r->eval_r) return -1;
    if (opt->backend != RT_REF_BACKEND && opt->verbose && rt_dist_rank() == 0)   /* the static plan, before step 1 */
        fprintf(stderr, "memory plan: %.1f MB (gradient step) + %.1f MB (update) + %.1f MB (validation)\n",
                rt_exec_peak_bytes(r->t.grad_r) / 1e6, rt_exec_peak_bytes(r->t.upd_r) / 1e6,
                rt_exec_peak_bytes(r->eval_r) / 1e6);
    r->eval_tokens = fe_stream_input(&eval_c->prog, FE_TOKENS);
    r->eval_targets = fe_stream_input(&eval_c->prog, FE_NEXT_TOKENS);
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
    runlog_close(&r->log, NULL, 0);
    runfolder_unlock(r->lock_fd);
    runfolder_identity_free(&r->id);
}

/* --init: parameters of a parameter file, or of a checkpoint (said, with where its run
 * continues instead). */
static int init_from(TrainRun *r, const char *path, char *err, size_t errlen) {
    TrainerExtra step = {"trainer.step", -1};
    if (trainer_load(&r->t, path, false, &step, 1, err, errlen) != 0) return -1;
    if (step.value >= 0 && rt_dist_rank() == 0)
        fprintf(stderr, "gptc train: %s is a training checkpoint (step %lld): this run starts from its parameters at "
                "step 0 with a fresh optimizer (--resume on its folder continues that run)\n", path, (long long)step.value);
    return 0;
}

/* Starting point: --resume (everything), --init (parameters, fresh optimizer) or a seeded
 * initialization; parameters that are not finite are refused. Opens the logs accordingly. */
static int start_state(TrainRun *r, int64_t *first, bool *val_done, char *err, size_t errlen) {
    int64_t txt = -1, jsonl = -1;
    *first = 0;
    *val_done = false;
    if (r->opt.resume_dir) {
        if (resume_from(r, r->opt.resume_dir, first, val_done, &txt, &jsonl, err, errlen) != 0) return -1;
    } else if (r->opt.init_path) {
        if (init_from(r, r->opt.init_path, err, errlen) != 0) return -1;
    } else {
        init_params(&r->c->prog, r->opt.seed, r->t.param);
    }
    const char *from = r->opt.resume_dir ? r->opt.resume_dir : r->opt.init_path;
    char where[256];
    if (from && nonfinite_param(r, where, sizeof where)) {
        snprintf(err, errlen, "%s: parameter %s: refusing to start from it", from, where);
        return -1;
    }
    if (rt_dist_rank() != 0) return 0;
    return runlog_open(&r->log, r->opt.out_dir, txt, jsonl, err, errlen);
}

static bool is_val_step(const TrainRun *r, int64_t s) {
    return s == r->steps || (r->val_every > 0 && s % r->val_every == 0);
}

/* err += what the run folder keeps after an error: the step its checkpoint holds. */
static void say_kept(const TrainRun *r, char *err, size_t errlen) {
    size_t n = strlen(err);
    if (n >= errlen - 1) return;
    if (r->ckpt_step >= 0)
        snprintf(err + n, errlen - n, "; stopped. The last good checkpoint is %s/checkpoint.safetensors, at step %lld",
                 r->opt.out_dir, (long long)r->ckpt_step);
    else
        snprintf(err + n, errlen - n, "; stopped before a checkpoint was written");
}

static const char *nonfinite_name(double v) { return isnan(v) ? "nan" : v > 0 ? "inf" : "-inf"; }

/* One step of the loop: the validation of step s when it is due, then the training step s
 * (unless s is the end). Logs and checkpoints; a non-finite loss stops before either. */
static int loop_step(TrainRun *r, int64_t s, bool skip_val, char *err, size_t errlen) {
    FeCompile *c = r->c;
    const TrainOptions *opt = &r->opt;
    if (is_val_step(r, s) && !skip_val) {
        double v;
        if (validate(r, s, &v, err, errlen) != 0) return -1;
        if (!isfinite(v)) {
            snprintf(err, errlen, "step %lld: the validation loss is %s", (long long)s, nonfinite_name(v));
            return -1;
        }
        if (log_validation(r, s, v, err, errlen) != 0 || save_checkpoint(r, s, true, err, errlen) != 0) return -1;
    }
    if (s == r->steps) return 0;
    double t0 = clock_seconds() * 1e3, loss;
    if (train_step(r, s, &loss, err, errlen) != 0) return -1;
    if (!isfinite(loss)) {
        snprintf(err, errlen, "step %lld: the training loss is %s", (long long)s, nonfinite_name(loss));
        return -1;
    }
    double dt = clock_seconds() * 1e3 - t0;
    r->train_ms += dt;
    TrainRecord tr = {s, r->steps, loss, r->train_ms, schedules_at(c, s)};
    int rc = rt_dist_rank() == 0 ? runlog_train(&r->log, &tr, err, errlen) : 0;
    free(tr.schedules.values);
    if (rc != 0) return -1;
    progress(r, s, loss, dt);
    if (opt->checkpoint_every > 0 && (s + 1) % opt->checkpoint_every == 0 && !is_val_step(r, s + 1))
        if (save_checkpoint(r, s + 1, false, err, errlen) != 0) return -1;
    if (interrupted) {
        if (save_checkpoint(r, s + 1, false, err, errlen) != 0) return -1;
        snprintf(err, errlen, "interrupted after step %lld; checkpoint written to %s/checkpoint.safetensors "
                 "(continue with --resume %s)", (long long)s + 1, opt->out_dir, opt->out_dir);
        return TRAIN_INTERRUPTED;
    }
    return 0;
}

int train_run(FeCompile *c, FeCompile *eval_c, const TrainOptions *opt, char *err, size_t errlen) {
    TrainRun *r = xcalloc(1, sizeof *r);
    int64_t first = 0;
    bool val_done = false;
    err[0] = 0;
    int rc = configure(r, c, eval_c, opt, err, errlen);
    if (rc == 0) rc = check_folder(r, false, err, errlen);
    if (rc == 0) rc = setup(r, err, errlen);
    if (rc == 0) rc = check_folder(r, true, err, errlen);
    if (rc == 0) rc = start_state(r, &first, &val_done, err, errlen);
    r->first_step = first;
    void (*old)(int) = signal(SIGINT, on_sigint);
    /* a file-size limit (ulimit -f) then fails a write with EFBIG, reported like a full disk,
     * instead of killing the run in the middle of one */
    void (*old_xfsz)(int) = signal(SIGXFSZ, SIG_IGN);
    interrupted = 0;
    bool started = rc == 0;
    for (int64_t s = first; rc == 0 && s <= r->steps; s++) {
        rc = loop_step(r, s, s == first && val_done, err, errlen);
        if (s == r->steps) break;
    }
    if (r->progress_shown) fputc('\n', stderr);
    if (rc == 0) rc = runlog_close(&r->log, err, errlen);
    if (started && rc == -1) say_kept(r, err, errlen);
    signal(SIGINT, old);
    signal(SIGXFSZ, old_xfsz);
    teardown(r);
    free(r);
    return rc;
}
