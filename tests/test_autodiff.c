/* test_autodiff.c — every primitive's gradient rule against central finite differences
 * in float64 (the ref backend evaluates both), and the passes (CSE, DCE, verify). The last
 * test holds the op table to it: every op autodiff claims a rule for was in a matching
 * case, every other op is a backward primitive that cannot be differentiated. */
#include <stdlib.h>

#include "ir/ir.h"
#include "runtime/ref.h"
#include "tests/test.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void) {   /* uniform in [-1, 1) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / (double)(1ull << 52) - 1.0;
}

typedef struct {
    IrGraph *g;
    IrNode *x[3];        /* differentiated leaves */
    double *val[3];
    int nx;
    IrNode *w;           /* random weights of the scalar probe <out, w> */
    double *wval;
    IrNode *extra[4];    /* fixed leaves (i32 inputs, scalars) and their values */
    int32_t *ival[4];
    int nextra;
    double window;
} Case;

static IrNode *leaf(Case *c, const char *name, int ndim, const int64_t *shape, double lo, double hi) {
    IrNode *n = ir_leaf(c->g, IR_PARAM, name, IR_F64, ndim, shape);
    double *v = malloc(sizeof(double) * (size_t)(ir_numel(n) + 1));
    for (int64_t i = 0; i < ir_numel(n); i++) v[i] = lo + (hi - lo) * (urand() + 1) / 2;
    c->x[c->nx] = n;
    c->val[c->nx++] = v;
    return n;
}

static IrNode *ints(Case *c, const char *name, int64_t n, int32_t hi, int32_t eot) {
    IrNode *t = ir_leaf(c->g, IR_INPUT, name, IR_I32, 1, &n);
    int32_t *v = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) v[i] = (int32_t)((urand() + 1) / 2 * hi) % hi;
    if (eot >= 0) v[0] = v[n / 3] = v[n / 3 + 1] = eot;
    c->extra[c->nextra] = t;
    c->ival[c->nextra++] = v;
    return t;
}

/* loss = sum(out * w) as a scalar; returns the loss node */
static IrNode *probe_loss(Case *c, IrNode *out) {
    c->w = ir_leaf(c->g, IR_PARAM, "w", IR_F64, out->ndim, out->shape);
    c->wval = malloc(sizeof(double) * (size_t)(ir_numel(out) + 1));
    for (int64_t i = 0; i < ir_numel(out); i++) c->wval[i] = urand();
    int64_t n = ir_numel(out);
    IrNode *p = ir_binary(c->g, IR_MUL, out, c->w);
    IrNode *s = ir_reduce(c->g, IR_SUM, ir_reshape(c->g, p, 1, &n), 0);
    return ir_reshape(c->g, s, 0, NULL);
}

static double eval_loss(Case *c, IrNode *loss, IrNode **grads, int ngrads, double **gout) {
    RtRef *r = rt_ref_new(c->g, RT_F64);
    for (int i = 0; i < c->nx; i++) rt_ref_set(r, c->x[i], c->val[i]);
    rt_ref_set(r, c->w, c->wval);
    for (int i = 0; i < c->nextra; i++) rt_ref_set_i32(r, c->extra[i], c->ival[i]);
    rt_ref_set_scalar(r, "window", c->window);
    IrNode *keep[8] = {loss};
    for (int i = 0; i < ngrads; i++) keep[1 + i] = grads[i];
    char err[256];
    double L = NAN;
    if (rt_ref_run(r, keep, 1 + ngrads, err, sizeof err) != 0) {
        fprintf(stderr, "run: %s\n", err);
        CHECK(!"run");
    } else {
        rt_ref_get(r, loss, &L);
        for (int i = 0; i < ngrads; i++) rt_ref_get(r, grads[i], gout[i]);
    }
    rt_ref_free(r);
    return L;
}

/* checked[op]: op's gradient rule ran in a case that matched finite differences */
static bool checked[IR_NOPS];

/* The ops whose rules a case exercises: the nodes out depends on that depend on a
 * differentiated leaf, and the fixed leaves out reads. */
