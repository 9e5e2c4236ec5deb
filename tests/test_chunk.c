/* test_chunk.c — row chunking of large products (ir/chunk.c): a chunked graph computes what
 * the unchunked one does, value by value (ref backend in f64, ≤ 1e-13 relative; the cpu
 * backend's fused plan in f32 against ref), with chunks that do not divide the rows; its
 * fused plan needs less memory; products whose rows are not consumed row by row (by
 * another product, a reduction over the rows, the backward of a loss, an output) are left
 * alone, the model's training graph among them; and the validation graph of
 * models/gpt2m.gptc at the medium preset, planned as the cuda backend stores it (bf16),
 * before and after, for the figures. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "runtime/runtime.h"
#include "step/step.h"
#include "tests/test.h"

static IrNode *param(IrGraph *g, const char *name, int nd, const int64_t *shape)
{
    return ir_leaf(g, IR_PARAM, name, IR_F32, nd, shape);
}

static int count_op(const IrGraph *g, IrOp op)
{
    int n = 0;
    for (int i = 0; i < g->n; i++) n += g->nodes[i]->op == op;
    return n;
}

/* Values of every leaf, the same in any graph built alike: from the leaf's name. */
static void set_leaves(RtExec *x, const IrGraph *g, int32_t vocab)
{
    for (int i = 0; i < g->n; i++) {
        const IrNode *l = g->nodes[i];
        if (l->op != IR_PARAM && l->op != IR_INPUT) continue;
        uint64_t h = 1469598103934665603ull;
        for (const char *c = l->name; *c; c++) h = (h ^ (uint64_t)*c) * 0x100000001b3ull;
        int64_t n = ir_numel(l);
        if (l->op == IR_INPUT) {
            int32_t *v = malloc(sizeof(int32_t) * (size_t)n);
            for (int64_t k = 0; k < n; k++) v[k] = (int32_t)((h % 97 + (uint64_t)k * 31) % (uint64_t)vocab);
            rt_exec_set_i32(x, l, v);
            free(v);
        } else {
            double *v = malloc(sizeof(double) * (size_t)n);
            for (int64_t k = 0; k < n; k++) {
                h ^= h << 13, h ^= h >> 7, h ^= h << 17;
                v[k] = (double)(float)((double)(h >> 11) * 0x1.0p-53 * 3.0 - 1.5);
            }
            rt_exec_set(x, l, v);
            free(v);
        }
    }
}

/* every output of g on backend b (outs[o]: malloc'ed), or -1 */
static int run_graph(IrGraph *g, RtBackend b, RtPrec prec, int32_t vocab, double **outs, size_t *peak)
{
    char err[512];
    RtExec *x = rt_exec_new(b, g, prec, g->outputs, g->noutputs, err, sizeof err);
    if (!x) {
        fprintf(stderr, "  rt_exec_new: %s\n", err);
        return -1;
    }
    set_leaves(x, g, vocab);
    int rc = rt_exec_run(x, err, sizeof err);
    if (rc) fprintf(stderr, "  run: %s\n", err);
    for (int o = 0; rc == 0 && o < g->noutputs; o++) {
        outs[o] = malloc(sizeof(double) * (size_t)ir_numel(g->outputs[o]));
        rt_exec_get(x, g->outputs[o], outs[o]);
    }
    if (peak) *peak = rt_exec_peak_bytes(x);
    rt_exec_free(x);
    return rc;
}

/* max |a - b| over max |b| */
static double rel_diff(const double *a, const double *b, int64_t n)
{
    double num = 0, den = 1e-300;
    for (int64_t k = 0; k < n; k++) {
        if (!(fabs(a[k] - b[k]) <= num)) num = fabs(a[k] - b[k]);
        if (fabs(b[k]) > den) den = fabs(b[k]);
    }
    return num / den;
}

typedef void (*Build)(IrGraph *g);

/* Builds the graph twice, chunks one (max_rows, max_elems): `want` products chunked,
 * `mm` MATMULs after; outputs equal on ref f64 within 1e-13. */
