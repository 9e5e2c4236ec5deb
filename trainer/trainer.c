/* trainer.c — one training step on a backend (runtime.h): the gradient graph on a batch,
 * then the update graph; host copies of parameters, gradients and optimizer state in
 * double (exactly the backend's values in f32 mode), and their checkpoint files. */
#include "trainer/trainer.h"
#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

/* One double per parameter element, per parameter; NULL entries where memory ran out
 * (the caller checks with host_copies). */
static double **alloc_like(const Program *p, char *why, size_t whylen) {
    double **v = xcalloc((size_t)p->nparams + 1, sizeof *v);
    for (int i = 0; i < p->nparams && !why[0]; i++)
        v[i] = try_calloc((size_t)fe_param_count(&p->params[i]), sizeof(double), "the host copies", why, whylen);
    return v;
}

/* The host copies of the parameters, gradients and optimizer state (in double): four
 * arrays the size of the model, refused with the sizes when they cannot fit. */
static int host_copies(Trainer *t, const Program *p, char *err, size_t errlen) {
    int64_t n = 0;
    for (int i = 0; i < p->nparams; i++) n += fe_param_count(&p->params[i]);
    double need = 4.0 * 8.0 * (double)n;
    char why[160] = "", a[32];
    double ***arrays[4] = {&t->param, &t->grad, &t->state[0], &t->state[1]};
    if (!exceeds_memory(need, why, sizeof why))
        for (int k = 0; k < 4 && !why[0]; k++) *arrays[k] = alloc_like(p, why, sizeof why);
    if (!why[0]) return 0;
    snprintf(err, errlen, OUT_OF_MEMORY ": the host copies of the parameters, gradients and optimizer state "
             "(4 x %lld values in double) need %s; %s", (long long)n, fmt_bytes(need, a, sizeof a), why);
    return -1;
}

static void free_like(double **v, int n) {
    if (!v) return;
    values_free(v, n);
    free(v);
}

static void push_state(Trainer *t);
static void share_memory(Trainer *t);
static void hand_over_grads(Trainer *t);

int trainer_init(Trainer *t, FeCompile *c, RtBackend backend, RtPrec prec, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    t->c = c;
    t->prec = prec;
    Program *p = &c->prog;
    t->np = p->nparams;
    /* Muon matrices are dealt round-robin to the ranks; Adam's elementwise steps run everywhere */
    t->owner = xmalloc(sizeof(int) * (size_t)(p->nparams + 1));
    bool *mine = xmalloc(sizeof(bool) * (size_t)(p->nparams + 1));
    int nmuon = 0;
    for (int i = 0; i < p->nparams; i++) {
        bool muon = fe_param_trainable(&p->params[i]) && p->optims[p->params[i].optim].kind == OPT_MUON;
        t->owner[i] = muon && rt_dist_size() > 1 ? rt_dist_owner(nmuon++) : -1;
        mine[i] = t->owner[i] < 0 || t->owner[i] == rt_dist_rank();
    }
    int rc = step_grad_build(p, &t->gg, err, errlen);
    /* the cuda backend's bf16 gradient step reads weights stored in bf16: the update writes them */
    if (rc == 0) rc = step_update_build(c, mine, backend == RT_CUDA_BACKEND && prec == RT_BF16, &t->ug, err, errlen);
    free(mine);
    if (rc != 0) return -1;
    t->tokens = fe_stream_input(p, FE_TOKENS);
    t->targets = fe_stream_input(p, FE_NEXT_TOKENS);
    if (!t->tokens || !t->targets) {
        snprintf(err, errlen, "the model must declare the inputs '%s' and '%s'", fe_stream_name(FE_TOKENS),
                 fe_stream_name(FE_NEXT_TOKENS));
        return -1;
    }
    if (host_copies(t, p, err, errlen) != 0) return -1;
    t->backend = backend;
    t->resident = (backend == RT_CPU_BACKEND && rt_dist_size() == 1) || backend == RT_CUDA_BACKEND;
    t->device_grads = backend == RT_CUDA_BACKEND;
    t->dev_stale = true;
    IrGraph *g = p->graph;
    IrNode **keep = xmalloc(sizeof *keep * (size_t)(t->np + 1));
    int nkeep = step_grad_kept(p, &t->gg, keep);
    t->grad_r = rt_exec_new(backend, g, prec, keep, nkeep, err, errlen);
    if (t->grad_r && t->device_grads && rt_dist_size() > 1) rt_exec_allreduce(t->grad_r, keep + 1, nkeep - 1);
    free(keep);
    RtPrec uprec = prec == RT_BF16 ? RT_BF16_MASTER : prec;   /* master weights and state in float32 */
    if (t->grad_r) t->upd_r = rt_exec_new(backend, t->ug.g, uprec, t->ug.g->outputs, t->ug.g->noutputs, err, errlen);
    if (!t->grad_r || !t->upd_r) return -1;
    if (backend == RT_CPU_BACKEND && t->resident) share_memory(t);
    return 0;
}

