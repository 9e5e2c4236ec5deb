/* autodiff.c — reverse-mode differentiation of a scalar output: one gradient rule per op,
 * applied in reverse topological (id) order; contributions to a node are summed.
 * The backward graph is appended to the same IrGraph, so forward and backward are one
 * program. Rules build only IR primitives; the fused primitives have their own backward
 * ops (ATTENTION → ATTENTION_BWD, CROSS_ENTROPY → CE_BWD). */
#include "ir/ir.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    IrGraph *g;
    IrNode **adj;      /* adj[id]: gradient of the output w.r.t. node id (NULL: none yet) */
    bool *needs;       /* needs[id]: the node depends on a differentiated leaf */
    int *uses;         /* uses[id]: the node's readers (outputs count) */
} Grad;

static IrNode *scale(IrGraph *g, IrNode *x, double s) {
    IrNode *c = ir_const(g, s);
    return ir_binary(g, IR_MUL, x, x->ndim ? ir_broadcast(g, c, x->ndim, x->shape) : c);
}

/* 1 - x */
static IrNode *one_minus(IrGraph *g, IrNode *x) {
    IrNode *c = ir_const(g, 1.0);
    return ir_binary(g, IR_SUB, x->ndim ? ir_broadcast(g, c, x->ndim, x->shape) : c, x);
}

static void accumulate(Grad *G, IrNode *x, IrNode *contribution) {
    if (!G->needs[x->id] || !contribution) return;
    IrNode **slot = &G->adj[x->id];
    *slot = *slot ? ir_binary(G->g, IR_ADD, *slot, contribution) : contribution;
}

/* Sum g over the axes that BROADCAST expanded, back to the shape of x. */
static IrNode *unbroadcast(IrGraph *g, IrNode *grad, const IrNode *x) {
    int lead = grad->ndim - x->ndim;
    for (int i = 0; i < grad->ndim; i++) {
        bool expanded = i < lead || (x->shape[i - lead] == 1 && grad->shape[i] != 1);
        if (expanded) grad = ir_reduce(g, IR_SUM, grad, i);
    }
    return ir_same_shape(grad, x) ? grad : ir_reshape(g, grad, x->ndim, x->shape);
}

static void matmul_rule(Grad *G, IrNode *n, IrNode *g) {
    IrNode *a = n->in[0], *b = n->in[1];
    bool tb = n->iattr[0], ta = n->iattr[1];
    IrNode *da, *db;
    if (!ta && !tb) {        /* C = A B        */
        da = ir_matmul_t(G->g, g, b, false, true);
        db = ir_matmul_t(G->g, a, g, true, false);
    } else if (!ta && tb) {  /* C = A Bᵀ       */
        da = ir_matmul_t(G->g, g, b, false, false);
        db = ir_matmul_t(G->g, g, a, true, false);
    } else if (ta && !tb) {  /* C = Aᵀ B       */
        da = ir_matmul_t(G->g, b, g, false, true);
        db = ir_matmul_t(G->g, a, g, false, false);
    } else {                 /* C = Aᵀ Bᵀ      */
        da = ir_matmul_t(G->g, b, g, true, true);
        db = ir_matmul_t(G->g, g, a, true, true);
    }
    if (G->needs[a->id]) accumulate(G, a, da);
    if (G->needs[b->id]) accumulate(G, b, db);
}

static void attention_rule(Grad *G, IrNode *n, IrNode *g) {
    IrNode *bwd = ir_attention_bwd(G->g, n, g);   /* [3, T, H, D] */
    for (int i = 0; i < 3; i++)
        if (G->needs[n->in[i]->id])
            accumulate(G, n->in[i], ir_reshape(G->g, ir_slice(G->g, bwd, 0, i, 1), 3, n->shape));
}

static void concat_rule(Grad *G, IrNode *n, IrNode *g) {
    int axis = (int)n->iattr[0];
    int64_t la = n->in[0]->shape[axis];
    accumulate(G, n->in[0], ir_slice(G->g, g, axis, 0, la));
    accumulate(G, n->in[1], ir_slice(G->g, g, axis, la, n->in[1]->shape[axis]));
}

/* The rule of op n, given g = d out / d n. Returns false if the op has none. The switch
 * lists every op (no default), so the compiler flags an op added without a rule. */