static void same_values(Build build, int64_t max_rows, int64_t max_elems, int want, int mm, int32_t vocab)
{
    IrGraph *g0 = ir_graph_new(), *g1 = ir_graph_new();
    char err[512];
    build(g0);
    build(g1);
    CHECK(ir_optimize(g0, err, sizeof err) == 0 && ir_optimize(g1, err, sizeof err) == 0);
    CHECK(ir_chunk_rows(g1, max_rows, max_elems) == want);
    int rc = ir_verify(g1, err, sizeof err);
    if (rc) fprintf(stderr, "  verify: %s\n", err);
    CHECK(rc == 0);
    CHECK(ir_optimize(g1, err, sizeof err) == 0);
    CHECK(count_op(g1, IR_MATMUL) == mm);
    CHECK(g0->noutputs == g1->noutputs);
    double *a[8] = {0}, *b[8] = {0};
    if (rc == 0 && run_graph(g0, RT_REF_BACKEND, RT_F64, vocab, a, NULL) == 0 &&
        run_graph(g1, RT_REF_BACKEND, RT_F64, vocab, b, NULL) == 0) {
        for (int o = 0; o < g0->noutputs; o++) {
            CHECK(ir_same_shape(g0->outputs[o], g1->outputs[o]));
            double d = rel_diff(b[o], a[o], ir_numel(g0->outputs[o]));
            if (!(d <= 1e-13)) fprintf(stderr, "  output %d: relative difference %.3g\n", o, d);
            CHECK(d <= 1e-13);
        }
    } else {
        CHECK(!"both graphs run");
    }
    for (int o = 0; o < 8; o++) free(a[o]), free(b[o]);
    ir_graph_free(g0);
    ir_graph_free(g1);
}

/* ---- graphs ------------------------------------------------------------------------------ */

enum { M = 20, K = 24, N = 40, V = 50, MC = 37 };

/* p = x · wᵀ [M, N]; y = (p + bias[1, N]) · col[M, 1] + q[M, N]·c + exp(late), late made
 * after p; per row: sum(y²) and max(y) as [M, 1] → [M]; outputs: those rows, their total
 * and the max (read in the chain too) */
static void build_rows(IrGraph *g)
{
    const int64_t sx[2] = {M, K}, sw[2] = {N, K}, sp[2] = {M, N}, sb[2] = {1, N}, sc[2] = {M, 1}, sm[1] = {M};
    IrNode *p = ir_matmul(g, param(g, "x", 2, sx), param(g, "w", 2, sw), true);
    IrNode *y = ir_binary(g, IR_ADD, p, ir_broadcast(g, param(g, "bias", 2, sb), 2, sp));
    y = ir_binary(g, IR_MUL, y, ir_broadcast(g, param(g, "col", 2, sc), 2, sp));
    IrNode *quarter = ir_broadcast(g, ir_const(g, 0.25), 2, sp);
    y = ir_binary(g, IR_ADD, y, ir_binary(g, IR_MUL, param(g, "q", 2, sp), quarter));
    y = ir_binary(g, IR_ADD, y, ir_unary(g, IR_EXP, param(g, "late", 2, sp)));
    IrNode *s = ir_reduce(g, IR_SUM, ir_unary(g, IR_SQUARE, y), 1);
    IrNode *m = ir_reduce(g, IR_MAX, y, 1);
    IrNode *r = ir_reshape(g, ir_binary(g, IR_ADD, s, m), 1, sm);
    ir_add_output(g, r);
    ir_add_output(g, ir_reshape(g, ir_reduce(g, IR_SUM, r, 0), 0, NULL));
    ir_add_output(g, m);
}

/* the row-local movements: p [M, 40] → [M, 4, 10] → permuted [M, 10, 4] → a slice and a
 * pad along the last axis, concatenated along the middle one → sums → [M] */
static void build_moves(IrGraph *g)
{
    const int64_t sx[2] = {M, K}, sw[2] = {N, K}, s3[3] = {M, 4, 10}, sm[1] = {M};
    const int perm[3] = {0, 2, 1};
    IrNode *p = ir_matmul(g, param(g, "x", 2, sx), param(g, "w", 2, sw), true);
    IrNode *t = ir_permute(g, ir_reshape(g, p, 3, s3), perm);
    IrNode *a = ir_pad(g, ir_slice(g, t, 2, 1, 2), 2, 1, 4);
    IrNode *c = ir_concat(g, ir_unary(g, IR_EXP, a), t, 1);
    IrNode *r = ir_reduce(g, IR_SUM, ir_reduce(g, IR_MAX, c, 2), 1);
    ir_add_output(g, ir_reshape(g, r, 1, sm));
}

