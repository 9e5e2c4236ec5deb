/* optim.c — the update graph: one optimizer step of every parameter as IR (spec S-9).
 *
 * Leaves of the graph, per parameter NAME: PARAM NAME, INPUT "grad.NAME" and the state
 * INPUTs ("adam_m.NAME", "adam_v.NAME" or "muon_buf.NAME"); per optimizer group G the
 * SCALARs "G.lr" (learning rate of this step), "G.bc1" = 1 − β1^t and "G.bc2" =
 * sqrt(1 − β2^t) (Adam) or "G.momentum" (Muon). Outputs: the new parameter and the new
 * state tensors, in that order per parameter.
 *
 * The gradient graph and the update graph are separate programs because what happens
 * between them — averaging gradients across ranks, accumulating micro-batches, feeding
 * given gradients — is the trainer's business, not the model's. */
#include "step/step.h"
#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static IrNode *bcast(IrGraph *g, IrNode *s, const IrNode *like) {
    return like->ndim ? ir_broadcast(g, s, like->ndim, like->shape) : s;
}
static IrNode *mul_s(IrGraph *g, IrNode *x, IrNode *s) { return ir_binary(g, IR_MUL, x, bcast(g, s, x)); }
static IrNode *mul_c(IrGraph *g, IrNode *x, double c) { return mul_s(g, x, ir_const(g, c)); }
static IrNode *add_c(IrGraph *g, IrNode *x, double c) { return ir_binary(g, IR_ADD, x, bcast(g, ir_const(g, c), x)); }

static IrNode *scalar(IrGraph *g, const char *group, const char *what) {
    char name[256];
    snprintf(name, sizeof name, "%s.%s", group, what);
    IrNode *n = ir_leaf_named(g, IR_SCALAR, name);
    return n ? n : ir_leaf(g, IR_SCALAR, name, IR_F32, 0, NULL);
}

static IrNode *state_leaf(IrGraph *g, const char *kind, const ParamDecl *d) {
    char name[512];
    snprintf(name, sizeof name, "%s.%s", kind, d->name);
    return ir_leaf(g, IR_INPUT, name, IR_F32, d->ndim, d->shape);
}

/* the group's learning rate times the parameter's lr_mul */
static IrNode *param_lr(IrGraph *g, const OptimGroup *grp, const ParamDecl *d) {
    IrNode *lr = scalar(g, grp->name, "lr");
    return d->lr_mul != 1 ? ir_binary(g, IR_MUL, lr, ir_const(g, d->lr_mul)) : lr;
}

/* decoupled weight decay: p (1 − lr·wd·wd_mul), or p itself when the group has no wd */
static IrNode *decayed(IrGraph *g, FeCompile *c, const OptimGroup *grp, const ParamDecl *d, IrNode *p, IrNode *lr) {
    double wd = fe_optim_arg(c, grp, "wd", 0, 0) * d->wd_mul;
    if (wd == 0) return p;
    return mul_s(g, p, ir_binary(g, IR_SUB, ir_const(g, 1), ir_binary(g, IR_MUL, lr, ir_const(g, wd))));
}

/* Adam (S-9.2): m = β1 m + (1−β1) g;  v = β2 v + (1−β2) g²;
 * p = p (1 − lr·wd·mult) − (lr / bc1) · m / (sqrt(v) / bc2 + ε): with `wd` the decay is
 * decoupled from the gradient (AdamW); without, the p factor is left out of the graph */
static void adam(IrGraph *g, const OptimGroup *grp, const ParamDecl *d, IrNode *p, IrNode *grad, IrNode *m,
                 IrNode *v, FeCompile *c, IrNode **out) {
    double b1 = fe_optim_arg(c, grp, "beta1", 0, 0.9), b2 = fe_optim_arg(c, grp, "beta2", 0, 0.999);
    double eps = fe_optim_arg(c, grp, "eps", 0, 1e-8);
    IrNode *m2 = ir_binary(g, IR_ADD, mul_c(g, m, b1), mul_c(g, grad, 1 - b1));
    IrNode *v2 = ir_binary(g, IR_ADD, mul_c(g, v, b2), mul_c(g, ir_unary(g, IR_SQUARE, grad), 1 - b2));
    IrNode *lr = param_lr(g, grp, d);
    IrNode *step = ir_binary(g, IR_DIV, lr, scalar(g, grp->name, "bc1"));
    IrNode *denom = add_c(g, ir_binary(g, IR_DIV, ir_unary(g, IR_SQRT, v2), bcast(g, scalar(g, grp->name, "bc2"), v2)), eps);
    IrNode *upd = mul_s(g, ir_binary(g, IR_DIV, m2, denom), step);
    out[0] = ir_binary(g, IR_SUB, decayed(g, c, grp, d, p, lr), upd);
    out[1] = m2;
    out[2] = v2;
}