static bool apply_rule(Grad *G, IrNode *n, IrNode *g) {
    IrGraph *gr = G->g;
    IrNode *x = n->nin > 0 ? n->in[0] : NULL, *y = n->nin > 1 ? n->in[1] : NULL;
    switch (n->op) {
    case IR_INPUT: case IR_PARAM: case IR_SCALAR: case IR_CONST: case IR_ROPE_COS: case IR_ROPE_SIN: case IR_IOTA:
    case IR_STEP: case IR_EQ: case IR_NE: case IR_LT: case IR_LE: case IR_FLOORDIV: case IR_MOD:
        return true;   /* leaves, and piecewise-constant ops: no gradient flows */
    case IR_NEG: accumulate(G, x, ir_unary(gr, IR_NEG, g)); return true;
    case IR_RELU: accumulate(G, x, ir_binary(gr, IR_MUL, g, ir_unary(gr, IR_STEP, x))); return true;
    case IR_SQUARE:
        /* relu(h)², relu read by nothing else: d/dh = 2·relu(h) = 2·sqrt(n), exact for h ≤ 0
         * too. In terms of n, which the forward keeps anyway for its readers, h is not read
         * by the backward and can die in the forward (a [T, 4·dim] activation a layer) */
        if (x->op == IR_RELU && G->uses[x->id] == 1) {
            accumulate(G, x->in[0], scale(gr, ir_binary(gr, IR_MUL, g, ir_unary(gr, IR_SQRT, n)), 2));
            return true;
        }
        accumulate(G, x, scale(gr, ir_binary(gr, IR_MUL, g, x), 2));
        return true;
    case IR_SQRT: accumulate(G, x, ir_binary(gr, IR_DIV, g, scale(gr, n, 2))); return true;
    case IR_RSQRT:   /* d x^-1/2 = -1/2 x^-3/2 = -1/2 n³ */
        accumulate(G, x, scale(gr, ir_binary(gr, IR_MUL, g, ir_binary(gr, IR_MUL, ir_unary(gr, IR_SQUARE, n), n)), -0.5));
        return true;
    case IR_EXP: accumulate(G, x, ir_binary(gr, IR_MUL, g, n)); return true;
    /* the activations' derivatives in terms of their outputs where they can be: no exp of
     * the input, so nothing overflows (a sigmoid written as 1 / (1 + exp(-x)) would give
     * 0 · inf = NaN once |x| > 88 in float) */
    case IR_SIGMOID: accumulate(G, x, ir_binary(gr, IR_MUL, g, ir_binary(gr, IR_MUL, n, one_minus(gr, n)))); return true;
    case IR_TANH: accumulate(G, x, ir_binary(gr, IR_MUL, g, one_minus(gr, ir_unary(gr, IR_SQUARE, n)))); return true;
    case IR_SOFTPLUS: accumulate(G, x, ir_binary(gr, IR_MUL, g, ir_unary(gr, IR_SIGMOID, x))); return true;
    case IR_ERF:   /* 2/sqrt(pi) exp(-x²) */
        accumulate(G, x, scale(gr, ir_binary(gr, IR_MUL, g, ir_unary(gr, IR_EXP, ir_unary(gr, IR_NEG, ir_unary(gr, IR_SQUARE, x)))),
                                1.1283791670955126));
        return true;
    case IR_LOG: accumulate(G, x, ir_binary(gr, IR_DIV, g, x)); return true;
    case IR_CAST: if (ir_dtype_is_float(x->dtype)) accumulate(G, x, ir_cast(gr, g, x->dtype)); return true;
    case IR_ADD: accumulate(G, x, g); accumulate(G, y, g); return true;
    case IR_SUB: accumulate(G, x, g); accumulate(G, y, ir_unary(gr, IR_NEG, g)); return true;
    case IR_MUL:
        if (G->needs[x->id]) accumulate(G, x, ir_binary(gr, IR_MUL, g, y));
        if (G->needs[y->id]) accumulate(G, y, ir_binary(gr, IR_MUL, g, x));
        return true;
    case IR_DIV:   /* d(x/y)/dy = -(x/y)/y */
        if (G->needs[x->id]) accumulate(G, x, ir_binary(gr, IR_DIV, g, y));
        if (G->needs[y->id]) accumulate(G, y, ir_unary(gr, IR_NEG, ir_binary(gr, IR_DIV, ir_binary(gr, IR_MUL, g, n), y)));
        return true;
    case IR_SUM: accumulate(G, x, ir_broadcast(gr, g, x->ndim, x->shape)); return true;
    case IR_MAX: {
        /* shared evenly by the elements equal to the maximum: where they are copies of one
         * value (rows gathered by a repeated token) their gradients then sum to g, as the
         * finite difference of the copied value has it */
        int axis = (int)n->iattr[0];
        IrNode *hit = ir_binary(gr, IR_EQ, x, ir_broadcast(gr, n, x->ndim, x->shape));
        IrNode *share = ir_binary(gr, IR_DIV, g, ir_reduce(gr, IR_SUM, hit, axis));
        accumulate(G, x, ir_binary(gr, IR_MUL, ir_broadcast(gr, share, x->ndim, x->shape), hit));
        return true;
    }
    case IR_RESHAPE: accumulate(G, x, ir_reshape(gr, g, x->ndim, x->shape)); return true;
    case IR_PERMUTE: {
        int inv[IR_MAX_DIMS];
        for (int i = 0; i < n->ndim; i++) inv[n->iattr[i]] = i;
        accumulate(G, x, ir_permute(gr, g, inv));
        return true;
    }
    case IR_SLICE: accumulate(G, x, ir_pad(gr, g, (int)n->iattr[0], n->iattr[1], x->shape[n->iattr[0]])); return true;
    case IR_PAD: accumulate(G, x, ir_slice(gr, g, (int)n->iattr[0], n->iattr[1], x->shape[n->iattr[0]])); return true;
    case IR_CONCAT: concat_rule(G, n, g); return true;
    case IR_BROADCAST: accumulate(G, x, unbroadcast(gr, g, x)); return true;
    case IR_GATHER: accumulate(G, x, ir_scatter_add(gr, g, y, x->shape[0])); return true;
    case IR_SCATTER_ADD: accumulate(G, x, ir_gather(gr, g, y)); return true;
    case IR_MATMUL: matmul_rule(G, n, g); return true;
    case IR_ATTENTION: attention_rule(G, n, g); return true;
    case IR_CROSS_ENTROPY: accumulate(G, x, ir_ce_bwd(gr, x, y, g)); return true;
    case IR_ATTENTION_BWD: case IR_CE_BWD:
        return false;  /* backward primitives: no second derivatives */
    case IR_NOPS: break;
    }
    return false;
}