/* CE_BWD is row-wise too: the rows of its gradient, summed per row with weights */
static void build_ce_bwd(IrGraph *g)
{
    const int64_t sx[2] = {M, K}, sw[2] = {N, K}, sm[1] = {M}, sp[2] = {M, N};
    IrNode *p = ir_matmul(g, param(g, "x", 2, sx), param(g, "w", 2, sw), true);
    IrNode *d = ir_ce_bwd(g, p, ir_leaf(g, IR_INPUT, "targets", IR_I32, 1, sm), param(g, "drows", 1, sm));
    ir_add_output(g, ir_reduce(g, IR_SUM, ir_binary(g, IR_MUL, d, param(g, "u", 2, sp)), 1));
}

/* the soft-capped cross-entropy of logits x · wᵀ [MC, V] as the models write it */
static IrNode *softcap_ce(IrGraph *g, IrNode **p)
{
    const int64_t sx[2] = {MC, K}, sw[2] = {V, K}, sl[2] = {MC, V}, st[1] = {MC};
    *p = ir_matmul(g, param(g, "x", 2, sx), param(g, "w", 2, sw), true);
    IrNode *sq = ir_binary(g, IR_ADD, ir_unary(g, IR_SQUARE, *p), ir_broadcast(g, ir_const(g, 225), 2, sl));
    IrNode *z = ir_binary(g, IR_MUL, ir_binary(g, IR_MUL, *p, ir_unary(g, IR_RSQRT, sq)),
                          ir_broadcast(g, ir_const(g, 15), 2, sl));
    IrNode *ce = ir_cross_entropy(g, z, ir_leaf(g, IR_INPUT, "targets", IR_I32, 1, st));
    return ir_binary(g, IR_MUL, ir_reshape(g, ir_reduce(g, IR_SUM, ce, 0), 0, NULL), ir_const(g, 1.0 / MC));
}

static void build_ce(IrGraph *g)
{
    IrNode *p;
    ir_add_output(g, softcap_ce(g, &p));
}

/* ---- tests ------------------------------------------------------------------------------ */

TEST(row_local_chains)
{
    same_values(build_rows, 8, 0, 1, 3, V);     /* 8 + 8 + 4 rows */
    same_values(build_rows, 19, 0, 1, 2, V);    /* 19 + 1 */
    same_values(build_rows, 20, 0, 0, 1, V);    /* not more rows than the bound: left alone */
    same_values(build_moves, 6, 0, 1, 4, V);    /* 6 + 6 + 6 + 2 */
    same_values(build_ce_bwd, 7, 0, 1, 3, N);   /* 7 + 7 + 6 */
}

TEST(cross_entropy)
{
    same_values(build_ce, 10, 0, 1, 4, V);                /* 10 + 10 + 10 + 7 */
    same_values(build_ce, 1000, 10 * V, 1, 4, V);         /* the same through the element bound */
    same_values(build_ce, 1, 0, 1, MC, V);                /* a row a chunk */
}

/* the chunks of the product run one after the other in the fused plan: with the product
 * the largest tensor, the arena falls by about the chunk ratio; cpu (f32) agrees with ref */
TEST(fused_plan_memory)
{
    IrGraph *g[2];
    int64_t arena[2] = {0, 0};
    char err[512];
    for (int c = 0; c < 2; c++) {
        g[c] = ir_graph_new();
        build_ce(g[c]);
        CHECK(ir_optimize(g[c], err, sizeof err) == 0);
        if (c) CHECK(ir_chunk_rows(g[c], 10, 0) == 1 && ir_optimize(g[c], err, sizeof err) == 0);
        CgStep *s = cg_fuse(g[c], g[c]->outputs, g[c]->noutputs, CG_STORE_F32, err, sizeof err);
        CHECK(s != NULL);
        if (s) arena[c] = s->arena_bytes;
        int products = 0;
        for (int k = 0; s && k < s->nk; k++) products += s->k[k].kind == CG_MATMUL;
        CHECK(products == (c ? 4 : 1));
        cg_step_free(s);
    }
    printf("  arena: %lld bytes unchunked, %lld in chunks of 10 of %d rows\n", (long long)arena[0],
           (long long)arena[1], MC);
    CHECK(arena[1] > 0 && arena[1] * 3 < arena[0]);
    double *ref[1] = {0}, *cpu[1] = {0};
    size_t peak[2];
    CHECK(run_graph(g[1], RT_REF_BACKEND, RT_F64, V, ref, NULL) == 0);
    CHECK(run_graph(g[1], RT_CPU_BACKEND, RT_F32, V, cpu, &peak[1]) == 0);
    if (ref[0] && cpu[0]) CHECK_NEAR(cpu[0][0], ref[0][0], 1e-5 * fabs(ref[0][0]));
    free(ref[0]), free(cpu[0]);
    ir_graph_free(g[0]);
    ir_graph_free(g[1]);
}

