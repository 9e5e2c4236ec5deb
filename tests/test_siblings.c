/* test_siblings.c — ir_merge_siblings: products of one operand with adjacent pieces of
 * another become one product and a slice of it per product.
 *
 * On hand-built graphs, each built twice: with the pass (ir_optimize) and without it
 * (CSE and DCE alone), the values of every output, and of every gradient (autodiff runs
 * before the pass, as in the training step), agree on the ref backend in float64 to
 * 1e-15 of the largest; the merged product and its slices are where they must be. What
 * the pass must leave alone (pieces apart, overlapping, another a or K, b not transposed,
 * batches) it leaves alone. The merged graph fuses with the product's b a view of the
 * parameter (no copy), the slices read by loop kernels inlined, a slice that a library op
 * takes materialized; the cpu backend and the cuda backend on the CUDA emulator match ref
 * in float32 (max|x - ref| / max|ref| <= 2e-5, as test_cpu). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"
#include "ir/ir.h"
#include "runtime/ref.h"
#include "runtime/runtime.h"
#include "tests/test.h"

static IrNode *param(IrGraph *g, const char *name, int nd, const int64_t *shape)
{
    return ir_leaf(g, IR_PARAM, name, IR_F32, nd, shape);
}

/* w[i] of w [R, N, K] as [N, K]: how a model file writes one piece of a stacked weight */
static IrNode *piece(IrGraph *g, IrNode *w, int64_t i)
{
    IrNode *s = ir_slice(g, w, 0, i, 1);
    return ir_reshape(g, s, w->ndim - 1, w->shape + 1);
}

/* elements lo .. lo+n-1 of a flat w as the given shape */
static IrNode *flat_piece(IrGraph *g, IrNode *w, int64_t lo, int64_t n, int nd, const int64_t *shape)
{
    return ir_reshape(g, ir_slice(g, w, 0, lo, n), nd, shape);
}

static int count_op(const IrGraph *g, IrOp op)
{
    int k = 0;
    for (int i = 0; i < g->n; i++) k += g->nodes[i]->op == op;
    return k;
}

/* The product with output shape [..., M, n], or NULL. */
static IrNode *product_of_width(const IrGraph *g, int64_t n)
{
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i]->op == IR_MATMUL && g->nodes[i]->shape[g->nodes[i]->ndim - 1] == n) return g->nodes[i];
    return NULL;
}

/* Every float PARAM differentiated: the loss is the sum of every output times a fixed
 * random weight; outputs become [values…, loss, gradients…]. */
static void add_gradients(IrGraph *g)
{
    int nout = g->noutputs;
    IrNode *loss = NULL, *wrt[32], *grads[32];
    for (int o = 0; o < nout; o++) {
        IrNode *x = g->outputs[o];
        char name[32];
        snprintf(name, sizeof name, "w_loss%d", o);
        IrNode *y = ir_binary(g, IR_MUL, x, param(g, name, x->ndim, x->shape));
        while (y->ndim > 0) {
            y = ir_reduce(g, IR_SUM, y, y->ndim - 1);
            y = ir_reshape(g, y, y->ndim - 1, y->shape);
        }
        loss = loss ? ir_binary(g, IR_ADD, loss, y) : y;
    }
    int n = 0;
    for (int i = 0; i < g->n && n < 32; i++)
        if (g->nodes[i]->op == IR_PARAM) wrt[n++] = g->nodes[i];
    char err[256];
    CHECK(ir_autodiff(g, loss, wrt, n, grads, err, sizeof err) == 0);
    ir_add_output(g, loss);
    for (int i = 0; i < n; i++) ir_add_output(g, grads[i]);
}

/* A graph from build(); with gradients; with the pass (ir_optimize) or without it. */
static IrGraph *make(void (*build)(IrGraph *), bool grads, bool merge)
{
    IrGraph *g = ir_graph_new();
    build(g);
    if (grads) add_gradients(g);
    char err[256];
    if (merge) {
        CHECK(ir_optimize(g, err, sizeof err) == 0);
    } else {
        ir_cse(g);
        ir_dce(g);
        CHECK(ir_verify(g, err, sizeof err) == 0);
    }
    return g;
}

