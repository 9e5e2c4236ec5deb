/* test_autodiff.c — every primitive's gradient rule against central finite differences
 * in float64 (the ref backend evaluates both), and the passes (CSE, DCE, verify). */
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

/* Compares autodiff with central differences for every element of every leaf. */
static void check_case(Case *c, IrNode *out, const char *what) {
    IrNode *loss = probe_loss(c, out);
    IrNode *grads[3];
    char err[256];
    CHECK(ir_autodiff(c->g, loss, c->x, c->nx, grads, err, sizeof err) == 0);
    CHECK(ir_verify(c->g, err, sizeof err) == 0);
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
    if (!(worst <= 1e-6)) fprintf(stderr, "%s: relative gradient error %.3g\n", what, worst);
    CHECK(worst <= 1e-6);
    for (int i = 0; i < c->nx; i++) free(c->val[i]);
    for (int i = 0; i < c->nextra; i++) free(c->ival[i]);
    free(c->wval);
    ir_graph_free(c->g);
}

static Case new_case(void) { return (Case){.g = ir_graph_new(), .window = 2}; }

TEST(unary_ops) {
    const IrOp ops[] = {IR_NEG, IR_RELU, IR_SQUARE, IR_SQRT, IR_RSQRT, IR_EXP, IR_LOG};
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

TEST(every_op_has_a_rule_or_is_a_backward_primitive) {
    for (int op = 0; op < IR_NOPS; op++) {
        bool backward = op == IR_ATTENTION_BWD || op == IR_CE_BWD;
        CHECK(ir_autodiff_has_rule((IrOp)op) == !backward);
    }
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
    RUN(binary_ops);
    RUN(reductions);
    RUN(movement);
    RUN(gather_and_scatter);
    RUN(matmul_all_transposes_and_batched);
    RUN(attention);
    RUN(cross_entropy);
    RUN(every_op_has_a_rule_or_is_a_backward_primitive);
    RUN(unused_leaf_gets_zero_gradient);
    RUN(cse_and_dce);
    return test_summary();
}
