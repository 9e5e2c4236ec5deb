/* step.h — the training step as graphs, built from a checked model (frontend.h):
 *   the gradient graph — the model's forward graph, its backward pass (ir autodiff) and the
 *     IR passes; outputs the loss, one gradient per parameter and the probes;
 *   the update graph — one optimizer step of every parameter (Adam, Muon; spec S-9) as IR:
 *     learning rates and Muon's momentum are per-step SCALARs evaluated from the
 *     schedules; β1, β2, ε, wd and the Newton–Schulz coefficients are constants of the
 *     graph (their values at step 0).
 * The two are separate programs because what happens between them — averaging gradients
 * across ranks, accumulating micro-batches, feeding given gradients — is the trainer's.
 * Ownership: StepGrad and StepUpdate own their arrays (and StepUpdate its graph); the
 * *_free functions release them. */
#ifndef GPTC_STEP_H
#define GPTC_STEP_H

#include "frontend/frontend.h"
#include "ir/ir.h"

/* Output indices of the training graph: loss (0), one gradient per trainable parameter (-1
 * for a frozen one), one per probe. */
typedef struct {
    int loss_out;
    int *grad_out;
    int *probe_out;
} StepGrad;

/* Appends the backward pass to p->graph (gradients of every trainable parameter), optimizes
 * it and refreshes p->probes[].node. 0, or -1 with a message. */
int step_grad_build(Program *p, StepGrad *gg, char *err, size_t errlen);
/* keep[0] = the loss, then the gradients in parameter order (frozen ones have none); returns
 * their count. keep holds nparams + 1. */
int step_grad_kept(const Program *p, const StepGrad *gg, IrNode **keep);
void step_grad_free(StepGrad *gg);

/* The evaluation graph (the forward at T = val_seq_len) optimized as the trainer runs it:
 * its products read row by row in chunks of at most train_T rows and 2^30 values
 * (ir_chunk_rows; GPTC_EVAL_CHUNK=0 leaves them whole). 0, or -1 with a message. */
int step_eval_build(IrGraph *g, int64_t train_T, char *err, size_t errlen);

typedef struct {
    IrGraph *g;
    int nparams;
    IrNode **param, **grad;   /* leaves, per parameter (as in Program.params) */
    IrNode **state[2];        /* state leaves: Adam m, v; Muon buf (state[1] NULL) */
    int *nstate;              /* 2 for Adam, 1 for Muon, 0 for a frozen parameter */
    int *out;                 /* output index of the new parameter; its states follow it */
    int *bf16_out;            /* output index of the new parameter rounded to bf16, or -1 */
} StepUpdate;

/* A frozen parameter has no leaves and no outputs (NULL / -1). include[i] false leaves
 * parameter i out too (its leaves and outputs are NULL / -1): a rank
 * updates only the Muon matrices it owns. include NULL: every parameter. bf16_copies: each
 * parameter declared bf16 gets a second output, its new value rounded to bf16, which the
 * update's kernels write as they compute the new value (what a gradient step storing
 * weights in bf16 reads next; without, a conversion per parameter and step). */
int step_update_build(FeCompile *c, const bool *include, bool bf16_copies, StepUpdate *ug, char *err, size_t errlen);
void step_update_free(StepUpdate *ug);

/* Calls set(ctx, name, value) for every SCALAR of step s ("G.lr", "G.bc1", "G.bc2",
 * "G.momentum"); adam_steps = Adam steps already taken (t = adam_steps + 1). */
typedef void (*StepScalarSink)(void *ctx, const char *name, double value);
void step_update_scalars(FeCompile *c, int64_t s, int64_t adam_steps, StepScalarSink set, void *ctx);

#endif