static void expression_ops(const Case *c, const IrNode *out, bool *ops) {
    int n = out->id + 1;
    bool *from_x = calloc((size_t)n, 1), *to_out = calloc((size_t)n, 1);
    for (int i = 0; i < c->nx; i++) from_x[c->x[i]->id] = true;
    for (int id = 0; id < n; id++)
        for (int j = 0; j < c->g->nodes[id]->nin; j++) from_x[id] |= from_x[c->g->nodes[id]->in[j]->id];
    to_out[out->id] = true;
    for (int id = n - 1; id >= 0; id--)
        if (to_out[id])
            for (int j = 0; j < c->g->nodes[id]->nin; j++) to_out[c->g->nodes[id]->in[j]->id] = true;
    for (int id = 0; id < n; id++) {
        const IrNode *x = c->g->nodes[id];
        if (to_out[id] && (from_x[id] || x->nin == 0)) ops[x->op] = true;
    }
    free(from_x);
    free(to_out);
}

/* The largest difference between autodiff's gradients and central differences over every
 * element of every leaf, relative to the largest gradient of that leaf. */
static double fd_error(Case *c, IrNode *loss, IrNode **grads) {
    double *ad[3];
    for (int i = 0; i < c->nx; i++) ad[i] = malloc(sizeof(double) * (size_t)(ir_numel(c->x[i]) + 1));
    eval_loss(c, loss, grads, c->nx, ad);
    const double h = 1e-6;
    double worst = 0;
    for (int i = 0; i < c->nx; i++) {
        double scale = 1e-8;
        for (int64_t k = 0; k < ir_numel(c->x[i]); k++) scale = fmax(scale, fabs(ad[i][k]));
        for (int64_t k = 0; k < ir_numel(c->x[i]); k++) {
            double save = c->val[i][k];
            c->val[i][k] = save + h;
            double lp = eval_loss(c, loss, NULL, 0, NULL);
            c->val[i][k] = save - h;
            double lm = eval_loss(c, loss, NULL, 0, NULL);
            c->val[i][k] = save;
            worst = fmax(worst, fabs((lp - lm) / (2 * h) - ad[i][k]) / scale);
        }
        free(ad[i]);
    }
    return worst;
}

/* Compares autodiff with central differences; on a match, the ops of the expression count
 * as checked. Frees the case. */
static void check_case(Case *c, IrNode *out, const char *what) {
    bool ops[IR_NOPS] = {false};
    expression_ops(c, out, ops);
    int failed_before = test_failed_checks;
    IrNode *loss = probe_loss(c, out);
    IrNode *grads[3];
    char err[256];
    int rc = ir_autodiff(c->g, loss, c->x, c->nx, grads, err, sizeof err);
    if (rc != 0) fprintf(stderr, "%s: %s\n", what, err);
    CHECK(rc == 0);
    if (rc == 0) {
        CHECK(ir_verify(c->g, err, sizeof err) == 0);
        double worst = fd_error(c, loss, grads);
        if (!(worst <= 1e-6)) fprintf(stderr, "%s: relative gradient error %.3g\n", what, worst);
        CHECK(worst <= 1e-6);
    }
    if (test_failed_checks == failed_before)
        for (int op = 0; op < IR_NOPS; op++) checked[op] |= ops[op];
    for (int i = 0; i < c->nx; i++) free(c->val[i]);
    for (int i = 0; i < c->nextra; i++) free(c->ival[i]);
    free(c->wval);
    ir_graph_free(c->g);
}

static Case new_case(void) { return (Case){.g = ir_graph_new(), .window = 2}; }