static IrNode *transpose_last2(IrGraph *g, IrNode *x) {
    int perm[IR_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) perm[i] = i;
    perm[x->ndim - 2] = x->ndim - 1;
    perm[x->ndim - 1] = x->ndim - 2;
    return ir_permute(g, x, perm);
}

/* NS5 (S-9.3) on every matrix of the last two axes: X / (‖X‖_F + eps), then for each
 * (a, b, c): A = X Xᵀ, B = b A + c A A, X = a X + B X; tall matrices are transposed.
 * A is symmetric, so A A is written A Aᵀ: both products are then a matrix times its own
 * transpose, which a backend may compute as half a product (the cpu backend does). */
static IrNode *newton_schulz(IrGraph *g, const OptimGroup *grp, IrNode *x) {
    int nd = x->ndim;
    bool tall = x->shape[nd - 2] > x->shape[nd - 1];
    if (tall) x = transpose_last2(g, x);
    IrNode *sq = ir_reduce(g, IR_SUM, ir_reduce(g, IR_SUM, ir_unary(g, IR_SQUARE, x), nd - 1), nd - 2);
    IrNode *norm = add_c(g, ir_unary(g, IR_SQRT, sq), grp->ns_eps);
    x = ir_binary(g, IR_DIV, x, ir_broadcast(g, norm, nd, x->shape));
    for (int k = 0; k < grp->n_ns; k++) {
        const double *abc = grp->ns_coeffs[k];
        IrNode *A = ir_matmul_t(g, x, x, false, true);
        IrNode *B = ir_binary(g, IR_ADD, mul_c(g, A, abc[1]), mul_c(g, ir_matmul_t(g, A, A, false, true), abc[2]));
        x = ir_binary(g, IR_ADD, mul_c(g, x, abc[0]), ir_matmul_t(g, B, x, false, false));
    }
    return tall ? transpose_last2(g, x) : x;
}

/* Muon (S-9.3): buf = μ buf + (1−μ) g;  U = NS5(μ buf + (1−μ) g);
 * p = p (1 − lr·wd·mult) − lr·sqrt(max(1, rows/cols)) · U */
static void muon(IrGraph *g, const OptimGroup *grp, const ParamDecl *d, IrNode *p, IrNode *grad, IrNode *buf,
                 FeCompile *c, IrNode **out) {
    IrNode *mu = scalar(g, grp->name, "momentum");
    IrNode *one_minus = ir_binary(g, IR_SUB, ir_const(g, 1), mu);
    IrNode *buf2 = ir_binary(g, IR_ADD, mul_s(g, buf, mu), mul_s(g, grad, one_minus));
    IrNode *blend = ir_binary(g, IR_ADD, mul_s(g, buf2, mu), mul_s(g, grad, one_minus));
    IrNode *U = newton_schulz(g, grp, blend);
    double rows = (double)d->shape[d->ndim - 2], cols = (double)d->shape[d->ndim - 1];
    IrNode *lr = param_lr(g, grp, d);
    IrNode *lr_eff = ir_binary(g, IR_MUL, lr, ir_const(g, sqrt(fmax(1.0, rows / cols))));
    out[0] = ir_binary(g, IR_SUB, decayed(g, c, grp, d, p, lr), mul_s(g, U, lr_eff));
    out[1] = buf2;
}

