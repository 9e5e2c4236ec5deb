/* test_cpu.c — the cpu backend (fused generated kernels) against the ref oracle in f32,
 * op family by op family on small graphs, each with its gradients (autodiff) so the
 * backward patterns fuse too; the fusion decisions the design relies on (an RMS norm is
 * one kernel, soft-capped cross-entropy reads the logits once forward); the memory plan
 * (no two roots alive at once share bytes); the CUDA dialect of every kernel here
 * compiles with NVRTC when the toolkit is installed.
 * Tolerance: max|cpu - ref| / max|ref| <= 2e-5 per tensor. */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "ir/ir.h"
#include "runtime/runtime.h"
#include "tests/test.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static double urand(double lo, double hi)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(float)(lo + (hi - lo) * (double)(rng >> 11) * 0x1.0p-53);
}

static IrNode *param(IrGraph *g, const char *name, int nd, const int64_t *shape)
{
    return ir_leaf(g, IR_PARAM, name, IR_F32, nd, shape);
}

/* loss = sum of every element of x times a fixed random weight: a scalar to differentiate */
static IrNode *weighted_sum(IrGraph *g, IrNode *x)
{
    IrNode *w = ir_leaf(g, IR_PARAM, "w_loss", IR_F32, x->ndim, x->shape);
    IrNode *y = ir_binary(g, IR_MUL, x, w);
    while (y->ndim > 0) {
        y = ir_reduce(g, IR_SUM, y, y->ndim - 1);
        int64_t shape[IR_MAX_DIMS];
        memcpy(shape, y->shape, sizeof shape);
        y = ir_reshape(g, y, y->ndim - 1, shape);
    }
    return y;
}

static RtStats cpu_stats;   /* the last compare's cpu executor */

/* Differentiates loss with respect to every float PARAM, runs the graph on ref and cpu
 * with the same random values (ints: inputs given), compares every output. */
static void compare(IrGraph *g, IrNode *loss, const int32_t *ints, double scalar)
{
    IrNode *wrt[32], *grads[32];
    int n = 0;
    for (int i = 0; i < g->n && n < 32; i++)
        if (g->nodes[i]->op == IR_PARAM) wrt[n++] = g->nodes[i];
    char err[512];
    ir_add_output(g, loss);
    CHECK(ir_autodiff(g, loss, wrt, n, grads, err, sizeof err) == 0);
    for (int i = 0; i < n; i++) ir_add_output(g, grads[i]);
    CHECK(ir_optimize(g, err, sizeof err) == 0);
    RtExec *x[2];
    x[0] = rt_exec_new(RT_REF_BACKEND, g, RT_F32, g->outputs, g->noutputs, err, sizeof err);
    x[1] = rt_exec_new(RT_CPU_BACKEND, g, RT_F32, g->outputs, g->noutputs, err, sizeof err);
    if (!x[1]) fprintf(stderr, "  cpu backend: %s\n", err);
    CHECK(x[0] && x[1]);
    if (!x[0] || !x[1]) { rt_exec_free(x[0]); rt_exec_free(x[1]); return; }
    for (int i = 0; i < g->n; i++) {
        const IrNode *l = g->nodes[i];
        int64_t k = ir_numel(l);
        if (l->op == IR_PARAM) {
            double *v = malloc(sizeof(double) * (size_t)k);
            for (int64_t j = 0; j < k; j++) v[j] = urand(-1.5, 1.5);
            for (int b = 0; b < 2; b++) rt_exec_set(x[b], l, v);
            free(v);
        } else if (l->op == IR_INPUT)
            for (int b = 0; b < 2; b++) rt_exec_set_i32(x[b], l, ints);
    }
    for (int b = 0; b < 2; b++) rt_exec_set_scalar(x[b], "window", scalar);
    for (int b = 0; b < 2; b++) {
        int rc = rt_exec_run(x[b], err, sizeof err);
        if (rc) fprintf(stderr, "  run: %s\n", err);
        CHECK(rc == 0);
    }
    for (int o = 0; o < g->noutputs; o++) {
        const IrNode *out = g->outputs[o];
        int64_t k = ir_numel(out);
        double *a = malloc(sizeof(double) * (size_t)k), *b = malloc(sizeof(double) * (size_t)k), num = 0, den = 1e-30;
        rt_exec_get(x[0], out, a);
        rt_exec_get(x[1], out, b);
        for (int64_t j = 0; j < k; j++) {
            if (!(fabs(a[j] - b[j]) <= num)) num = fabs(a[j] - b[j]);
            if (fabs(a[j]) > den) den = fabs(a[j]);
        }
        if (!(num / den <= 2e-5)) fprintf(stderr, "  output %d (%s %%%d): relative error %.3g\n", o, ir_op_name(out->op), out->id, num / den);
        CHECK(num / den <= 2e-5);
        free(a);
        free(b);
    }
    rt_exec_stats(x[1], &cpu_stats, false);
    rt_exec_free(x[0]);
    rt_exec_free(x[1]);
}