/* the same values for a leaf of a name in every graph */
static void leaf_values(const IrNode *l, double *v)
{
    uint64_t s = 0xcbf29ce484222325ull;
    for (const char *c = l->name; *c; c++) s = (s ^ (uint64_t)*c) * 0x100000001b3ull;
    for (int64_t j = 0; j < ir_numel(l); j++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        v[j] = -1.5 + 3.0 * (double)(s >> 11) * 0x1.0p-53;
    }
}

static const int32_t tokens[64] = {1, 2, 3, 9, 4, 5, 6, 7, 1, 2, 3, 4, 5, 9, 6, 7, 1, 2, 3, 4, 5,
                                   6, 7, 1, 2, 9, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5, 6, 7, 1, 2};

/* Every output of g on ref in prec, into out[o] (malloc'ed). */
static void run_ref(const IrGraph *g, RtPrec prec, double **out)
{
    RtRef *r = rt_ref_new(g, prec);
    for (int i = 0; i < g->n; i++) {
        const IrNode *l = g->nodes[i];
        if (l->op == IR_PARAM) {
            double *v = malloc(sizeof(double) * (size_t)ir_numel(l));
            leaf_values(l, v);
            rt_ref_set(r, l, v);
            free(v);
        } else if (l->op == IR_INPUT) {
            rt_ref_set_i32(r, l, tokens);
        }
    }
    rt_ref_set_scalar(r, "window", 2);
    char err[256];
    int rc = rt_ref_run(r, g->outputs, g->noutputs, err, sizeof err);
    if (rc) fprintf(stderr, "  ref: %s\n", err);
    CHECK(rc == 0);
    for (int o = 0; o < g->noutputs; o++) {
        out[o] = calloc((size_t)ir_numel(g->outputs[o]), sizeof(double));
        if (!rc) rt_ref_get(r, g->outputs[o], out[o]);
    }
    rt_ref_free(r);
}

/* max |a - b| / max |b| over n values */
static double rel_err(const double *a, const double *b, int64_t n)
{
    double num = 0, den = 1e-300;
    for (int64_t j = 0; j < n; j++) {
        if (!(fabs(a[j] - b[j]) <= num)) num = fabs(a[j] - b[j]);
        if (fabs(b[j]) > den) den = fabs(b[j]);
    }
    return num / den;
}

/* build() with and without the pass, with gradients: the pass removed `removed` products
 * and every output agrees in float64. Returns the merged graph (the caller frees it). */
static IrGraph *same_values(void (*build)(IrGraph *), int removed)
{
    IrGraph *a = make(build, true, false), *b = make(build, true, true);
    CHECK(count_op(a, IR_MATMUL) - count_op(b, IR_MATMUL) == removed);
    CHECK(a->noutputs == b->noutputs);
    double *va[64], *vb[64];
    if (a->noutputs != b->noutputs || a->noutputs > 64) return b;
    run_ref(a, RT_F64, va);
    run_ref(b, RT_F64, vb);
    for (int o = 0; o < a->noutputs; o++) {
        CHECK(ir_same_shape(a->outputs[o], b->outputs[o]));
        double e = rel_err(vb[o], va[o], ir_numel(a->outputs[o]));
        if (!(e <= 1e-15)) fprintf(stderr, "  output %d: relative difference %.3g\n", o, e);
        CHECK(e <= 1e-15);
        free(va[o]);
        free(vb[o]);
    }
    ir_graph_free(a);
    return b;
}

/* The siblings of the merged graph g: each output o < n is SLICE(p, last axis, start[o])
 * of the one product p of width `width`, which comes before all of them. */
static void check_slices(const IrGraph *g, int64_t width, int n, const int64_t *start)
{
    IrNode *p = product_of_width(g, width);
    CHECK(p != NULL);
    if (!p) return;
    for (int o = 0; o < n; o++) {
        const IrNode *s = g->outputs[o];
        CHECK(s->op == IR_SLICE && s->in[0] == p && s->iattr[0] == s->ndim - 1 && s->iattr[1] == start[o]);
        CHECK(p->id < s->id);
    }
}