bool ir_autodiff_has_rule(IrOp op) {
    return op != IR_ATTENTION_BWD && op != IR_CE_BWD && op != IR_NOPS;
}

/* G->uses: each node's readers among the nodes that out and the outputs depend on (a node
 * CSE left behind reads its inputs but is no use of them), plus its outputs */
static void count_uses(IrGraph *g, const IrNode *out, Grad *G) {
    bool *live = xcalloc((size_t)g->n + 1, sizeof *live);
    live[out->id] = true;
    for (int i = 0; i < g->noutputs; i++) live[g->outputs[i]->id] = true;
    for (int id = g->n - 1; id >= 0; id--)
        for (int j = 0; live[id] && j < g->nodes[id]->nin; j++) {
            live[g->nodes[id]->in[j]->id] = true;
            G->uses[g->nodes[id]->in[j]->id]++;
        }
    for (int i = 0; i < g->noutputs; i++) G->uses[g->outputs[i]->id]++;
    free(live);
}

int ir_autodiff(IrGraph *g, IrNode *out, IrNode *const *wrt, int nwrt, IrNode **grads, char *err, size_t errlen) {
    int n0 = g->n;
    Grad G = {g, xcalloc((size_t)n0, sizeof(IrNode *)), xcalloc((size_t)n0, sizeof(bool)),
              xcalloc((size_t)n0, sizeof(int))};
    for (int i = 0; i < nwrt; i++) G.needs[wrt[i]->id] = true;
    for (int i = 0; i < n0; i++)
        for (int j = 0; j < g->nodes[i]->nin; j++) G.needs[i] |= G.needs[g->nodes[i]->in[j]->id];
    count_uses(g, out, &G);
    int rc = 0;
    G.adj[out->id] = ir_const(g, 1.0);
    for (int id = out->id; id >= 0 && rc == 0; id--) {
        IrNode *n = g->nodes[id];
        if (!G.adj[id] || !G.needs[id]) continue;
        g->cur_file = n->src_file;   /* backward nodes point at the forward line */
        g->cur_line = n->src_line;
        if (!apply_rule(&G, n, G.adj[id])) {
            snprintf(err, errlen, "op %s (node %%%d) has no gradient rule", ir_op_name(n->op), id);
            rc = -1;
        }
    }
    for (int i = 0; i < nwrt && rc == 0; i++) {
        IrNode *w = wrt[i], *d = G.adj[w->id];
        if (!d) d = w->ndim ? ir_broadcast(g, ir_const(g, 0), w->ndim, w->shape) : ir_const(g, 0);
        grads[i] = d;
    }
    free(G.adj);
    free(G.needs);
    free(G.uses);
    return rc;
}