TEST(elementwise)
{
    IrGraph *g = ir_graph_new();
    const int64_t s[2] = {9, 37};
    IrNode *a = param(g, "a", 2, s), *b = param(g, "b", 2, s);
    IrNode *one = ir_broadcast(g, ir_const(g, 1.0), 2, s);
    IrNode *pos = ir_binary(g, IR_ADD, ir_unary(g, IR_SQUARE, a), one);
    IrNode *y = ir_binary(g, IR_MUL, ir_unary(g, IR_EXP, ir_unary(g, IR_NEG, a)), b);
    y = ir_binary(g, IR_ADD, y, ir_unary(g, IR_SQRT, pos));
    y = ir_binary(g, IR_SUB, y, ir_binary(g, IR_DIV, ir_unary(g, IR_LOG, pos), ir_binary(g, IR_ADD, pos, one)));
    y = ir_binary(g, IR_ADD, y, ir_binary(g, IR_MUL, ir_unary(g, IR_RELU, b), ir_unary(g, IR_RSQRT, pos)));
    compare(g, weighted_sum(g, y), NULL, 0);
    ir_graph_free(g);
}

/* y = x * rsqrt(mean(x^2, axis) + eps) over each axis of a 3-d tensor, and a MAX */
TEST(reductions_every_axis)
{
    for (int axis = 0; axis < 3; axis++) {
        IrGraph *g = ir_graph_new();
        const int64_t s[3] = {5, 6, 7};
        IrNode *x = param(g, "x", 3, s);
        IrNode *ms = ir_reduce(g, IR_SUM, ir_unary(g, IR_SQUARE, x), axis);
        ms = ir_binary(g, IR_MUL, ms, ir_broadcast(g, ir_const(g, 1.0 / (double)s[axis]), 3, ms->shape));
        ms = ir_binary(g, IR_ADD, ms, ir_broadcast(g, ir_const(g, 1e-6), 3, ms->shape));
        IrNode *y = ir_binary(g, IR_MUL, x, ir_broadcast(g, ir_unary(g, IR_RSQRT, ms), 3, s));
        IrNode *mx = ir_broadcast(g, ir_reduce(g, IR_MAX, x, axis), 3, s);
        y = ir_binary(g, IR_ADD, y, ir_binary(g, IR_MUL, mx, mx));
        compare(g, weighted_sum(g, y), NULL, 0);
        ir_graph_free(g);
    }
}

TEST(movement)
{
    IrGraph *g = ir_graph_new();
    const int64_t sa[3] = {4, 6, 8}, sb[2] = {8, 24};
    IrNode *a = param(g, "a", 3, sa), *b = param(g, "b", 2, sb);
    const int perm[3] = {2, 0, 1};
    IrNode *p = ir_permute(g, a, perm);                                 /* [8, 4, 6] */
    const int64_t r[3] = {8, 4, 6};
    IrNode *q = ir_reshape(g, b, 3, r);                                 /* [8, 4, 6] */
    IrNode *c = ir_concat(g, ir_slice(g, p, 2, 1, 3), ir_slice(g, q, 2, 0, 2), 2);   /* [8, 4, 5] */
    IrNode *d = ir_pad(g, ir_slice(g, q, 2, 2, 4), 2, 1, 5);             /* [8, 4, 5] */
    const int64_t bs[4] = {3, 8, 4, 5};
    IrNode *y = ir_broadcast(g, ir_binary(g, IR_MUL, c, d), 4, bs);
    compare(g, weighted_sum(g, y), NULL, 0);
    ir_graph_free(g);
}