/* The cpu backend in one process: each step's gradients and parameters stay where they
 * were computed; the other executor reads them there. The flags say whether all were
 * shared; if one was not, the step copies as before (a copy onto the same memory is
 * skipped, so the ones already shared cost nothing). */
static void share_memory(Trainer *t) {
    const StepUpdate *ug = &t->ug;
    const IrGraph *g = t->c->prog.graph;
    bool ok = true;
    for (int i = 0; i < t->np && ok; i++)
        ok = ug->out[i] < 0 || rt_exec_share(t->upd_r, ug->grad[i], t->grad_r, g->outputs[t->gg.grad_out[i]]);
    t->device_grads = ok;
    ok = true;
    for (int i = 0; i < t->np && ok; i++)
        ok = ug->out[i] < 0 || rt_exec_share(t->grad_r, t->c->prog.params[i].node, t->upd_r, ug->param[i]);
    t->params_shared = ok;
}

int trainer_micro_batches(Trainer *t, int n) {
    t->micro = n > 1 ? n : 1;
    if (n <= 1 || !t->device_grads) return 0;   /* without device gradients the caller sums t->grad */
    if (t->backend == RT_CUDA_BACKEND) return -1;
    const StepUpdate *ug = &t->ug;   /* the cpu backend: the update executor's gradients are sums */
    bool ok = true;
    for (int i = 0; i < t->np && ok; i++) ok = ug->out[i] < 0 || rt_exec_own(t->upd_r, ug->grad[i]);
    t->device_grads = ok;
    return 0;
}

/* this batch's gradients into the update executor: the averaged sum over micro-batches
 * (cpu), or each copied (or already shared) where there is one batch a step */
static void hand_over_grads(Trainer *t) {
    const IrGraph *g = t->c->prog.graph;
    for (int i = 0; i < t->np; i++) {
        if (t->ug.out[i] < 0) continue;
        const IrNode *out = g->outputs[t->gg.grad_out[i]];
        if (t->micro <= 1) rt_exec_copy(t->upd_r, t->ug.grad[i], t->grad_r, out);
        else if (!rt_exec_accumulate(t->upd_r, t->ug.grad[i], t->grad_r, out, 1.0 / t->micro, t->micro_done == 0))
            abort();   /* trainer_micro_batches allows micro-batches on device gradients of the cpu backend only */
    }
    t->micro_done++;
    t->grads_in_update = true;
}

void trainer_free(Trainer *t) {
    if (!t->c) return;
    free(t->owner);
    free_like(t->param, t->np);
    free_like(t->grad, t->np);
    free_like(t->state[0], t->np);
    free_like(t->state[1], t->np);
    rt_exec_free(t->grad_r);
    rt_exec_free(t->upd_r);
    step_update_free(&t->ug);
    step_grad_free(&t->gg);
    memset(t, 0, sizeof *t);
}

void trainer_schedules(FeCompile *c, RtExec *e, int64_t step) {
    for (int i = 0; i < c->prog.nschedules; i++) {
        const char *name = c->prog.schedules[i].name;
        rt_exec_set_scalar(e, name, fe_schedule_value(c, name, step));
    }
}

void trainer_set_schedules(Trainer *t, int64_t step) { trainer_schedules(t->c, t->grad_r, step); }


int trainer_grad(Trainer *t, const int32_t *tokens, const int32_t *targets, double *loss, char *err, size_t errlen) {
    Program *p = &t->c->prog;
    if (t->resident && t->dev_stale) push_state(t);
    if (!t->resident)
        for (int i = 0; i < t->np; i++) rt_exec_set(t->grad_r, p->params[i].node, t->param[i]);
    rt_exec_set_i32(t->grad_r, t->tokens, tokens);
    rt_exec_set_i32(t->grad_r, t->targets, targets);
    const IrGraph *g = p->graph;
    int rc = rt_exec_run(t->grad_r, err, errlen);
    if (rc == 0) rt_exec_get(t->grad_r, g->outputs[t->gg.loss_out], loss);
    if (rc == 0 && t->device_grads) hand_over_grads(t);   /* device to device, averaged across ranks */
    else if (rc == 0)
        for (int i = 0; i < t->np; i++)
            if (t->gg.grad_out[i] >= 0) rt_exec_get(t->grad_r, g->outputs[t->gg.grad_out[i]], t->grad[i]);
    return rc;
}

static void set_scalar(void *ctx, const char *name, double v) { rt_exec_set_scalar((RtExec *)ctx, name, v); }