TEST(unary_ops) {
    const IrOp ops[] = {IR_NEG, IR_RELU, IR_SQUARE, IR_SQRT, IR_RSQRT, IR_EXP, IR_LOG, IR_SIGMOID, IR_TANH, IR_SOFTPLUS, IR_ERF};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        Case c = new_case();
        int64_t s[2] = {3, 4};
        bool positive = ops[i] == IR_SQRT || ops[i] == IR_RSQRT || ops[i] == IR_LOG;
        IrNode *x = leaf(&c, "x", 2, s, positive ? 0.5 : -1, 2);
        if (ops[i] == IR_RELU) for (int k = 0; k < 12; k++) if (fabs(c.val[0][k]) < 0.05) c.val[0][k] = 0.3;
        check_case(&c, ir_unary(c.g, ops[i], x), ir_op_name(ops[i]));
    }
    Case c = new_case();
    int64_t s[1] = {5};
    check_case(&c, ir_cast(c.g, leaf(&c, "x", 1, s, -1, 1), IR_F32), "CAST");
}

/* relu(x)² with the relu read by nothing else has its own rule, in terms of the square
 * (2·sqrt(n)), so the backward never reads x or the relu; read twice, the ordinary rules */
TEST(relu_square) {
    Case c = new_case();
    int64_t s[2] = {3, 4};
    IrNode *x = leaf(&c, "x", 2, s, -1, 2);
    for (int k = 0; k < 12; k++) if (fabs(c.val[0][k]) < 0.05) c.val[0][k] = 0.3;
    check_case(&c, ir_unary(c.g, IR_SQUARE, ir_unary(c.g, IR_RELU, x)), "SQUARE(RELU)");
    c = new_case();   /* what the backward reads */
    x = leaf(&c, "x", 2, s, -1, 2);
    IrNode *r = ir_unary(c.g, IR_RELU, x);
    IrNode *loss = probe_loss(&c, ir_unary(c.g, IR_SQUARE, r));
    int n0 = c.g->n;
    IrNode *grad;
    char err[256];
    CHECK(ir_autodiff(c.g, loss, c.x, 1, &grad, err, sizeof err) == 0);
    bool reads_x = false;
    for (int id = n0; id < c.g->n; id++)
        for (int j = 0; j < c.g->nodes[id]->nin; j++) reads_x |= c.g->nodes[id]->in[j] == x || c.g->nodes[id]->in[j] == r;
    CHECK(!reads_x);
    free(c.val[0]);
    free(c.wval);
    ir_graph_free(c.g);
    c = new_case();
    x = leaf(&c, "x", 2, s, -1, 2);
    for (int k = 0; k < 12; k++) if (fabs(c.val[0][k]) < 0.05) c.val[0][k] = 0.3;
    r = ir_unary(c.g, IR_RELU, x);
    check_case(&c, ir_binary(c.g, IR_ADD, ir_unary(c.g, IR_SQUARE, r), r), "SQUARE(RELU) + RELU");
}

TEST(binary_ops) {
    const IrOp ops[] = {IR_ADD, IR_SUB, IR_MUL, IR_DIV};
    for (size_t i = 0; i < 4; i++) {
        Case c = new_case();
        int64_t s[2] = {2, 5};
        IrNode *x = leaf(&c, "x", 2, s, -1, 1), *y = leaf(&c, "y", 2, s, 0.5, 2);
        check_case(&c, ir_binary(c.g, ops[i], x, y), ir_op_name(ops[i]));
    }
    Case c = new_case();   /* the same leaf on both sides: contributions add up */
    int64_t s[1] = {4};
    IrNode *x = leaf(&c, "x", 1, s, 0.5, 2);
    check_case(&c, ir_binary(c.g, IR_DIV, ir_binary(c.g, IR_MUL, x, x), ir_unary(c.g, IR_EXP, x)), "x*x/exp(x)");
}

TEST(reductions) {
    for (int axis = 0; axis < 3; axis++) {
        Case c = new_case();
        int64_t s[3] = {2, 3, 4};
        check_case(&c, ir_reduce(c.g, IR_SUM, leaf(&c, "x", 3, s, -1, 1), axis), "SUM");
        c = new_case();
        check_case(&c, ir_reduce(c.g, IR_MAX, leaf(&c, "x", 3, s, -1, 1), axis), "MAX");
    }
}