/* ---- graphs ---- */

/* q, k, v = h w[i]ᵀ, w [4, 3, 6]; outputs q, k, v, q * k + v */
static void qkv(IrGraph *g, bool reverse)
{
    const int64_t sh[2] = {5, 6}, sw[3] = {4, 3, 6};
    IrNode *h = param(g, "h", 2, sh), *w = param(g, "w", 3, sw), *p[3];
    for (int j = 0; j < 3; j++) {
        int i = reverse ? 2 - j : j;
        p[i] = ir_matmul(g, h, piece(g, w, i), true);
    }
    for (int i = 0; i < 3; i++) ir_add_output(g, p[i]);
    ir_add_output(g, ir_binary(g, IR_ADD, ir_binary(g, IR_MUL, p[0], p[1]), p[2]));
}
static void qkv_in_order(IrGraph *g) { qkv(g, false); }
static void qkv_reversed(IrGraph *g) { qkv(g, true); }

/* a given transposed, pieces of 2, 5 and 1 rows of w [20, 6] taken in the order 5, 1, 2 */
static void uneven_a_transposed(IrGraph *g)
{
    const int64_t sh[2] = {6, 5}, sw[2] = {20, 6};
    IrNode *h = param(g, "h", 2, sh), *w = param(g, "w", 2, sw);
    IrNode *b = ir_matmul_t(g, h, ir_slice(g, w, 0, 4, 5), true, true);
    IrNode *c = ir_matmul_t(g, h, ir_slice(g, w, 0, 9, 1), true, true);
    IrNode *a = ir_matmul_t(g, h, ir_slice(g, w, 0, 2, 2), true, true);
    ir_add_output(g, a);
    ir_add_output(g, b);
    ir_add_output(g, c);
}

/* a batch axis of size 1: h [1, 5, 6] times w[i] [1, 3, 6] */
static void batch_of_one(IrGraph *g)
{
    const int64_t sh[3] = {1, 5, 6}, sw[3] = {4, 3, 6};
    IrNode *h = param(g, "h", 3, sh), *w = param(g, "w", 3, sw);
    for (int i = 1; i < 3; i++) ir_add_output(g, ir_matmul(g, h, ir_slice(g, w, 0, i, 1), true));
}

/* K = 1 with b not transposed: h [5, 1] times rows of 3 and 4 of a flat w */
static void outer_products(IrGraph *g)
{
    const int64_t sh[2] = {5, 1}, sw[1] = {10}, b0[2] = {1, 3}, b1[2] = {1, 4};
    IrNode *h = param(g, "h", 2, sh), *w = param(g, "w", 1, sw);
    ir_add_output(g, ir_matmul(g, h, flat_piece(g, w, 0, 3, 2, b0), false));
    ir_add_output(g, ir_matmul(g, h, flat_piece(g, w, 3, 4, 2, b1), false));
}

/* w[0], w[1] adjacent, w[3] apart: two merge, one stays */
static void run_then_gap(IrGraph *g)
{
    const int64_t sh[2] = {5, 6}, sw[3] = {4, 3, 6};
    IrNode *h = param(g, "h", 2, sh), *w = param(g, "w", 3, sw);
    ir_add_output(g, ir_matmul(g, h, piece(g, w, 0), true));
    ir_add_output(g, ir_matmul(g, h, piece(g, w, 1), true));
    ir_add_output(g, ir_matmul(g, h, piece(g, w, 3), true));
}

/* what must be left alone */
static void apart(IrGraph *g)
{
    const int64_t sh[2] = {5, 6}, sw[3] = {4, 3, 6};
    IrNode *h = param(g, "h", 2, sh), *w = param(g, "w", 3, sw);
    ir_add_output(g, ir_matmul(g, h, piece(g, w, 0), true));
    ir_add_output(g, ir_matmul(g, h, piece(g, w, 2), true));
}
/* rows of w [12, 6] (start, count): each range overlaps another, and those not
 * overlapping each other are adjacent */