int step_update_build(FeCompile *c, const bool *include, bool bf16_copies, StepUpdate *ug, char *err, size_t errlen) {
    Program *prog = &c->prog;
    memset(ug, 0, sizeof *ug);
    IrGraph *g = ug->g = ir_graph_new();
    int n = ug->nparams = prog->nparams;
    ug->param = xcalloc((size_t)n + 1, sizeof(IrNode *));
    ug->grad = xcalloc((size_t)n + 1, sizeof(IrNode *));
    ug->nstate = xcalloc((size_t)n + 1, sizeof(int));
    ug->out = xcalloc((size_t)n + 1, sizeof(int));
    ug->bf16_out = xcalloc((size_t)n + 1, sizeof(int));
    for (int k = 0; k < 2; k++) ug->state[k] = xcalloc((size_t)n + 1, sizeof(IrNode *));
    for (int i = 0; i < n; i++) {
        const ParamDecl *d = &prog->params[i];
        ug->out[i] = ug->bf16_out[i] = -1;
        if (!fe_param_trainable(d)) continue;   /* no state, no update */
        const OptimGroup *grp = &prog->optims[d->optim];
        ug->nstate[i] = grp->kind == OPT_ADAM ? 2 : 1;   /* also for another rank's: checkpoints */
        if (include && !include[i]) continue;
        g->cur_file = d->loc.src ? d->loc.src->name : NULL;
        g->cur_line = d->loc.line;
        IrNode *p = ug->param[i] = ir_leaf(g, IR_PARAM, d->name, d->dtype, d->ndim, d->shape);
        char gname[512];
        snprintf(gname, sizeof gname, "grad.%s", d->name);
        IrNode *grad = ug->grad[i] = ir_leaf(g, IR_INPUT, gname, IR_F32, d->ndim, d->shape);
        IrNode *out[3];
        if (grp->kind == OPT_ADAM) {
            ug->state[0][i] = state_leaf(g, "adam_m", d);
            ug->state[1][i] = state_leaf(g, "adam_v", d);
            ug->nstate[i] = 2;
            adam(g, grp, d, p, grad, ug->state[0][i], ug->state[1][i], c, out);
        } else {
            if (d->ndim < 2) {
                snprintf(err, errlen, "parameter '%s' has %d axes; muon needs at least 2", d->name, d->ndim);
                return -1;
            }
            ug->state[0][i] = state_leaf(g, "muon_buf", d);
            ug->nstate[i] = 1;
            muon(g, grp, d, p, grad, ug->state[0][i], c, out);
        }
        ug->out[i] = ir_add_output(g, out[0]);
        ir_output_replaces(g, ug->out[i], p);
        for (int k = 0; k < ug->nstate[i]; k++) ir_output_replaces(g, ir_add_output(g, out[1 + k]), ug->state[k][i]);
        if (bf16_copies && d->dtype == IR_BF16) ug->bf16_out[i] = ir_add_output(g, ir_cast(g, out[0], IR_BF16));
    }
    return ir_optimize(g, err, errlen);
}

void step_update_free(StepUpdate *ug) {
    ir_graph_free(ug->g);
    free(ug->param);
    free(ug->grad);
    free(ug->nstate);
    free(ug->out);
    free(ug->bf16_out);
    for (int k = 0; k < 2; k++) free(ug->state[k]);
    memset(ug, 0, sizeof *ug);
}

/* The scalars of step s (0-based; Adam's t = s + 1 counts steps taken since the state
 * was fresh: `adam_steps` before this one). */
void step_update_scalars(FeCompile *c, int64_t s, int64_t adam_steps, StepScalarSink set, void *ctx) {
    Program *p = &c->prog;
    for (int i = 0; i < p->noptims; i++) {
        const OptimGroup *grp = &p->optims[i];
        char name[256];
        snprintf(name, sizeof name, "%s.lr", grp->name);
        set(ctx, name, fe_optim_arg(c, grp, "lr", s, NAN));
        if (grp->kind == OPT_ADAM) {
            double t = (double)(adam_steps + 1);
            double b1 = fe_optim_arg(c, grp, "beta1", s, 0.9), b2 = fe_optim_arg(c, grp, "beta2", s, 0.999);
            snprintf(name, sizeof name, "%s.bc1", grp->name);
            set(ctx, name, 1 - pow(b1, t));
            snprintf(name, sizeof name, "%s.bc2", grp->name);
            set(ctx, name, sqrt(1 - pow(b2, t)));
        } else {
            snprintf(name, sizeof name, "%s.momentum", grp->name);
            set(ctx, name, fe_optim_arg(c, grp, "momentum", s, NAN));
        }
    }
}