TEST(gather_scatter)
{
    IrGraph *g = ir_graph_new();
    const int64_t st[2] = {11, 16}, si[1] = {20};
    IrNode *t = param(g, "table", 2, st), *idx = ir_leaf(g, IR_INPUT, "idx", IR_I32, 1, si);
    IrNode *y = ir_unary(g, IR_SQUARE, ir_gather(g, t, idx));
    int32_t ids[20];
    for (int i = 0; i < 20; i++) ids[i] = (i * 7 + 3) % 11;
    compare(g, weighted_sum(g, y), ids, 0);
    ir_graph_free(g);
}

TEST(matmul_shapes)
{
    IrGraph *g = ir_graph_new();
    const int64_t sa[3] = {3, 5, 7}, sb[3] = {3, 7, 4}, sc[2] = {6, 7}, sd[2] = {9, 7};
    IrNode *y = ir_matmul(g, param(g, "a", 3, sa), param(g, "b", 3, sb), false);      /* batched [3, 5, 4] */
    IrNode *z = ir_matmul(g, param(g, "c", 2, sc), param(g, "d", 2, sd), true);       /* c d^T [6, 9] */
    IrNode *l = ir_binary(g, IR_ADD, weighted_sum(g, y), weighted_sum(g, ir_unary(g, IR_SQUARE, z)));
    compare(g, l, NULL, 0);
    ir_graph_free(g);
}

/* products of a matrix with its own transpose (x xᵀ, xᵀ x, batched): the cpu backend
 * computes the upper triangle in bands and mirrors it; x x of a square x is an ordinary product */
TEST(gram_products)
{
    IrGraph *g = ir_graph_new();
    const int64_t sx[2] = {37, 11}, sb[3] = {3, 9, 5}, sq[2] = {6, 6};
    IrNode *x = param(g, "x", 2, sx), *b = param(g, "b", 3, sb), *q = param(g, "q", 2, sq);
    IrNode *xxt = ir_matmul_t(g, x, x, false, true), *xtx = ir_matmul_t(g, x, x, true, false);
    IrNode *bbt = ir_matmul_t(g, b, b, false, true), *qq = ir_matmul_t(g, q, q, false, false);
    IrNode *l = ir_binary(g, IR_ADD, ir_binary(g, IR_ADD, weighted_sum(g, xxt), weighted_sum(g, xtx)),
                          ir_binary(g, IR_ADD, weighted_sum(g, bbt), weighted_sum(g, qq)));
    compare(g, l, NULL, 0);
    ir_graph_free(g);
}

/* Six independent chains of small products and loops (as an optimizer's update of six
 * matrices): the cpu backend runs kernels of one level several at once, and gets what
 * ref gets. */
TEST(grouped_chains)
{
    IrGraph *g = ir_graph_new();
    const int64_t sx[2] = {24, 40};
    IrNode *l = NULL;
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", i);
        IrNode *x = param(g, name, 2, sx), *a = ir_matmul_t(g, x, x, false, true);
        IrNode *y = ir_unary(g, IR_TANH, ir_matmul_t(g, a, x, false, false));
        IrNode *s = weighted_sum(g, ir_binary(g, IR_MUL, y, x));
        l = l ? ir_binary(g, IR_ADD, l, s) : s;
    }
    int threads = omp_get_max_threads();
    omp_set_num_threads(2);
    compare(g, l, NULL, 0);
    omp_set_num_threads(threads);
    if (cpu_stats.grouped < 12) fprintf(stderr, "  %d of %d kernels grouped\n", cpu_stats.grouped, cpu_stats.kernels);
    CHECK(cpu_stats.grouped >= 12 && cpu_stats.groups >= 2);
    ir_graph_free(g);
}

/* attention, forward and backward: within one query tile (two documents, a window of
 * 2 blocks), and over several tiles (T = 200: documents and windows crossing tiles) */