static void rows_of_w(IrGraph *g, int n, const int64_t (*r)[2])
{
    const int64_t sh[2] = {5, 6}, sw[2] = {12, 6};
    IrNode *h = param(g, "h", 2, sh), *w = param(g, "w", 2, sw);
    for (int i = 0; i < n; i++) ir_add_output(g, ir_matmul(g, h, ir_slice(g, w, 0, r[i][0], r[i][1]), true));
}
static void overlapping(IrGraph *g)
{
    const int64_t r[3][2] = {{0, 3}, {2, 3}, {5, 3}};
    rows_of_w(g, 3, r);
}
static void overlapping_the_second(IrGraph *g)
{
    const int64_t r[3][2] = {{0, 3}, {3, 3}, {4, 3}};
    rows_of_w(g, 3, r);
}
static void inside_a_long_one(IrGraph *g)
{
    const int64_t r[4][2] = {{0, 10}, {3, 2}, {6, 2}, {8, 1}};
    rows_of_w(g, 4, r);
}
static void different_a(IrGraph *g)
{
    const int64_t sh[2] = {5, 6}, sw[3] = {4, 3, 6};
    IrNode *h1 = param(g, "h1", 2, sh), *h2 = param(g, "h2", 2, sh), *w = param(g, "w", 3, sw);
    ir_add_output(g, ir_matmul(g, h1, piece(g, w, 0), true));
    ir_add_output(g, ir_matmul(g, h2, piece(g, w, 1), true));
}
static void different_k(IrGraph *g)   /* adjacent ranges of 3 rows of 6, then of 4 */
{
    const int64_t s6[2] = {5, 6}, s4[2] = {5, 4}, sw[1] = {30}, b6[2] = {3, 6}, b4[2] = {3, 4};
    IrNode *h6 = param(g, "h6", 2, s6), *h4 = param(g, "h4", 2, s4), *w = param(g, "w", 1, sw);
    ir_add_output(g, ir_matmul(g, h6, flat_piece(g, w, 0, 18, 2, b6), true));
    ir_add_output(g, ir_matmul(g, h4, flat_piece(g, w, 18, 12, 2, b4), true));
}
static void different_a_transpose(IrGraph *g)
{
    const int64_t sh[2] = {6, 6}, sw[3] = {4, 3, 6};
    IrNode *h = param(g, "h", 2, sh), *w = param(g, "w", 3, sw);
    ir_add_output(g, ir_matmul_t(g, h, piece(g, w, 0), false, true));
    ir_add_output(g, ir_matmul_t(g, h, piece(g, w, 1), true, true));
}
static void b_not_transposed(IrGraph *g)   /* [2, 3] pieces: their union along N is no view */
{
    const int64_t sh[2] = {5, 2}, sw[1] = {12}, sb[2] = {2, 3};
    IrNode *h = param(g, "h", 2, sh), *w = param(g, "w", 1, sw);
    ir_add_output(g, ir_matmul(g, h, flat_piece(g, w, 0, 6, 2, sb), false));
    ir_add_output(g, ir_matmul(g, h, flat_piece(g, w, 6, 6, 2, sb), false));
}
static void batched(IrGraph *g)   /* [2, 3, 6] pieces: each holds both batches */
{
    const int64_t sh[3] = {2, 5, 6}, sw[4] = {4, 2, 3, 6};
    IrNode *h = param(g, "h", 3, sh), *w = param(g, "w", 4, sw);
    for (int i = 0; i < 2; i++) ir_add_output(g, ir_matmul(g, h, piece(g, w, i), true));
}
static void strided_pieces(IrGraph *g)   /* rows 0-1 and 2-3 of every w[i]: not contiguous */
{
    const int64_t sh[2] = {5, 6}, sw[3] = {2, 4, 6}, sb[2] = {4, 6};
    IrNode *h = param(g, "h", 2, sh), *w = param(g, "w", 3, sw);
    for (int i = 0; i < 2; i++) ir_add_output(g, ir_matmul(g, h, ir_reshape(g, ir_slice(g, w, 1, 2 * i, 2), 2, sb), true));
}