/* p's rows also feed another product: p stays whole */
static void build_product_after(IrGraph *g)
{
    const int64_t sx[2] = {M, K}, sw[2] = {N, K}, sv[2] = {N, 3};
    IrNode *p = ir_matmul(g, param(g, "x", 2, sx), param(g, "w", 2, sw), true);
    IrNode *h = ir_unary(g, IR_RELU, p);
    IrNode *r = ir_reduce(g, IR_SUM, ir_matmul(g, h, param(g, "v", 2, sv), false), 1);
    ir_add_output(g, ir_reshape(g, ir_reduce(g, IR_SUM, r, 0), 0, NULL));
    ir_add_output(g, ir_reduce(g, IR_MAX, h, 1));   /* a row-local exit beside it */
}

/* p minus its mean over the rows: the chain reads a value made of every row */
static void build_rows_reduced(IrGraph *g)
{
    const int64_t sx[2] = {M, K}, sw[2] = {N, K}, sp[2] = {M, N};
    IrNode *p = ir_matmul(g, param(g, "x", 2, sx), param(g, "w", 2, sw), true);
    IrNode *mean = ir_broadcast(g, ir_reduce(g, IR_SUM, p, 0), 2, sp);
    ir_add_output(g, ir_reduce(g, IR_SUM, ir_binary(g, IR_SUB, p, mean), 1));
}

/* the per-row chain ends in a full-size output */
static void build_full_output(IrGraph *g)
{
    const int64_t sx[2] = {M, K}, sw[2] = {N, K};
    IrNode *p = ir_matmul(g, param(g, "x", 2, sx), param(g, "w", 2, sw), true);
    IrNode *e = ir_unary(g, IR_EXP, p);
    ir_add_output(g, ir_reduce(g, IR_SUM, e, 1));
    ir_add_output(g, e);
}

/* a transposed a and a batched product: their rows are no leading range of a */
static void build_other_products(IrGraph *g)
{
    const int64_t sa[2] = {K, M}, sw[2] = {K, N}, s3[3] = {2, M, K}, w3[3] = {2, K, N};
    IrNode *p = ir_matmul_t(g, param(g, "xt", 2, sa), param(g, "w", 2, sw), true, false);
    ir_add_output(g, ir_reduce(g, IR_SUM, p, 1));
    IrNode *q = ir_matmul(g, param(g, "x3", 3, s3), param(g, "w3", 3, w3), false);
    ir_add_output(g, ir_reduce(g, IR_SUM, q, 2));
}

/* the training graph: the logits also feed the backward (CE_BWD, then products that sum
 * over the rows), so the forward's chain ends in full-size tensors */
static void build_training(IrGraph *g)
{
    IrNode *p, *loss = softcap_ce(g, &p), *wrt[2] = {p->in[0], p->in[1]}, *grads[2];
    char err[256];
    ir_add_output(g, loss);
    CHECK(ir_autodiff(g, loss, wrt, 2, grads, err, sizeof err) == 0);
    ir_add_output(g, grads[0]);
    ir_add_output(g, grads[1]);
}

/* every chunked graph above runs on the cpu backend's fused plan as on ref (f32: 1e-5) */
TEST(cpu_fused_chunks)
{
    const Build builds[] = {build_rows, build_moves, build_ce_bwd};
    const int64_t rows[] = {8, 6, 7};
    const int32_t vocab[] = {V, V, N};
    for (int b = 0; b < 3; b++) {
        IrGraph *g = ir_graph_new();
        char err[512];
        builds[b](g);
        CHECK(ir_optimize(g, err, sizeof err) == 0 && ir_chunk_rows(g, rows[b], 0) == 1 &&
              ir_optimize(g, err, sizeof err) == 0);
        double *ref[8] = {0}, *cpu[8] = {0};
        CHECK(run_graph(g, RT_REF_BACKEND, RT_F64, vocab[b], ref, NULL) == 0);
        CHECK(run_graph(g, RT_CPU_BACKEND, RT_F32, vocab[b], cpu, NULL) == 0);
        for (int o = 0; o < g->noutputs; o++) {
            double d = ref[o] && cpu[o] ? rel_diff(cpu[o], ref[o], ir_numel(g->outputs[o])) : 1;
            if (!(d <= 1e-5)) fprintf(stderr, "  graph %d output %d: relative difference %.3g\n", b, o, d);
            CHECK(d <= 1e-5);
        }
        for (int o = 0; o < 8; o++) free(ref[o]), free(cpu[o]);
        ir_graph_free(g);
    }
}