TEST(attention)
{
    const int64_t Ts[2] = {40, 200}, blocks[2] = {4, 16}, windows[2] = {2, 3};
    for (int c = 0; c < 2; c++) {
        IrGraph *g = ir_graph_new();
        const int64_t T = Ts[c], s[3] = {T, 2, 8};
        IrNode *tok = ir_leaf(g, IR_INPUT, "tokens", IR_I32, 1, &T);
        IrNode *w = ir_leaf(g, IR_SCALAR, "window", IR_F32, 0, NULL);
        IrNode *y = ir_attention(g, param(g, "q", 3, s), param(g, "k", 3, s), param(g, "v", 3, s), tok, w, blocks[c],
                                 9, 0.3);
        int32_t ids[200];
        for (int i = 0; i < T; i++) ids[i] = i == 17 || i == 90 || i == 130 ? 9 : i % 7;
        compare(g, weighted_sum(g, y), ids, (double)windows[c]);
        ir_graph_free(g);
    }
}

/* the loss of the model: mean of soft-capped cross-entropy rows */
static IrNode *softcap_ce(IrGraph *g, IrNode *z, IrNode *tg, double cap)
{
    IrNode *c = ir_broadcast(g, ir_const(g, cap), z->ndim, z->shape);
    IrNode *den = ir_unary(g, IR_SQRT, ir_binary(g, IR_ADD, ir_unary(g, IR_SQUARE, z), ir_binary(g, IR_MUL, c, c)));
    IrNode *l = ir_binary(g, IR_DIV, ir_binary(g, IR_MUL, c, z), den);
    IrNode *rows = ir_cross_entropy(g, l, tg);
    IrNode *s = ir_reduce(g, IR_SUM, rows, 0);
    s = ir_binary(g, IR_MUL, s, ir_broadcast(g, ir_const(g, 1.0 / (double)z->shape[0]), 1, s->shape));
    return ir_reshape(g, s, 0, NULL);
}

TEST(softcap_cross_entropy)
{
    IrGraph *g = ir_graph_new();
    const int64_t s[2] = {12, 300}, st[1] = {12};
    IrNode *z = ir_binary(g, IR_MUL, param(g, "z", 2, s), ir_broadcast(g, ir_const(g, 20.0), 2, s));
    IrNode *tg = ir_leaf(g, IR_INPUT, "targets", IR_I32, 1, st);
    int32_t ids[12];
    for (int i = 0; i < 12; i++) ids[i] = (i * 37) % 300;
    compare(g, softcap_ce(g, z, tg, 15.0), ids, 0);
    ir_graph_free(g);
}

/* fusion: the soft-capped loss and its gradient read the logits in one kernel (the
 * backward's seed is a constant, so the forward's kernel takes the backward's roots too);
 * the memory plan never overlaps live roots */
TEST(fusion_and_plan)
{
    IrGraph *g = ir_graph_new();
    const int64_t s[2] = {16, 64}, st[1] = {16};
    IrNode *z = param(g, "z", 2, s), *tg = ir_leaf(g, IR_INPUT, "targets", IR_I32, 1, st);
    IrNode *loss = softcap_ce(g, z, tg, 15.0), *grad;
    char err[256];
    ir_add_output(g, loss);
    CHECK(ir_autodiff(g, loss, &z, 1, &grad, err, sizeof err) == 0);
    ir_add_output(g, grad);
    CHECK(ir_optimize(g, err, sizeof err) == 0);
    CgStep *st_ = cg_fuse(g, g->outputs, g->noutputs, CG_STORE_F32, err, sizeof err);
    CHECK(st_ != NULL);
    if (!st_) return;
    int readers = 0;
    for (int k = 0; k < st_->nk; k++)
        for (int j = 0; j < st_->k[k].nargs; j++) {
            int64_t off;
            readers += st_->k[k].kind == CG_LOOP && cg_storage(st_, st_->k[k].args[j], &off) == z->id;
        }
    CHECK(readers == 1);
    /* live ranges: [writer, last reader]; overlapping ranges must not share bytes */
    int n = g->n, *first = malloc(sizeof(int) * (size_t)n), *last = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) first[i] = last[i] = -1;
    for (int k = 0; k < st_->nk; k++) {
        const CgKernel *kk = &st_->k[k];
        for (int r = 0; r < kk->nroots; r++) first[kk->roots[r]] = last[kk->roots[r]] = k;
        for (int j = 0; j < kk->nargs; j++) {
            int64_t off;
            int b = cg_storage(st_, kk->args[j], &off);
            if (b >= 0 && st_->role[b] == CG_ROOT && last[b] < k) last[b] = k;
        }
    }
    for (int i = 0; i < g->noutputs; i++) last[g->outputs[i]->id] = st_->nk;
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++) {
            if (first[a] < 0 || first[b] < 0 || last[a] < first[b] || last[b] < first[a]) continue;
            int64_t a0 = st_->offset[a], a1 = a0 + ir_numel(g->nodes[a]) * 4;
            int64_t b0 = st_->offset[b], b1 = b0 + ir_numel(g->nodes[b]) * 4;
            CHECK(a1 <= b0 || b1 <= a0);
        }
    free(first);
    free(last);
    cg_step_free(st_);
    ir_graph_free(g);
}