/* ---- tests ---- */

TEST(three_siblings_merge)
{
    IrGraph *g = same_values(qkv_in_order, 2);
    const int64_t start[3] = {0, 3, 6};
    check_slices(g, 9, 3, start);
    /* b of the product: w's first three pieces, as [9, 6], by moves over w alone */
    IrNode *p = product_of_width(g, 9);
    if (p) {
        const IrNode *b = p->in[1];
        CHECK(b->ndim == 2 && b->shape[0] == 9 && b->shape[1] == 6 && p->iattr[0] == 1);
        while (b->op == IR_RESHAPE || b->op == IR_SLICE) b = b->in[0];
        CHECK(b->op == IR_PARAM && !strcmp(b->name, "w"));
    }
    ir_graph_free(g);
}

TEST(siblings_in_reverse_order_merge)
{
    IrGraph *g = same_values(qkv_reversed, 2);
    const int64_t start[3] = {0, 3, 6};
    check_slices(g, 9, 3, start);
    ir_graph_free(g);
}

TEST(uneven_pieces_and_a_transposed_merge)
{
    IrGraph *g = same_values(uneven_a_transposed, 2);
    const int64_t start[3] = {0, 2, 7};
    check_slices(g, 8, 3, start);
    IrNode *p = product_of_width(g, 8);
    CHECK(p && p->iattr[1] == 1);
    ir_graph_free(g);
}

TEST(batch_of_one_and_outer_products_merge)
{
    IrGraph *g = same_values(batch_of_one, 1);
    const int64_t start[2] = {0, 3};
    check_slices(g, 6, 2, start);
    ir_graph_free(g);
    g = same_values(outer_products, 1);
    check_slices(g, 7, 2, start);
    ir_graph_free(g);
}

TEST(only_the_adjacent_run_merges)
{
    IrGraph *g = same_values(run_then_gap, 1);
    const int64_t start[2] = {0, 3};
    check_slices(g, 6, 2, start);
    CHECK(g->outputs[2]->op == IR_MATMUL);
    ir_graph_free(g);
}

TEST(left_alone)
{
    void (*cases[])(IrGraph *) = {apart, overlapping, overlapping_the_second, inside_a_long_one, different_a,
                                  different_k, different_a_transpose, b_not_transposed, batched, strided_pieces};
    const char *names[] = {"apart", "overlapping", "overlapping the second", "inside a long one", "different a",
                           "different K", "different a^T", "b not transposed", "batched", "strided pieces"};
    for (int c = 0; c < 10; c++) {
        IrGraph *g = ir_graph_new();
        cases[c](g);
        int n = g->n, mm = count_op(g, IR_MATMUL);
        int removed = ir_merge_siblings(g);
        if (removed || g->n != n || count_op(g, IR_MATMUL) != mm) fprintf(stderr, "  %s: changed\n", names[c]);
        CHECK(removed == 0 && g->n == n && count_op(g, IR_MATMUL) == mm);
        ir_graph_free(g);
    }
}

/* q, k, v of width 8 (2 heads of 4) from one weight [4, 8, 6]: q·k + v read by a loop,
 * q the left operand of another product, all three reshaped into attention */
static void attention_block(IrGraph *g)
{
    const int64_t T = 40, sh[2] = {T, 6}, sw[3] = {4, 8, 6}, su[2] = {5, 8}, s3[3] = {T, 2, 4};
    IrNode *h = param(g, "h", 2, sh), *w = param(g, "w", 3, sw), *u = param(g, "u", 2, su), *p[3];
    for (int i = 0; i < 3; i++) p[i] = ir_matmul(g, h, piece(g, w, i), true);
    IrNode *tok = ir_leaf(g, IR_INPUT, "tokens", IR_I32, 1, &T);
    IrNode *win = ir_leaf(g, IR_SCALAR, "window", IR_F32, 0, NULL);
    IrNode *r[3];
    for (int i = 0; i < 3; i++) r[i] = ir_reshape(g, p[i], 3, s3);
    ir_add_output(g, ir_attention(g, r[0], r[1], r[2], tok, win, 4, 9, 0.3));
    ir_add_output(g, ir_matmul(g, p[0], u, true));
    ir_add_output(g, ir_binary(g, IR_ADD, ir_binary(g, IR_MUL, p[0], p[1]), p[2]));
}

