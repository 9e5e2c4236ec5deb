/* optim.h — the optimizer step as a graph (Adam and Muon, spec S-9), built from the
 * model's optim declarations. Learning rates and Muon's momentum are per-step SCALARs
 * evaluated from the schedules; β1, β2, ε, wd and the Newton–Schulz coefficients are
 * constants of the graph (their values at step 0).
 * Ownership: the RtUpdateGraph owns its graph and arrays; rt_update_free releases them. */
#ifndef GPTC_RUNTIME_OPTIM_H
#define GPTC_RUNTIME_OPTIM_H

#include "frontend/frontend.h"
#include "ir/ir.h"

typedef struct {
    IrGraph *g;
    int nparams;
    IrNode **param, **grad;   /* leaves, per parameter (as in Program.params) */
    IrNode **state[2];        /* state leaves: Adam m, v; Muon buf (state[1] NULL) */
    int *nstate;              /* 2 for Adam, 1 for Muon */
    int *out;                 /* output index of the new parameter; its states follow it */
} RtUpdateGraph;

/* include[i] false leaves parameter i out (its leaves and outputs are NULL / -1): a rank
 * updates only the Muon matrices it owns. include NULL: every parameter. */
int rt_update_build(FeCompile *c, const bool *include, RtUpdateGraph *ug, char *err, size_t errlen);
void rt_update_free(RtUpdateGraph *ug);

/* Calls set(ctx, name, value) for every SCALAR of step s ("G.lr", "G.bc1", "G.bc2",
 * "G.momentum"); adam_steps = Adam steps already taken (t = adam_steps + 1). */
typedef void (*RtScalarSink)(void *ctx, const char *name, double value);
void rt_update_scalars(FeCompile *c, int64_t s, int64_t adam_steps, RtScalarSink set, void *ctx);

#endif