/* host parameters and state → the executors' leaves */
static void push_state(Trainer *t) {
    const StepUpdate *ug = &t->ug;
    for (int i = 0; i < t->np; i++) {
        rt_exec_set(t->grad_r, t->c->prog.params[i].node, t->param[i]);
        if (ug->out[i] < 0) continue;
        rt_exec_set(t->upd_r, ug->param[i], t->param[i]);
        for (int k = 0; k < ug->nstate[i]; k++) rt_exec_set(t->upd_r, ug->state[k][i], t->state[k][i]);
    }
    t->dev_stale = false;
}

/* every rank's host copies get the owners' Muon matrices and momenta (MPI, collective) */
static void gather_owned(Trainer *t) {
    for (int i = 0; i < t->np; i++)
        if (t->owner[i] >= 0) {
            size_t bytes = sizeof(double) * (size_t)fe_param_count(&t->c->prog.params[i]);
            rt_dist_bcast(t->param[i], (int64_t)bytes, t->owner[i]);
            rt_dist_bcast(t->state[0][i], (int64_t)bytes, t->owner[i]);
        }
}

void trainer_sync(Trainer *t) {
    if (!t->host_stale) return;
    const StepUpdate *ug = &t->ug;
    for (int i = 0; i < t->np; i++) {
        if (ug->out[i] < 0) continue;   /* another rank's Muon matrix: broadcast below */
        rt_exec_get(t->upd_r, ug->param[i], t->param[i]);
        for (int k = 0; k < ug->nstate[i]; k++) rt_exec_get(t->upd_r, ug->state[k][i], t->state[k][i]);
    }
    gather_owned(t);
    t->host_stale = false;
}

/* resident mode: the update's outputs become the next step's leaves, in float; with
 * several ranks each Muon matrix's owner broadcasts the gradient step's copy of it (bf16
 * on cuda) to the others, device to device */
static void keep_resident(Trainer *t) {
    const StepUpdate *ug = &t->ug;
    const IrNode *const *out = (const IrNode *const *)ug->g->outputs;
    for (int i = 0; i < t->np; i++) {
        if (ug->out[i] < 0) continue;
        rt_exec_copy(t->upd_r, ug->param[i], t->upd_r, out[ug->out[i]]);
        if (!t->params_shared)
            rt_exec_copy(t->grad_r, t->c->prog.params[i].node, t->upd_r,
                         out[ug->bf16_out[i] >= 0 ? ug->bf16_out[i] : ug->out[i]]);
        for (int k = 0; k < ug->nstate[i]; k++) rt_exec_copy(t->upd_r, ug->state[k][i], t->upd_r, out[ug->out[i] + 1 + k]);
    }
    for (int i = 0; i < t->np; i++)
        if (t->owner[i] >= 0) rt_exec_broadcast(t->grad_r, t->c->prog.params[i].node, t->owner[i]);
    t->host_stale = true;
}

int trainer_update(Trainer *t, int64_t step, char *err, size_t errlen) {
    StepUpdate *ug = &t->ug;
    if (t->resident && t->dev_stale) push_state(t);
    for (int i = 0; i < t->np; i++) {
        if (ug->out[i] < 0) continue;   /* another rank's */
        if (!t->grads_in_update) rt_exec_set(t->upd_r, ug->grad[i], t->grad[i]);
        if (t->resident) continue;
        rt_exec_set(t->upd_r, ug->param[i], t->param[i]);
        for (int k = 0; k < ug->nstate[i]; k++) rt_exec_set(t->upd_r, ug->state[k][i], t->state[k][i]);
    }
    step_update_scalars(t->c, step, t->adam_steps, set_scalar, t->upd_r);
    t->grads_in_update = false;
    t->micro_done = 0;
    if (rt_exec_run(t->upd_r, err, errlen) != 0) return -1;
    if (t->resident) {
        keep_resident(t);
        t->adam_steps++;
        return 0;
    }
    for (int i = 0; i < t->np; i++) {
        if (ug->out[i] < 0) continue;
        rt_exec_get(t->upd_r, ug->g->outputs[ug->out[i]], t->param[i]);
        for (int k = 0; k < ug->nstate[i]; k++) rt_exec_get(t->upd_r, ug->g->outputs[ug->out[i] + 1 + k], t->state[k][i]);
    }
    gather_owned(t);
    t->adam_steps++;
    return 0;
}

/* ---- checkpoints ------------------------------------------------------------------------- */

static const char *state_kind(const Trainer *t, int i, int k) {
    return t->ug.nstate[i] == 2 ? (k == 0 ? "adam_m" : "adam_v") : "muon_buf";
}