/* every output of g on backend b in f32 against ref f32 */
static void check_backend(const IrGraph *g, RtBackend be, const char *what)
{
    char err[512];
    RtExec *x = rt_exec_new(be, g, RT_F32, g->outputs, g->noutputs, err, sizeof err);
    if (!x) fprintf(stderr, "  %s: %s\n", what, err);
    CHECK(x != NULL);
    if (!x) return;
    for (int i = 0; i < g->n; i++) {
        const IrNode *l = g->nodes[i];
        if (l->op == IR_PARAM) {
            double *v = malloc(sizeof(double) * (size_t)ir_numel(l));
            leaf_values(l, v);
            rt_exec_set(x, l, v);
            free(v);
        } else if (l->op == IR_INPUT) {
            rt_exec_set_i32(x, l, tokens);
        }
    }
    rt_exec_set_scalar(x, "window", 2);
    int rc = rt_exec_run(x, err, sizeof err);
    if (rc) fprintf(stderr, "  %s: %s\n", what, err);
    CHECK(rc == 0);
    double *ref[64];
    run_ref(g, RT_F32, ref);
    for (int o = 0; o < g->noutputs && !rc; o++) {
        int64_t k = ir_numel(g->outputs[o]);
        double *v = malloc(sizeof(double) * (size_t)k);
        rt_exec_get(x, g->outputs[o], v);
        double e = rel_err(v, ref[o], k);
        if (!(e <= 2e-5)) fprintf(stderr, "  %s output %d: relative error %.3g\n", what, o, e);
        CHECK(e <= 2e-5);
        free(v);
    }
    for (int o = 0; o < g->noutputs; o++) free(ref[o]);
    rt_exec_free(x);
}

TEST(merged_product_fuses_and_runs)
{
    IrGraph *g = same_values(attention_block, 2);
    IrNode *p = product_of_width(g, 24);
    CHECK(p != NULL);
    char err[512];
    CgStep *s = p ? cg_fuse(g, g->outputs, g->noutputs, CG_STORE_F32, err, sizeof err) : NULL;
    CHECK(s != NULL);
    if (s) {
        int64_t off;
        /* b is w's memory itself; the slice a product reads as its a is stored, the
         * slices only loops read are not */
        CHECK(s->role[p->in[1]->id] == CG_VIEW && cg_storage(s, p->in[1]->id, &off) >= 0 && off == 0);
        const IrNode *z = g->outputs[1];
        CHECK(z->op == IR_MATMUL && z->in[0]->op == IR_SLICE && z->in[0]->in[0] == p);
        CHECK(s->role[z->in[0]->id] == CG_ROOT);
        const IrNode *y = g->outputs[2];   /* q * k + v */
        const IrNode *k = y->in[0]->in[1], *v = y->in[1];
        CHECK(k->op == IR_SLICE && v->op == IR_SLICE && s->role[k->id] == CG_INLINE && s->role[v->id] == CG_INLINE);
        int products = 0;   /* of h: the merged one alone */
        for (int i = 0; i < s->nk; i++) products += s->k[i].kind == CG_MATMUL && s->k[i].op->in[0] == p->in[0];
        CHECK(products == 1);
        cg_step_free(s);
    }
    check_backend(g, RT_CPU_BACKEND, "cpu");
    setenv("GPTC_CUDA_EMULATE", "1", 1);
    check_backend(g, RT_CUDA_BACKEND, "cuda (emulator)");
    ir_graph_free(g);
}

int main(void)
{
    RUN(three_siblings_merge);
    RUN(siblings_in_reverse_order_merge);
    RUN(uneven_pieces_and_a_transposed_merge);
    RUN(batch_of_one_and_outer_products_merge);
    RUN(only_the_adjacent_run_merges);
    RUN(left_alone);
    RUN(merged_product_fuses_and_runs);
    return test_summary();
}