TEST(movement) {
    int64_t s[3] = {2, 3, 4}, r[2] = {4, 6};
    Case c = new_case();
    check_case(&c, ir_reshape(c.g, leaf(&c, "x", 3, s, -1, 1), 2, r), "RESHAPE");
    c = new_case();
    int perm[3] = {2, 0, 1};
    check_case(&c, ir_permute(c.g, leaf(&c, "x", 3, s, -1, 1), perm), "PERMUTE");
    c = new_case();
    check_case(&c, ir_slice(c.g, leaf(&c, "x", 3, s, -1, 1), 2, 1, 2), "SLICE");
    c = new_case();
    check_case(&c, ir_pad(c.g, leaf(&c, "x", 3, s, -1, 1), 1, 2, 7), "PAD");
    c = new_case();
    int64_t s2[3] = {2, 5, 4};
    IrNode *a = leaf(&c, "a", 3, s, -1, 1), *b = leaf(&c, "b", 3, s2, -1, 1);
    check_case(&c, ir_concat(c.g, a, b, 1), "CONCAT");
    c = new_case();
    int64_t one[2] = {1, 4}, big[3] = {3, 2, 4};
    check_case(&c, ir_broadcast(c.g, leaf(&c, "x", 2, one, -1, 1), 3, big), "BROADCAST [1,4]→[3,2,4]");
    c = new_case();
    check_case(&c, ir_broadcast(c.g, leaf(&c, "x", 0, NULL, -1, 1), 3, big), "BROADCAST []→[3,2,4]");
}

TEST(gather_and_scatter) {
    Case c = new_case();
    int64_t t[2] = {7, 3};
    IrNode *table = leaf(&c, "table", 2, t, -1, 1);
    check_case(&c, ir_gather(c.g, table, ints(&c, "idx", 10, 7, -1)), "GATHER");
    c = new_case();
    int64_t r[2] = {10, 3};
    IrNode *rows = leaf(&c, "rows", 2, r, -1, 1);
    check_case(&c, ir_scatter_add(c.g, rows, ints(&c, "idx", 10, 7, -1), 7), "SCATTER_ADD");
}

/* the maximum of rows gathered by repeated indices: every copy of a table row ties, and
 * their shares of the gradient sum to the derivative of the row itself */
TEST(max_over_tied_copies) {
    Case c = new_case();
    int64_t t[2] = {2, 4};
    IrNode *rows = ir_gather(c.g, leaf(&c, "table", 2, t, -1, 1), ints(&c, "idx", 6, 2, -1));
    check_case(&c, ir_reduce(c.g, IR_MAX, rows, 0), "MAX over tied copies");
}

TEST(matmul_all_transposes_and_batched) {
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            Case c = new_case();
            int64_t sa[2] = {ta ? 4 : 3, ta ? 3 : 4}, sb[2] = {tb ? 5 : 4, tb ? 4 : 5};
            IrNode *a = leaf(&c, "a", 2, sa, -1, 1), *b = leaf(&c, "b", 2, sb, -1, 1);
            check_case(&c, ir_matmul_t(c.g, a, b, ta, tb), "MATMUL");
        }
    Case c = new_case();
    int64_t sa[3] = {2, 3, 4}, sb[3] = {2, 5, 4};
    IrNode *a = leaf(&c, "a", 3, sa, -1, 1), *b = leaf(&c, "b", 3, sb, -1, 1);
    check_case(&c, ir_matmul_t(c.g, a, b, false, true), "batched MATMUL");
}

TEST(attention) {
    for (int w = 0; w < 3; w++) {
        Case c = new_case();
        c.window = w;
        int64_t s[3] = {12, 2, 4};
        IrNode *q = leaf(&c, "q", 3, s, -1, 1), *k = leaf(&c, "k", 3, s, -1, 1), *v = leaf(&c, "v", 3, s, -1, 1);
        IrNode *tok = ints(&c, "tokens", 12, 9, 8);
        IrNode *win = ir_leaf(c.g, IR_SCALAR, "window", IR_F32, 0, NULL);
        check_case(&c, ir_attention(c.g, q, k, v, tok, win, 4, 8, 0.7), "ATTENTION");
    }
}