TEST(not_row_local_left_alone)
{
    const Build builds[] = {build_product_after, build_rows_reduced, build_full_output, build_other_products,
                            build_training};
    const char *names[] = {"product after", "reduction over rows", "full-size output", "a^T, batched",
                           "training"};
    for (int b = 0; b < 5; b++) {
        IrGraph *g = ir_graph_new();
        char err[512];
        builds[b](g);
        CHECK(ir_optimize(g, err, sizeof err) == 0);
        int n = g->n, mm = count_op(g, IR_MATMUL);
        int chunked = ir_chunk_rows(g, 4, 0);
        if (chunked) fprintf(stderr, "  %s: %d products chunked\n", names[b], chunked);
        CHECK(chunked == 0 && g->n == n && count_op(g, IR_MATMUL) == mm);
        ir_graph_free(g);
    }
}

/* The validation graph of models/gpt2m.gptc at the medium preset (T = val_seq_len) in the
 * cuda backend's bf16 storage, without and with chunks of at most seq_len rows and 2^30
 * values, as the trainer makes them: the arena and the largest product. */
TEST(medium_validation_plan)
{
    double gb[2] = {0, 0};
    int64_t largest[2] = {0, 0};
    for (int c = 0; c < 2; c++) {
        FeCompile fc;
        FILE *quiet = fopen("/dev/null", "w");
        FeOptions o = {.path = "models/gpt2m.gptc", .preset = "medium", .seq_config = "val_seq_len"};
        int rc = fe_compile(&fc, &o, quiet);
        fclose(quiet);
        CHECK(rc == 0);
        if (rc) return;
        IrGraph *g = fc.prog.graph;
        char err[512];
        CHECK(ir_optimize(g, err, sizeof err) == 0);
        int64_t T = (int64_t)fe_config(&fc.prog, "seq_len")->value;
        if (c) CHECK(ir_chunk_rows(g, T, (int64_t)1 << 30) == 1 && ir_optimize(g, err, sizeof err) == 0);
        for (int i = 0; i < g->n; i++)
            if (g->nodes[i]->op == IR_MATMUL && ir_numel(g->nodes[i]) > largest[c])
                largest[c] = ir_numel(g->nodes[i]);
        CgStep *s = cg_fuse(g, g->outputs, 1, CG_STORE_BF16, err, sizeof err);
        CHECK(s != NULL);
        if (s) gb[c] = (double)s->arena_bytes / 1e9;
        cg_step_free(s);
        fe_free(&fc);
    }
    printf("  medium validation, bf16 arena: %.2f GB whole, %.2f GB in chunks; largest product %lld → %lld "
           "values\n", gb[0], gb[1], (long long)largest[0], (long long)largest[1]);
    CHECK(largest[1] <= (int64_t)1 << 30 && largest[0] > (int64_t)1 << 30);
    CHECK(gb[1] > 0 && gb[1] < gb[0] / 2);
}

/* models/gpt2m.gptc at the tiny preset (T = 256), chunks of 16 rows: its forward graph has
 * the logits chunked; its training graph, where they feed the backward, is refused by the
 * pass's own rule */
TEST(model_training_graph_left_alone)
{
    for (int train = 0; train < 2; train++) {
        FeCompile fc;
        FILE *quiet = fopen("/dev/null", "w");
        FeOptions o = {.path = "models/gpt2m.gptc", .preset = "tiny"};
        int rc = fe_compile(&fc, &o, quiet);
        fclose(quiet);
        CHECK(rc == 0);
        if (rc) return;
        StepGrad sg;
        char err[512];
        if (train) CHECK(step_grad_build(&fc.prog, &sg, err, sizeof err) == 0);
        else CHECK(ir_optimize(fc.prog.graph, err, sizeof err) == 0);
        IrGraph *g = fc.prog.graph;
        int n = g->n, chunked = ir_chunk_rows(g, 16, 0);
        CHECK(chunked == !train && (chunked || g->n == n));
        if (train) step_grad_free(&sg);
        fe_free(&fc);
    }
}

int main(void)
{
    RUN(row_local_chains);
    RUN(cross_entropy);
    RUN(fused_plan_memory);
    RUN(cpu_fused_chunks);
    RUN(not_row_local_left_alone);
    RUN(model_training_graph_left_alone);
    RUN(medium_validation_plan);
    return test_summary();
}