/* The CUDA translation unit of a graph with every fused pattern compiles with NVRTC for
 * sm_90 (skipped, with a line saying so, where no CUDA toolkit is installed). */
/* outputs that replace leaves (an optimizer step's new values) are computed in them where
 * each thread reads the leaf only at its own point and nothing reads it later: here
 * new_p = p - 0.5·g and new_m = 0.9·m + g (the kernel also reading g, which no output
 * replaces) are; new_q = q + transpose(q) (q read at another point) and new_r = 2·r (r
 * read after, by a later kernel's column sums) are not, nor is new_t = t² + 1 when the same
 * kernel also computes transpose(t²) (t reached through a value another root reads at
 * another point). The cpu backend's results are the same either way, and after a run the
 * replaced leaves hold the new values. */
TEST(outputs_in_place)
{
    IrGraph *g = ir_graph_new();
    const int64_t s[2] = {8, 8};
    IrNode *p = param(g, "p", 2, s), *m = param(g, "m", 2, s), *gr = param(g, "g", 2, s);
    IrNode *q = param(g, "q", 2, s), *r = param(g, "r", 2, s);
    const int perm[2] = {1, 0};
    IrNode *half = ir_broadcast(g, ir_const(g, 0.5), 2, s), *nine = ir_broadcast(g, ir_const(g, 0.9), 2, s);
    IrNode *two = ir_broadcast(g, ir_const(g, 2.0), 2, s);
    IrNode *out[5] = {ir_binary(g, IR_SUB, p, ir_binary(g, IR_MUL, half, gr)),
                      ir_binary(g, IR_ADD, ir_binary(g, IR_MUL, nine, m), gr),
                      ir_binary(g, IR_ADD, q, ir_permute(g, q, perm)), ir_binary(g, IR_MUL, two, r), NULL};
    out[4] = ir_reduce(g, IR_SUM, ir_binary(g, IR_MUL, q, r), 0);
    IrNode *const replaced[5] = {p, m, q, r, NULL};
    for (int i = 0; i < 5; i++) ir_output_replaces(g, ir_add_output(g, out[i]), replaced[i]);
    IrNode *t = param(g, "t", 2, s), *t2 = ir_unary(g, IR_SQUARE, t);
    IrNode *tt[2] = {ir_binary(g, IR_ADD, t2, ir_broadcast(g, ir_const(g, 1.0), 2, s)), ir_permute(g, t2, perm)};
    ir_output_replaces(g, ir_add_output(g, tt[0]), t);
    ir_add_output(g, tt[1]);
    char err[256];
    CgStep *st = cg_fuse(g, g->outputs, g->noutputs, CG_STORE_F32, err, sizeof err);
    CHECK(st != NULL);
    if (!st) return;
    CHECK(st->alias[out[0]->id] == p->id && st->alias[out[1]->id] == m->id);
    CHECK(st->alias[out[2]->id] < 0 && st->alias[out[3]->id] < 0 && st->alias[out[4]->id] < 0);
    CHECK(st->alias[tt[0]->id] < 0);
    int64_t off;
    CHECK(cg_storage(st, out[0]->id, &off) == p->id);
    cg_step_free(st);
    RtExec *x = rt_exec_new(RT_CPU_BACKEND, g, RT_F32, g->outputs, g->noutputs, err, sizeof err);
    CHECK(x != NULL);
    if (!x) return;
    double v[6][64], got[64], want[5][64];
    IrNode *leaves[6] = {p, m, gr, q, r, t};
    for (int l = 0; l < 6; l++) {
        for (int i = 0; i < 64; i++) v[l][i] = urand(-1, 1);
        rt_exec_set(x, leaves[l], v[l]);
    }
    for (int i = 0; i < 64; i++) {
        want[0][i] = (double)((float)v[0][i] - 0.5f * (float)v[2][i]);
        want[1][i] = (double)(0.9f * (float)v[1][i] + (float)v[2][i]);
        want[2][i] = (double)((float)v[3][i] + (float)v[3][i % 8 * 8 + i / 8]);
        want[3][i] = (double)(2.0f * (float)v[4][i]);
    }
    for (int j = 0; j < 8; j++) {
        want[4][j] = 0;
        for (int i = 0; i < 8; i++) want[4][j] += (double)((float)v[3][i * 8 + j] * (float)v[4][i * 8 + j]);
    }
    CHECK(rt_exec_run(x, err, sizeof err) == 0);
    for (int o = 0; o < 5; o++) {
        rt_exec_get(x, out[o], got);
        double worst = 0;
        for (int i = 0; i < (o == 4 ? 8 : 64); i++) worst = fmax(worst, fabs(got[i] - want[o][i]));
        CHECK(worst <= 1e-5);
    }
    rt_exec_get(x, p, got);   /* the leaf holds the new value */
    CHECK(fabs(got[5] - want[0][5]) <= 1e-6);
    double worst = 0;
    rt_exec_get(x, tt[1], got);
    for (int i = 0; i < 64; i++) {
        float tv = (float)v[5][i % 8 * 8 + i / 8];
        worst = fmax(worst, fabs(got[i] - (double)(tv * tv)));
    }
    CHECK(worst <= 1e-6);
    rt_exec_free(x);
    ir_graph_free(g);
}