TEST(cross_entropy) {
    Case c = new_case();
    int64_t s[2] = {5, 7};
    IrNode *z = leaf(&c, "z", 2, s, -3, 3);
    check_case(&c, ir_cross_entropy(c.g, z, ints(&c, "y", 5, 7, -1)), "CROSS_ENTROPY");
}

/* Leaves no gradient flows into (constants, rotary tables) and the piecewise-constant ops
 * (zero derivative wherever they are continuous), each inside an expression whose
 * gradient is not zero. INPUT and SCALAR leaves are read by the cases above. */
TEST(constant_leaves_and_piecewise_constant_ops) {
    Case c = new_case();
    int64_t s[2] = {3, 4};
    IrNode *x = leaf(&c, "x", 2, s, -1, 1), *y = leaf(&c, "y", 2, s, -1, 1);
    IrNode *cs = ir_binary(c.g, IR_MUL, x, ir_rope(c.g, IR_ROPE_COS, 3, 8, 100));
    IrNode *sn = ir_binary(c.g, IR_MUL, y, ir_rope(c.g, IR_ROPE_SIN, 3, 8, 100));
    IrNode *k = ir_binary(c.g, IR_MUL, x, ir_broadcast(c.g, ir_const(c.g, 1.5), 2, s));
    IrNode *io = ir_binary(c.g, IR_MUL, y, ir_iota(c.g, IR_F32, 2, s, 1));
    check_case(&c, ir_binary(c.g, IR_ADD, ir_binary(c.g, IR_ADD, ir_binary(c.g, IR_ADD, cs, sn), k), io),
               "ROPE_COS, ROPE_SIN, CONST, IOTA");

    c = new_case();   /* x * step(x): the derivative is step(x); nothing flows through STEP */
    x = leaf(&c, "x", 2, s, -1, 1);
    for (int i = 0; i < 12; i++) if (fabs(c.val[0][i]) < 0.05) c.val[0][i] = -0.3;
    check_case(&c, ir_binary(c.g, IR_MUL, x, ir_unary(c.g, IR_STEP, x)), "x * STEP(x)");

    c = new_case();   /* x * (x == rowmax(x)): each row's maximum; nothing flows through EQ */
    x = leaf(&c, "x", 2, s, -1, 1);
    IrNode *m = ir_broadcast(c.g, ir_reduce(c.g, IR_MAX, x, 1), 2, s);
    check_case(&c, ir_binary(c.g, IR_MUL, x, ir_binary(c.g, IR_EQ, x, m)), "x * EQ(x, rowmax(x))");
}

/* The comparisons and i32 arithmetic pass no gradient: x and y times masks made from them,
 * where(c, a, b) as the front end builds it (a·m + b·(1 − m), m = c != 0), and i32 floor
 * division and modulo of x and y's values (negative ones included) read back as floats. */
