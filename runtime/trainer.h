/* trainer.h — training steps on a backend (exec.h): gradients on a batch, the optimizer
 * update, checkpoints.
 * Ownership: an RtTrainer owns its graphs (besides the compiled model's, which it extends
 * with the backward pass), interpreters and host arrays; rt_trainer_free releases them.
 * The FeCompile must outlive it. */
#ifndef GPTC_RUNTIME_TRAINER_H
#define GPTC_RUNTIME_TRAINER_H

#include <stdbool.h>

#include "runtime/grad.h"
#include "runtime/optim.h"
#include "runtime/exec.h"

typedef struct {
    FeCompile *c;
    RtPrec prec;
    RtBackend backend;
    RtGradGraph gg;
    RtUpdateGraph ug;
    RtExec *grad_r, *upd_r;
    int np;
    double **param, **grad;   /* per parameter, host copies (double) */
    double **state[2];        /* optimizer state: Adam m, v; Muon buf in state[0] */
    int64_t adam_steps;       /* optimizer steps taken since the state was fresh */
    IrNode *tokens, *targets; /* the model's inputs */
    int *owner;               /* rank that updates parameter i (-1: every rank), spec S-9.5 */
    /* Resident mode (the cpu backend in one process): parameters and optimizer state stay
     * in the executors between steps, in float; the host copies above are refreshed only
     * when read (rt_trainer_sync) and pushed when written (load, a fresh init). */
    bool resident;
    bool host_stale;          /* the executors hold newer parameters and state than the host */
    bool dev_stale;           /* the host holds newer ones than the executors */
    /* Device gradients (the cuda backend): rt_trainer_grad hands the gradients to the
     * update executor device to device, averaged across ranks by NCCL inside the step;
     * t->grad is then not filled, and micro-batch accumulation is not available. With
     * several ranks each Muon matrix is updated by its owner, which broadcasts it with
     * NCCL; the host copies (checkpoints, validation) come from the owners by MPI, so
     * rt_trainer_sync is collective there. */
    bool device_grads;
    bool grads_in_update;     /* the update executor holds this step's gradients */
} RtTrainer;

/* A named I64 scalar stored in checkpoints beside the parameters ("trainer.step" …). */
typedef struct {
    const char *name;
    int64_t value;
} RtExtra;

int rt_trainer_init(RtTrainer *t, FeCompile *c, RtBackend backend, RtPrec prec, char *err, size_t errlen);
void rt_trainer_free(RtTrainer *t);
/* Loss and t->grad on one batch (T tokens and targets). */
int rt_trainer_grad(RtTrainer *t, const int32_t *tokens, const int32_t *targets, double window_long,
                    double window_short, double *loss, char *err, size_t errlen);
/* One optimizer step of t->param with t->grad, schedules at step index `step`. With
 * several ranks each Muon matrix is updated by its owner and broadcast with its momentum. */
int rt_trainer_update(RtTrainer *t, int64_t step, char *err, size_t errlen);
/* Brings t->param and t->state up to date (resident mode); a no-op otherwise. Call it
 * before reading them; after writing them directly (not through rt_trainer_load), set
 * t->dev_stale. */
void rt_trainer_sync(RtTrainer *t);
/* Parameters (model names), optimizer state (adam_m.NAME, adam_v.NAME, muon_buf.NAME),
 * trainer.adam_steps and the extras, written atomically. */
int rt_trainer_save(RtTrainer *t, const char *path, const RtExtra *extra, int nextra, char *err, size_t errlen);
/* Reads parameters, and the optimizer state when present and with_state; a fresh state
 * otherwise. Extras present in the file are read into extra[].value. */
int rt_trainer_load(RtTrainer *t, const char *path, bool with_state, RtExtra *extra, int nextra, char *err,
                    size_t errlen);

#endif