TEST(cuda_source_compiles)
{
    if (access("/usr/local/cuda/lib64/libnvrtc.so", R_OK) && !getenv("CUDA_HOME")) {
        printf("skip: cuda_source_compiles (no CUDA toolkit)\n");
        return;
    }
    IrGraph *g = ir_graph_new();
    const int64_t s[2] = {16, 64}, st[1] = {16};
    IrNode *z = param(g, "z", 2, s), *tg = ir_leaf(g, IR_INPUT, "targets", IR_I32, 1, st);
    IrNode *loss = softcap_ce(g, z, tg, 15.0), *grad;
    char err[4096], path[4200], *log = NULL;
    bool cached;
    ir_add_output(g, loss);
    CHECK(ir_autodiff(g, loss, &z, 1, &grad, err, sizeof err) == 0);
    ir_add_output(g, grad);
    CHECK(ir_optimize(g, err, sizeof err) == 0);
    CgStep *cs = cg_fuse(g, g->outputs, g->noutputs, CG_STORE_F32, err, sizeof err);
    char *src = cs ? cg_step_source(cs, CG_CUDA) : NULL;
    int rc = src ? cg_compile_cuda(src, "sm_90", path, sizeof path, &cached, &log, err, sizeof err) : -1;
    if (rc) fprintf(stderr, "  %s\n", err);
    CHECK(rc == 0);
    CHECK(!log || !strstr(log, "warning"));
    free(log);
    free(src);
    cg_step_free(cs);
    ir_graph_free(g);
}

int main(void)
{
    RUN(elementwise);
    RUN(reductions_every_axis);
    RUN(movement);
    RUN(gather_scatter);
    RUN(matmul_shapes);
    RUN(gram_products);
    RUN(grouped_chains);
    RUN(attention);
    RUN(softcap_cross_entropy);
    RUN(fusion_and_plan);
    RUN(outputs_in_place);
    RUN(cuda_source_compiles);
    return test_summary();
}