int trainer_save(Trainer *t, const char *path, const TrainerExtra *extra, int nextra, const StMeta *meta, int nmeta,
                 char *err, size_t errlen) {
    const Program *p = &t->c->prog;
    trainer_sync(t);
    StWriter *w = st_writer_new();
    StDtype dt = t->prec == RT_F64 ? ST_F64 : ST_F32;
    for (int i = 0; i < t->np; i++)
        st_writer_add_f64(w, p->params[i].name, dt, p->params[i].ndim, p->params[i].shape, t->param[i]);
    for (int i = 0; i < t->np; i++)
        for (int k = 0; k < t->ug.nstate[i]; k++) {
            char name[512];
            snprintf(name, sizeof name, "%s.%s", state_kind(t, i, k), p->params[i].name);
            st_writer_add_f64(w, name, dt, p->params[i].ndim, p->params[i].shape, t->state[k][i]);
        }
    int64_t steps = t->adam_steps;
    st_writer_add(w, "trainer.adam_steps", ST_I64, 0, NULL, &steps);
    for (int i = 0; i < nextra; i++) st_writer_add(w, extra[i].name, ST_I64, 0, NULL, &extra[i].value);
    st_writer_meta(w, "format", "gptc checkpoint: parameters, optimizer state (adam_m., adam_v., muon_buf.), trainer.*");
    for (int i = 0; i < nmeta; i++) st_writer_meta(w, meta[i].key, meta[i].value);
    int rc = st_writer_save(w, path, err, errlen);
    st_writer_free(w);
    return rc;
}

/* checkpoint: the file is a checkpoint, whose trainer.* and run.* bookkeeping a load passes
 * over unless asked for as extras */
static bool is_known(const Trainer *t, const char *name, const TrainerExtra *extra, int nextra, bool checkpoint) {
    const Program *p = &t->c->prog;
    const char *dot = strchr(name, '.');
    bool state = dot && (!strncmp(name, "adam_m.", 7) || !strncmp(name, "adam_v.", 7) || !strncmp(name, "muon_buf.", 9));
    const char *pname = state ? dot + 1 : name;
    for (int i = 0; i < t->np; i++)
        if (!strcmp(p->params[i].name, pname)) return true;
    if (!strcmp(name, "trainer.adam_steps")) return true;
    for (int i = 0; i < nextra; i++)
        if (!strcmp(extra[i].name, name)) return true;
    return checkpoint && (!strncmp(name, "trainer.", 8) || !strncmp(name, "run.", 4));
}

/* A scalar I64 tensor (the trainer's counters). */
static int read_i64(const StFile *f, const char *name, int64_t *v, char *err, size_t errlen) {
    const StTensor *t = st_find(f, name);
    if (!t || t->dtype != ST_I64 || t->numel != 1) {
        snprintf(err, errlen, "%s: '%s' must be an I64 scalar", f->path, name);
        return -1;
    }
    memcpy(v, t->data, sizeof *v);
    return 0;
}

/* Parameters are required; the optimizer state is all there or absent (a fresh optimizer);
 * extra scalars are read when present (their value is left unchanged otherwise). */
int trainer_load(Trainer *t, const char *path, bool with_state, TrainerExtra *extra, int nextra, char *err,
                    size_t errlen) {
    const Program *p = &t->c->prog;
    StFile f;
    if (st_open(&f, path, err, errlen) != 0) return -1;
    int rc = 0;
    bool has_state = st_find(&f, "trainer.adam_steps") != NULL;
    for (int i = 0; i < f.ntensors && rc == 0; i++)
        if (!is_known(t, f.tensors[i].name, extra, nextra, has_state)) {
            snprintf(err, errlen, "%s: tensor '%s' is not a parameter of this model", path, f.tensors[i].name);
            rc = -1;
        }
    for (int i = 0; i < t->np && rc == 0; i++)
        rc = st_read_f64(&f, p->params[i].name, p->params[i].ndim, p->params[i].shape, t->param[i], err, errlen);
    t->adam_steps = 0;
    for (int i = 0; i < t->np; i++)
        for (int k = 0; k < 2; k++) memset(t->state[k][i], 0, sizeof(double) * (size_t)fe_param_count(&p->params[i]));
    if (rc == 0 && has_state && with_state) {
        rc = read_i64(&f, "trainer.adam_steps", &t->adam_steps, err, errlen);
        for (int i = 0; i < t->np && rc == 0; i++)
            for (int k = 0; k < t->ug.nstate[i] && rc == 0; k++) {
                char name[512];
                snprintf(name, sizeof name, "%s.%s", state_kind(t, i, k), p->params[i].name);
                rc = st_read_f64(&f, name, p->params[i].ndim, p->params[i].shape, t->state[k][i], err, errlen);
            }
    }
    for (int i = 0; i < nextra && rc == 0; i++)
        if (st_find(&f, extra[i].name)) rc = read_i64(&f, extra[i].name, &extra[i].value, err, errlen);
    st_close(&f);
    t->dev_stale = true;
    t->host_stale = false;
    return rc;
}