TEST(comparisons_where_and_integer_ops) {
    Case c = new_case();
    int64_t s[2] = {3, 4};
    IrNode *x = leaf(&c, "x", 2, s, -1, 1), *y = leaf(&c, "y", 2, s, -1, 1);
    IrNode *lt = ir_binary(c.g, IR_MUL, x, ir_binary(c.g, IR_LT, x, y));
    IrNode *le = ir_binary(c.g, IR_MUL, y, ir_binary(c.g, IR_LE, y, x));
    IrNode *ne = ir_binary(c.g, IR_MUL, ir_binary(c.g, IR_MUL, x, y), ir_binary(c.g, IR_NE, x, y));
    check_case(&c, ir_binary(c.g, IR_ADD, ir_binary(c.g, IR_ADD, lt, le), ne), "x·LT + y·LE + xy·NE");

    c = new_case();   /* where(x < y, x², 3y) */
    x = leaf(&c, "x", 2, s, -1, 1), y = leaf(&c, "y", 2, s, -1, 1);
    IrNode *cond = ir_binary(c.g, IR_LT, x, y);
    IrNode *m = ir_binary(c.g, IR_NE, cond, ir_broadcast(c.g, ir_const(c.g, 0), 2, s));
    IrNode *rest = ir_binary(c.g, IR_SUB, ir_broadcast(c.g, ir_const(c.g, 1), 2, s), m);
    IrNode *three_y = ir_binary(c.g, IR_MUL, y, ir_broadcast(c.g, ir_const(c.g, 3), 2, s));
    IrNode *w = ir_binary(c.g, IR_ADD, ir_binary(c.g, IR_MUL, ir_unary(c.g, IR_SQUARE, x), m),
                          ir_binary(c.g, IR_MUL, three_y, rest));
    check_case(&c, w, "where(x < y, x², 3y)");

    c = new_case();   /* x · float(int(7x) % 3) + y · float(int(7y) // -2) */
    x = leaf(&c, "x", 2, s, -1, 1), y = leaf(&c, "y", 2, s, -1, 1);
    IrNode *ix = ir_cast(c.g, ir_binary(c.g, IR_MUL, x, ir_broadcast(c.g, ir_const(c.g, 7), 2, s)), IR_I32);
    IrNode *iy = ir_cast(c.g, ir_binary(c.g, IR_MUL, y, ir_broadcast(c.g, ir_const(c.g, 7), 2, s)), IR_I32);
    IrNode *mod = ir_cast(c.g, ir_binary(c.g, IR_MOD, ix, ir_broadcast(c.g, ir_const_i32(c.g, 3), 2, s)), IR_F64);
    IrNode *fdv = ir_cast(c.g, ir_binary(c.g, IR_FLOORDIV, iy, ir_broadcast(c.g, ir_const_i32(c.g, -2), 2, s)), IR_F64);
    check_case(&c, ir_binary(c.g, IR_ADD, ir_binary(c.g, IR_MUL, x, mod), ir_binary(c.g, IR_MUL, y, fdv)),
               "x·float(int(7x) % 3) + y·float(int(7y) // -2)");
}

/* Runs last. Every op of ops.def that ir_autodiff_has_rule() claims has a rule ran that
 * rule in a case above that matched finite differences (an op added to ops.def, or a
 * rule that returns no gradient, fails here). Every op it claims has none is a backward
 * primitive that autodiff itself emits, and differentiating through it is an error
 * naming the op. */
TEST(every_op_with_a_rule_matches_finite_differences) {
    IrGraph *g = ir_graph_new();
    int64_t s[3] = {12, 2, 4}, t = 12, rows[2] = {12, 8};
    IrNode *q = ir_leaf(g, IR_PARAM, "q", IR_F64, 3, s), *k = ir_leaf(g, IR_PARAM, "k", IR_F64, 3, s);
    IrNode *v = ir_leaf(g, IR_PARAM, "v", IR_F64, 3, s);
    IrNode *tok = ir_leaf(g, IR_INPUT, "tokens", IR_I32, 1, &t), *tgt = ir_leaf(g, IR_INPUT, "y", IR_I32, 1, &t);
    IrNode *win = ir_leaf(g, IR_SCALAR, "window", IR_F32, 0, NULL);
    IrNode *att = ir_attention(g, q, k, v, tok, win, 4, 8, 0.7);
    IrNode *ce = ir_cross_entropy(g, ir_reshape(g, att, 2, rows), tgt);
    IrNode *loss = ir_reshape(g, ir_reduce(g, IR_SUM, ce, 0), 0, NULL), *dq;
    char err[256];
    int n0 = g->n;
    CHECK(ir_autodiff(g, loss, &q, 1, &dq, err, sizeof err) == 0);
    int n1 = g->n;
    for (int op = 0; op < IR_NOPS; op++) {
        if (ir_autodiff_has_rule((IrOp)op)) {
            if (!checked[op]) fprintf(stderr, "%s: no finite-difference case runs its rule\n", ir_op_name((IrOp)op));
            CHECK(checked[op]);
            continue;
        }
        IrNode *bwd = NULL;
        for (int id = n0; id < n1 && !bwd; id++) if (g->nodes[id]->op == (IrOp)op) bwd = g->nodes[id];
        if (!bwd) fprintf(stderr, "%s: has no rule, but autodiff does not emit it\n", ir_op_name((IrOp)op));
        CHECK(bwd != NULL);
        if (!bwd) continue;
        int64_t n = ir_numel(bwd);
        IrNode *l2 = ir_reshape(g, ir_reduce(g, IR_SUM, ir_reshape(g, bwd, 1, &n), 0), 0, NULL), *d2;
        char want[64];
        snprintf(want, sizeof want, "op %s (node %%", ir_op_name((IrOp)op));
        err[0] = 0;
        CHECK(ir_autodiff(g, l2, &q, 1, &d2, err, sizeof err) == -1);
        CHECK(strncmp(err, want, strlen(want)) == 0 && strstr(err, ") has no gradient rule"));
    }
    ir_graph_free(g);
}

TEST(unused_leaf_gets_zero_gradient) {
    IrGraph *g = ir_graph_new();
    int64_t s[1] = {3};
    IrNode *x = ir_leaf(g, IR_PARAM, "x", IR_F64, 1, s), *u = ir_leaf(g, IR_PARAM, "u", IR_F64, 1, s);
    IrNode *loss = ir_reshape(g, ir_reduce(g, IR_SUM, ir_unary(g, IR_SQUARE, x), 0), 0, NULL);
    IrNode *wrt[2] = {x, u}, *grads[2];
    char err[128];
    CHECK(ir_autodiff(g, loss, wrt, 2, grads, err, sizeof err) == 0);
    RtRef *r = rt_ref_new(g, RT_F64);
    double xv[3] = {1, 2, 3}, uv[3] = {4, 5, 6}, gx[3], gu[3];
    rt_ref_set(r, x, xv);
    rt_ref_set(r, u, uv);
    CHECK(rt_ref_run(r, grads, 2, err, sizeof err) == 0);
    rt_ref_get(r, grads[0], gx);
    rt_ref_get(r, grads[1], gu);
    for (int i = 0; i < 3; i++) {
        CHECK_NEAR(gx[i], 2 * xv[i], 0);
        CHECK_NEAR(gu[i], 0, 0);
    }
    rt_ref_free(r);
    ir_graph_free(g);
}

TEST(cse_and_dce) {
    IrGraph *g = ir_graph_new();
    int64_t s[1] = {3};
    IrNode *x = ir_leaf(g, IR_PARAM, "x", IR_F64, 1, s);
    IrNode *a = ir_unary(g, IR_EXP, x), *b = ir_unary(g, IR_EXP, x);    /* equal */
    IrNode *dead = ir_unary(g, IR_LOG, x);
    (void)dead;
    IrNode *y = ir_binary(g, IR_ADD, a, b);
    ir_add_output(g, y);
    int before = g->n;
    CHECK(ir_cse(g) == 1);
    CHECK(y->in[0] == y->in[1]);
    CHECK(ir_dce(g) == 2);   /* the duplicate exp and the unused log */
    CHECK(g->n == before - 2);
    char err[128];
    CHECK(ir_verify(g, err, sizeof err) == 0);
    for (int i = 0; i < g->n; i++) CHECK(g->nodes[i]->id == i);
    ir_graph_free(g);
}

int main(void) {
    RUN(unary_ops);
    RUN(relu_square);
    RUN(binary_ops);
    RUN(reductions);
    RUN(movement);
    RUN(gather_and_scatter);
    RUN(max_over_tied_copies);
    RUN(matmul_all_transposes_and_batched);
    RUN(attention);
    RUN(cross_entropy);
    RUN(constant_leaves_and_piecewise_constant_ops);
    RUN(comparisons_where_and_integer_ops);
    RUN(unused_leaf_gets_zero_gradient);
    RUN(cse_and_dce);
    RUN(every_op_with_a_rule_matches_finite_differences);   /* after every case */
    return test_summary();
}
