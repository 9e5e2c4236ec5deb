/* test_ref.c — the ref interpreter (runtime/ref.h): every op on small hand-built graphs
 * in float64 and float32, against hand-computed values or naive loops written here;
 * ATTENTION against rt_ref_attn_fwd/bwd directly; error paths; buffer freeing (live and
 * peak bytes); large tensors that take the OpenMP paths.
 *
 * Tolerances: max|got - want| / max(max|want|, 1e-300) <= 1e-14 in f64 and <= 1e-6 in
 * f32. Float inputs are made exactly representable in float, so f32 errors come from the
 * ops alone. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "runtime/ref.h"
#include "runtime/ref_kernels.h"
#include "tests/test.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double urand(double lo, double hi)          /* uniform, exactly a float */
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(float)(lo + (hi - lo) * (double)(rng >> 11) * 0x1.0p-53);
}

static double *rnd(int64_t n, double lo, double hi)
{
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) v[i] = urand(lo, hi);
    return v;
}

static double *dalloc(int64_t n) { return calloc((size_t)(n ? n : 1), sizeof(double)); }

static const int64_t S1[1] = {1};
static IrNode *param(IrGraph *g, const char *name, int nd, const int64_t *shape)
{
    return ir_leaf(g, IR_PARAM, name, IR_F32, nd, nd ? shape : S1);
}
static IrNode *ints(IrGraph *g, const char *name, int nd, const int64_t *shape)
{
    return ir_leaf(g, IR_INPUT, name, IR_I32, nd, shape);
}

/* a leaf and its value (double or int32) */
typedef struct { IrNode *leaf; const double *d; const int32_t *i; } Val;

static RtPrec precs[2] = {RT_F64, RT_F32};
static const char *prec_name(RtPrec p) { return p == RT_F64 ? "f64" : "f32"; }

/* Runs g in prec with the values vals, keeping keep[]; NULL (err filled) when it fails. */
static RtRef *run(IrGraph *g, RtPrec prec, const Val *vals, int nv, IrNode **keep, int nkeep,
                  char *err, size_t errlen)
{
    RtRef *r = rt_ref_new(g, prec);
    for (int i = 0; i < nv; i++) {
        if (vals[i].d) rt_ref_set(r, vals[i].leaf, vals[i].d);
        else rt_ref_set_i32(r, vals[i].leaf, vals[i].i);
    }
    if (rt_ref_run(r, keep, nkeep, err, errlen) != 0) {
        rt_ref_free(r);
        return NULL;
    }
    return r;
}

static double max_rel(const double *got, const double *want, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]);
        if (!(d <= num)) num = d;                    /* NaN sticks */
        if (fabs(want[i]) > den) den = fabs(want[i]);
        if (isnan(got[i]) != isnan(want[i])) num = INFINITY;
        if (isnan(got[i]) && isnan(want[i])) num = num > 0 ? num : 0;
    }
    return num / (den > 0 ? den : 1e-300);
}

static double tol_of(RtPrec p) { return p == RT_F64 ? 1e-14 : 1e-6; }

/* node n's value in r against want (numel n); reports the node on failure */
static void expect(RtRef *r, RtPrec prec, const IrNode *n, const double *want, const char *what)
{
    int64_t k = ir_numel(n);
    double *got = dalloc(k);
    rt_ref_get(r, n, got);
    double e = max_rel(got, want, k);
    if (!(e <= tol_of(prec))) {
        fprintf(stderr, "  %s (%s, %s %%%d): relative error %.3g\n", what, prec_name(prec),
                ir_op_name(n->op), n->id, e);
        for (int64_t i = 0; i < k && i < 12; i++) fprintf(stderr, "    [%lld] got %.17g want %.17g\n", (long long)i, got[i], want[i]);
    }
    CHECK(e <= tol_of(prec));
    free(got);
}

/* runs g in both precisions and checks outs[i] against wants[i] */
static void check_all(IrGraph *g, const Val *vals, int nv, IrNode **outs, const double *const *wants,
                      int nout, const char *what)
{
    for (int p = 0; p < 2; p++) {
        char err[256];
        RtRef *r = run(g, precs[p], vals, nv, outs, nout, err, sizeof err);
        if (!r) { fprintf(stderr, "  %s: run failed: %s\n", what, err); CHECK(!"run"); continue; }
        for (int i = 0; i < nout; i++) expect(r, precs[p], outs[i], wants[i], what);
        rt_ref_free(r);
    }
}

static int quiet;                                   /* 1: fails_with reports nothing */

/* runs g expecting failure in both precisions; 1 when the message contains every needle */
static int fails_with(IrGraph *g, const Val *vals, int nv, IrNode **keep, int nkeep,
                      const char *n1, const char *n2)
{
    int ok = 1;
    for (int p = 0; p < 2; p++) {
        char err[256] = "";
        RtRef *r = rt_ref_new(g, precs[p]);
        for (int i = 0; i < nv; i++) {
            if (vals[i].d) rt_ref_set(r, vals[i].leaf, vals[i].d);
            else rt_ref_set_i32(r, vals[i].leaf, vals[i].i);
        }
        size_t before = rt_ref_live_bytes(r);
        int rc = rt_ref_run(r, keep, nkeep, err, sizeof err);
        if (rc != -1 || !strstr(err, n1) || (n2 && !strstr(err, n2))) {
            if (!quiet) fprintf(stderr, "  rc %d, message \"%s\", expected \"%s\"%s%s\n", rc, err, n1, n2 ? " and " : "", n2 ? n2 : "");
            ok = 0;
        }
        if (rt_ref_live_bytes(r) != before) ok = 0;    /* nothing computed is left held */
        rt_ref_free(r);
    }
    return ok;
}

/* ---- leaves, elementwise, reductions ------------------------------------------------------ */

TEST(unary_ops)
{
    IrGraph *g = ir_graph_new();
    int64_t s[2] = {3, 4};
    IrNode *x = param(g, "x", 2, s), *p = param(g, "p", 2, s);
    const IrOp ops[] = {IR_NEG,  IR_RELU, IR_SQUARE,   IR_SQRT, IR_RSQRT, IR_EXP,
                        IR_LOG,  IR_STEP, IR_SIGMOID, IR_TANH, IR_SOFTPLUS, IR_ERF};
    enum { NOPS = sizeof ops / sizeof ops[0] };
    IrNode *outs[NOPS];
    double *want[NOPS];
    double *xv = rnd(12, -2, 2), *pv = rnd(12, 0.1, 3);
    xv[0] = 0.0;                                  /* relu(0) = 0, step(0) = 0 */
    for (int k = 0; k < NOPS; k++) {
        int pos = ops[k] == IR_SQRT || ops[k] == IR_RSQRT || ops[k] == IR_LOG;
        outs[k] = ir_unary(g, ops[k], pos ? p : x);
        want[k] = dalloc(12);
        for (int i = 0; i < 12; i++) {
            double v = pos ? pv[i] : xv[i], o = 0;
            switch (ops[k]) {
            case IR_NEG: o = -v; break;
            case IR_RELU: o = v > 0 ? v : 0; break;
            case IR_SQUARE: o = v * v; break;
            case IR_SQRT: o = sqrt(v); break;
            case IR_RSQRT: o = 1 / sqrt(v); break;
            case IR_EXP: o = exp(v); break;
            case IR_LOG: o = log(v); break;
            /* written otherwise than ref computes them */
            case IR_SIGMOID: o = 0.5 * (1 + tanh(v / 2)); break;
            case IR_TANH: o = (exp(2 * v) - 1) / (exp(2 * v) + 1); break;
            case IR_SOFTPLUS: o = log(1 + exp(v)); break;
            case IR_ERF: o = 1 - erfc(v); break;
            default: o = v > 0; break;
            }
            want[k][i] = o;
        }
    }
    Val vals[] = {{x, xv, NULL}, {p, pv, NULL}};
    check_all(g, vals, 2, outs, (const double *const *)want, NOPS, "unary");
    for (int k = 0; k < NOPS; k++) free(want[k]);
    free(xv);
    free(pv);
    ir_graph_free(g);
}

TEST(binary_ops)
{
    IrGraph *g = ir_graph_new();
    int64_t s[1] = {10};
    IrNode *a = param(g, "a", 1, s), *b = param(g, "b", 1, s);
    const IrOp ops[] = {IR_ADD, IR_SUB, IR_MUL, IR_DIV, IR_EQ};
    double *av = rnd(10, -2, 2), *bv = rnd(10, 0.5, 2);
    bv[3] = av[3], bv[7] = av[7];                 /* EQ hits */
    av[5] = 0.0;
    IrNode *outs[5];
    double *want[5];
    for (int k = 0; k < 5; k++) {
        outs[k] = ir_binary(g, ops[k], a, b);
        want[k] = dalloc(10);
        for (int i = 0; i < 10; i++) {
            double u = av[i], v = bv[i];
            want[k][i] = ops[k] == IR_ADD ? u + v : ops[k] == IR_SUB ? u - v : ops[k] == IR_MUL ? u * v
                       : ops[k] == IR_DIV ? u / v : (u == v);
        }
    }
    CHECK(want[4][3] == 1 && want[4][7] == 1 && want[4][0] == 0);
    Val vals[] = {{a, av, NULL}, {b, bv, NULL}};
    check_all(g, vals, 2, outs, (const double *const *)want, 5, "binary");
    for (int k = 0; k < 5; k++) free(want[k]);
    free(av);
    free(bv);
    ir_graph_free(g);
}

/* CONST, CAST (i32 → float, float → float, float → i32 truncating), float ops on i32 */
TEST(const_and_cast)
{
    IrGraph *g = ir_graph_new();
    int64_t s[1] = {4}, s22[2] = {2, 2};
    IrNode *c = ir_const(g, 3.25);
    IrNode *cb = ir_broadcast(g, c, 2, s22);
    IrNode *i = ints(g, "i", 1, s), *x = param(g, "x", 1, s);
    IrNode *fi = ir_cast(g, i, IR_F32), *ff = ir_cast(g, x, IR_F64), *xi = ir_cast(g, x, IR_I32);
    IrNode *negi = ir_unary(g, IR_NEG, i);
    int32_t iv[4] = {-3, 0, 7, 100000};
    double xv[4] = {2.75, -2.75, 0.5, -7.0};
    double w_c[1] = {3.25}, w_cb[4] = {3.25, 3.25, 3.25, 3.25}, w_fi[4] = {-3, 0, 7, 100000};
    double w_xi[4] = {2, -2, 0, -7}, w_negi[4] = {3, 0, -7, -100000};
    IrNode *outs[] = {c, cb, fi, ff, xi, negi};
    const double *want[] = {w_c, w_cb, w_fi, xv, w_xi, w_negi};
    CHECK(xi->dtype == IR_I32 && c->ndim == 0);
    Val vals[] = {{i, NULL, iv}, {x, xv, NULL}};
    check_all(g, vals, 2, outs, want, 6, "const/cast");
    ir_graph_free(g);
}

TEST(rope_tables)
{
    IrGraph *g = ir_graph_new();
    const int64_t T = 5;
    IrNode *c8 = ir_rope(g, IR_ROPE_COS, T, 8, 1024), *s8 = ir_rope(g, IR_ROPE_SIN, T, 8, 1024);
    IrNode *c4 = ir_rope(g, IR_ROPE_COS, T, 4, 1024), *s4 = ir_rope(g, IR_ROPE_SIN, T, 4, 1024);
    /* D = 8: n = 2, ω = [1, 1/1024, 0, 0];  D = 4: n = 1, ω = [1, 0] */
    double wc8[20], ws8[20], wc4[10], ws4[10];
    for (int t = 0; t < T; t++) {
        const double w8[4] = {1, 1.0 / 1024, 0, 0}, w4[2] = {1, 0};
        for (int j = 0; j < 4; j++) wc8[t * 4 + j] = cos(t * w8[j]), ws8[t * 4 + j] = sin(t * w8[j]);
        for (int j = 0; j < 2; j++) wc4[t * 2 + j] = cos(t * w4[j]), ws4[t * 2 + j] = sin(t * w4[j]);
    }
    CHECK(wc8[4 * 3 + 2] == 1 && ws8[4 * 3 + 3] == 0 && ws4[2 * 2] == sin(2.0));
    IrNode *outs[] = {c8, s8, c4, s4};
    const double *want[] = {wc8, ws8, wc4, ws4};
    check_all(g, NULL, 0, outs, want, 4, "rope");
    ir_graph_free(g);
}

TEST(reductions)
{
    IrGraph *g = ir_graph_new();
    int64_t s[3] = {2, 3, 4};
    IrNode *x = param(g, "x", 3, s);
    double *xv = rnd(24, -3, 3);
    IrNode *outs[6];
    double *want[6];
    for (int axis = 0; axis < 3; axis++)
        for (int m = 0; m < 2; m++) {
            IrNode *n = outs[axis * 2 + m] = ir_reduce(g, m ? IR_MAX : IR_SUM, x, axis);
            double *w = want[axis * 2 + m] = dalloc(ir_numel(n));
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 3; j++)
                    for (int k = 0; k < 4; k++) {
                        int o = axis == 0 ? j * 4 + k : axis == 1 ? i * 4 + k : i * 3 + j;
                        int first = (axis == 0 ? i : axis == 1 ? j : k) == 0;
                        double v = xv[(i * 3 + j) * 4 + k];
                        if (m) w[o] = first || v > w[o] ? v : w[o];
                        else w[o] += v;
                    }
        }
    CHECK(outs[2]->shape[1] == 1 && outs[2]->ndim == 3);
    Val vals[] = {{x, xv, NULL}};
    check_all(g, vals, 1, outs, (const double *const *)want, 6, "reduce");
    for (int k = 0; k < 6; k++) free(want[k]);
    free(xv);
    ir_graph_free(g);
}

/* ---- data movement ---------------------------------------------------------------------- */

TEST(reshape_permute_3d)
{
    IrGraph *g = ir_graph_new();
    int64_t s[3] = {2, 3, 4}, rs[2] = {6, 4};
    IrNode *x = param(g, "x", 3, s);
    const int p1[3] = {2, 0, 1}, p2[3] = {1, 2, 0};
    IrNode *r = ir_reshape(g, x, 2, rs), *a = ir_permute(g, x, p1), *b = ir_permute(g, x, p2);
    double *xv = rnd(24, -1, 1), wa[24], wb[24];
    CHECK(a->shape[0] == 4 && a->shape[1] == 2 && a->shape[2] == 3);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++) {
                double v = xv[(i * 3 + j) * 4 + k];
                wa[(k * 2 + i) * 3 + j] = v;             /* a [4, 2, 3]: a[k, i, j] */
                wb[(j * 4 + k) * 2 + i] = v;             /* b [3, 4, 2]: b[j, k, i] */
            }
    IrNode *outs[] = {r, a, b};
    const double *want[] = {xv, wa, wb};
    Val vals[] = {{x, xv, NULL}};
    check_all(g, vals, 1, outs, want, 3, "reshape/permute");
    free(xv);
    ir_graph_free(g);
}

TEST(slice_pad_concat)
{
    IrGraph *g = ir_graph_new();
    int64_t s[3] = {2, 5, 3}, sb[3] = {2, 5, 2};
    IrNode *x = param(g, "x", 3, s), *y = param(g, "y", 3, sb);
    IrNode *sl = ir_slice(g, x, 1, 1, 3);                 /* [2, 3, 3] */
    IrNode *pd = ir_pad(g, sl, 1, 2, 6);                  /* [2, 6, 3], rows 2..4 */
    IrNode *c2 = ir_concat(g, x, y, 2);                   /* [2, 5, 5] */
    IrNode *c0 = ir_concat(g, x, x, 0);                   /* [4, 5, 3] */
    double *xv = rnd(30, -1, 1), *yv = rnd(20, -1, 1);
    double wsl[18], wpd[36] = {0}, wc2[50], wc0[60];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 5; j++) {
            for (int k = 0; k < 3; k++) {
                double v = xv[(i * 5 + j) * 3 + k];
                if (j >= 1 && j < 4) wsl[(i * 3 + j - 1) * 3 + k] = v, wpd[(i * 6 + j + 1) * 3 + k] = v;
                wc2[(i * 5 + j) * 5 + k] = v;
                wc0[(i * 5 + j) * 3 + k] = wc0[((i + 2) * 5 + j) * 3 + k] = v;
            }
            for (int k = 0; k < 2; k++) wc2[(i * 5 + j) * 5 + 3 + k] = yv[(i * 5 + j) * 2 + k];
        }
    IrNode *outs[] = {sl, pd, c2, c0};
    const double *want[] = {wsl, wpd, wc2, wc0};
    Val vals[] = {{x, xv, NULL}, {y, yv, NULL}};
    check_all(g, vals, 2, outs, want, 4, "slice/pad/concat");
    free(xv);
    free(yv);
    ir_graph_free(g);
}

TEST(broadcast)
{
    IrGraph *g = ir_graph_new();
    int64_t s13[2] = {1, 3}, s41[2] = {4, 1}, o[3] = {2, 4, 3}, s22[2] = {2, 2};
    IrNode *a = param(g, "a", 2, s13), *b = param(g, "b", 2, s41), *c = param(g, "c", 0, NULL);
    IrNode *ba = ir_broadcast(g, a, 3, o), *bb = ir_broadcast(g, b, 3, o), *bc = ir_broadcast(g, c, 2, s22);
    double av[3] = {1, 2, 3}, bv[4] = {-1, -2, -3, -4}, cv[1] = {0.5};
    double wa[24], wb[24], wc[4] = {0.5, 0.5, 0.5, 0.5};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 3; k++) wa[(i * 4 + j) * 3 + k] = av[k], wb[(i * 4 + j) * 3 + k] = bv[j];
    IrNode *outs[] = {ba, bb, bc};
    const double *want[] = {wa, wb, wc};
    Val vals[] = {{a, av, NULL}, {b, bv, NULL}, {c, cv, NULL}};
    check_all(g, vals, 3, outs, want, 3, "broadcast");
    ir_graph_free(g);
}

/* i32 tensors through movement and GATHER; a float CONCAT of an i32 and a float tensor */
TEST(i32_movement)
{
    IrGraph *g = ir_graph_new();
    int64_t s[1] = {6}, r23[2] = {2, 3}, s3[1] = {3};
    IrNode *t = ints(g, "t", 1, s), *x = param(g, "x", 1, s3);
    IrNode *rs = ir_reshape(g, t, 2, r23), *sl = ir_slice(g, t, 0, 2, 3);
    const int perm[2] = {1, 0};
    IrNode *pm = ir_permute(g, rs, perm);
    IrNode *ga = ir_gather(g, t, sl);                     /* t[t[2..4]] */
    IrNode *cc = ir_concat(g, sl, x, 0);                  /* f32 [6] */
    int32_t tv[6] = {5, 4, 3, 2, 1, 0};
    double xv[3] = {0.5, 1.5, 2.5};
    double wrs[6] = {5, 4, 3, 2, 1, 0}, wsl[3] = {3, 2, 1}, wpm[6] = {5, 2, 4, 1, 3, 0};
    double wga[3] = {2, 3, 4}, wcc[6] = {3, 2, 1, 0.5, 1.5, 2.5};
    CHECK(rs->dtype == IR_I32 && ga->dtype == IR_I32 && cc->dtype == IR_F32);
    IrNode *outs[] = {rs, sl, pm, ga, cc};
    const double *want[] = {wrs, wsl, wpm, wga, wcc};
    Val vals[] = {{t, NULL, tv}, {x, xv, NULL}};
    check_all(g, vals, 2, outs, want, 5, "i32 movement");
    ir_graph_free(g);
}

/* ---- gather / scatter ------------------------------------------------------------------- */

TEST(gather_scatter_values)
{
    IrGraph *g = ir_graph_new();
    int64_t st[2] = {5, 3}, si[2] = {2, 2}, sr[3] = {2, 2, 3};
    IrNode *A = param(g, "A", 2, st), *i = ints(g, "i", 2, si), *B = param(g, "B", 3, sr);
    IrNode *ga = ir_gather(g, A, i), *sc = ir_scatter_add(g, B, i, 5);
    int32_t iv[4] = {4, 0, 4, 2};
    double *Av = rnd(15, -1, 1), *Bv = rnd(12, -1, 1), wga[12], wsc[15] = {0};
    for (int r = 0; r < 4; r++)
        for (int k = 0; k < 3; k++) {
            wga[r * 3 + k] = Av[iv[r] * 3 + k];
            wsc[iv[r] * 3 + k] += Bv[r * 3 + k];
        }
    CHECK(ga->ndim == 3 && ga->shape[2] == 3 && sc->shape[0] == 5);
    IrNode *outs[] = {ga, sc};
    const double *want[] = {wga, wsc};
    Val vals[] = {{A, Av, NULL}, {i, NULL, iv}, {B, Bv, NULL}};
    check_all(g, vals, 3, outs, want, 2, "gather/scatter");
    free(Av);
    free(Bv);
    ir_graph_free(g);
}

/* <gather(A, i), B> = <A, scatter_add(B, i)> */
TEST(gather_scatter_transpose)
{
    IrGraph *g = ir_graph_new();
    int64_t st[3] = {7, 2, 3}, si[1] = {9}, sr[3] = {9, 2, 3};
    IrNode *A = param(g, "A", 3, st), *i = ints(g, "i", 1, si), *B = param(g, "B", 3, sr);
    IrNode *ga = ir_gather(g, A, i), *sc = ir_scatter_add(g, B, i, 7);
    int32_t iv[9] = {3, 3, 0, 6, 1, 3, 6, 2, 0};
    double *Av = rnd(42, -1, 1), *Bv = rnd(54, -1, 1), gv[54], sv[42];
    IrNode *keep[] = {ga, sc};
    Val vals[] = {{A, Av, NULL}, {i, NULL, iv}, {B, Bv, NULL}};
    for (int p = 0; p < 2; p++) {
        char err[256];
        RtRef *r = run(g, precs[p], vals, 3, keep, 2, err, sizeof err);
        CHECK(r != NULL);
        if (!r) continue;
        rt_ref_get(r, ga, gv);
        rt_ref_get(r, sc, sv);
        double lhs = 0, rhs = 0, mag = 0;
        for (int k = 0; k < 54; k++) lhs += gv[k] * Bv[k], mag += fabs(gv[k] * Bv[k]);
        for (int k = 0; k < 42; k++) rhs += Av[k] * sv[k];
        CHECK_NEAR(lhs, rhs, tol_of(precs[p]) * mag);
        CHECK(mag > 1);
        rt_ref_free(r);
    }
    free(Av);
    free(Bv);
    ir_graph_free(g);
}

/* ---- matmul ----------------------------------------------------------------------------- */

/* c [bt, M, N] = op(a) op(b), naive */
static void naive_mm(const double *a, const double *b, double *c, int batch, int M, int N, int K,
                     int at, int bt)
{
    for (int z = 0; z < batch; z++)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int k = 0; k < K; k++) {
                    double u = at ? a[z * M * K + k * M + i] : a[z * M * K + i * K + k];
                    double v = bt ? b[z * K * N + j * K + k] : b[z * K * N + k * N + j];
                    s += u * v;
                }
                c[z * M * N + i * N + j] = s;
            }
}

TEST(matmul_transposes_and_batch)
{
    const int M = 3, K = 4, N = 5;
    for (int batch = 1; batch <= 3; batch += 2)
        for (int at = 0; at < 2; at++)
            for (int bt = 0; bt < 2; bt++) {
                IrGraph *g = ir_graph_new();
                int nd = batch > 1 ? 3 : 2, o = nd - 2;
                int64_t sa[3] = {batch}, sb[3] = {batch};
                sa[o] = at ? K : M, sa[o + 1] = at ? M : K;
                sb[o] = bt ? N : K, sb[o + 1] = bt ? K : N;
                IrNode *a = param(g, "a", nd, sa), *b = param(g, "b", nd, sb);
                IrNode *c = ir_matmul_t(g, a, b, at, bt);
                CHECK(c->shape[o] == M && c->shape[o + 1] == N);
                double *av = rnd(batch * M * K, -1, 1), *bv = rnd(batch * K * N, -1, 1);
                double *want = dalloc(batch * M * N);
                naive_mm(av, bv, want, batch, M, N, K, at, bt);
                IrNode *outs[] = {c};
                const double *w[] = {want};
                Val vals[] = {{a, av, NULL}, {b, bv, NULL}};
                check_all(g, vals, 2, outs, w, 1, at ? (bt ? "matmul aT bT" : "matmul aT") : bt ? "matmul bT" : "matmul");
                free(av);
                free(bv);
                free(want);
                ir_graph_free(g);
            }
}

/* ---- fused ------------------------------------------------------------------------------ */

TEST(cross_entropy_and_bwd)
{
    IrGraph *g = ir_graph_new();
    int64_t sa[2] = {4, 5}, st[1] = {4};
    IrNode *a = param(g, "a", 2, sa), *y = ints(g, "y", 1, st), *c = param(g, "c", 1, st);
    IrNode *ce = ir_cross_entropy(g, a, y), *cb = ir_ce_bwd(g, a, y, c);
    double *av = rnd(20, -3, 3), *cv = rnd(4, -1, 1), wce[4], wcb[20];
    av[5] = 1000, av[6] = 999;                        /* a row that overflows exp() naively */
    int32_t yv[4] = {0, 1, 4, 2};
    for (int t = 0; t < 4; t++) {
        double m = -INFINITY, s = 0;
        for (int j = 0; j < 5; j++) m = fmax(m, av[t * 5 + j]);
        for (int j = 0; j < 5; j++) s += exp(av[t * 5 + j] - m);
        wce[t] = m + log(s) - av[t * 5 + yv[t]];
        for (int j = 0; j < 5; j++) wcb[t * 5 + j] = cv[t] * (exp(av[t * 5 + j] - m) / s - (j == yv[t]));
    }
    CHECK(isfinite(wce[1]) && fabs(wce[1] - log1p(exp(-1.0)) - 1) < 1e-12);
    IrNode *outs[] = {ce, cb};
    const double *want[] = {wce, wcb};
    Val vals[] = {{a, av, NULL}, {y, NULL, yv}, {c, cv, NULL}};
    check_all(g, vals, 3, outs, want, 2, "cross-entropy");
    free(av);
    free(cv);
    ir_graph_free(g);
}

/* ATTENTION and ATTENTION_BWD against the kernels of ref_kernels.h called directly */
TEST(attention_matches_kernels)
{
    enum { T = 12, H = 2, D = 4, B = 2, EOT = 9 };
    const double scale = 0.12;
    const int64_t n = T * H * D;
    IrGraph *g = ir_graph_new();
    int64_t s[3] = {T, H, D}, st[1] = {T};
    IrNode *q = param(g, "q", 3, s), *k = param(g, "k", 3, s), *v = param(g, "v", 3, s);
    IrNode *dout = param(g, "dout", 3, s), *tok = ints(g, "tokens", 1, st);
    IrNode *win = ir_leaf(g, IR_SCALAR, "window", IR_F32, 0, NULL);
    IrNode *att = ir_attention(g, q, k, v, tok, win, B, EOT, scale);
    IrNode *bwd = ir_attention_bwd(g, att, dout);
    double *qv = rnd(n, -2, 2), *kv = rnd(n, -2, 2), *vv = rnd(n, -1, 1), *dv = rnd(n, -1, 1);
    int32_t tv[T] = {9, 1, 2, 3, 4, 9, 5, 6, 7, 8, 1, 2}, doc[T];
    rt_ref_doc_ids(tv, T, EOT, doc);
    for (int w = 0; w <= 3; w += 3) {                 /* window 0 acts as 1; 3 spans docs */
        double o[T * H * D], lse[H * T], grads[3 * T * H * D];
        rt_ref_attn_fwd_f64(qv, kv, vv, doc, T, H, D, B, w, scale, o, lse);
        rt_ref_attn_bwd_f64(dv, qv, kv, vv, o, lse, doc, T, H, D, B, w, scale, grads, grads + n, grads + 2 * n);
        Val vals[] = {{q, qv, NULL}, {k, kv, NULL}, {v, vv, NULL}, {dout, dv, NULL}, {tok, NULL, tv}};
        IrNode *keep[] = {att, bwd};
        for (int p = 0; p < 2; p++) {
            char err[256];
            RtRef *r = rt_ref_new(g, precs[p]);
            for (int i = 0; i < 5; i++) {
                if (vals[i].d) rt_ref_set(r, vals[i].leaf, vals[i].d);
                else rt_ref_set_i32(r, vals[i].leaf, vals[i].i);
            }
            rt_ref_set_scalar(r, "window", w + 0.25);     /* rounded to w */
            CHECK(rt_ref_run(r, keep, 2, err, sizeof err) == 0);
            expect(r, precs[p], att, o, "attention");
            expect(r, precs[p], bwd, grads, "attention_bwd");
            rt_ref_free(r);
        }
    }
    /* f32 is bit-identical to the f32 kernel */
    float qf[T * H * D], kf[T * H * D], vf[T * H * D], of[T * H * D], lf[H * T];
    for (int i = 0; i < n; i++) qf[i] = (float)qv[i], kf[i] = (float)kv[i], vf[i] = (float)vv[i];
    rt_ref_attn_fwd_f32(qf, kf, vf, doc, T, H, D, B, 1, scale, of, lf);
    RtRef *r = rt_ref_new(g, RT_F32);
    rt_ref_set(r, q, qv), rt_ref_set(r, k, kv), rt_ref_set(r, v, vv), rt_ref_set(r, dout, dv);
    rt_ref_set_i32(r, tok, tv);
    rt_ref_set_scalar(r, "window", 1);
    IrNode *keep[] = {att};
    char err[256];
    CHECK(rt_ref_run(r, keep, 1, err, sizeof err) == 0);
    double got[T * H * D];
    rt_ref_get(r, att, got);
    int same = 1;
    for (int i = 0; i < n; i++) same &= got[i] == (double)of[i];
    CHECK(same);
    rt_ref_free(r);
    free(qv), free(kv), free(vv), free(dv);
    ir_graph_free(g);
}

/* ---- errors ----------------------------------------------------------------------------- */

TEST(error_unset_leaves)
{
    IrGraph *g = ir_graph_new();
    int64_t s[1] = {3};
    IrNode *x = param(g, "x", 1, s), *w = ir_leaf(g, IR_PARAM, "lm_head", IR_F32, 1, s);
    IrNode *t = ints(g, "tokens", 1, s), *sc = ir_leaf(g, IR_SCALAR, "lr", IR_F32, 0, NULL);
    IrNode *y = ir_binary(g, IR_MUL, x, w);
    IrNode *z = ir_binary(g, IR_ADD, ir_cast(g, t, IR_F32), ir_broadcast(g, sc, 1, s));
    double xv[3] = {1, 2, 3};
    int32_t tv[3] = {1, 2, 3};
    IrNode *keep[] = {y, z};
    char err[256];
    Val v1[] = {{x, xv, NULL}};
    CHECK(fails_with(g, v1, 1, keep, 2, "parameter 'lm_head' has no value", NULL));
    RtRef *r = rt_ref_new(g, RT_F64);
    CHECK(rt_ref_run(r, keep, 2, err, sizeof err) == -1);
    CHECK_STR(err, "parameter 'x' has no value");
    rt_ref_set(r, x, xv), rt_ref_set(r, w, xv);
    CHECK(rt_ref_run(r, keep, 2, err, sizeof err) == -1);
    CHECK_STR(err, "input 'tokens' has no value");
    rt_ref_set_i32(r, t, tv);
    CHECK(rt_ref_run(r, keep, 2, err, sizeof err) == -1);
    CHECK_STR(err, "scalar 'lr' has no value");
    CHECK(rt_ref_run(r, keep, 2, NULL, 0) == -1);      /* err may be NULL */
    rt_ref_set_scalar(r, "lr", 0.5);
    rt_ref_set_scalar(r, "nobody", 1);                /* matches no leaf: ignored */
    CHECK(rt_ref_run(r, keep, 2, err, sizeof err) == 0);
    CHECK_STR(err, "");
    double zv[3];
    rt_ref_get(r, z, zv);
    CHECK(zv[0] == 1.5 && zv[2] == 3.5);
    rt_ref_free(r);
    ir_graph_free(g);
}

/* one graph per failing op (a run evaluates every node, so the first failure wins) */
static int index_case(int op, const int32_t *iv, const char *n1, const char *n2)
{
    IrGraph *g = ir_graph_new();
    int64_t st[2] = {5, 2}, si[1] = {3}, sr[2] = {3, 2}, sl[2] = {3, 4};
    IrNode *i = ints(g, "i", 1, si), *A = param(g, "A", 2, st), *B = param(g, "B", 2, sr);
    IrNode *L = param(g, "L", 2, sl), *c = param(g, "c", 1, si);
    IrNode *out = op == 0 ? ir_gather(g, A, i) : op == 1 ? ir_scatter_add(g, B, i, 4)
                : op == 2 ? ir_cross_entropy(g, L, i) : ir_ce_bwd(g, L, i, c);
    double Av[10] = {0}, Bv[6] = {0}, Lv[12] = {0}, cv[3] = {1, 1, 1};
    Val v[] = {{A, Av, NULL}, {i, NULL, iv}, {B, Bv, NULL}, {L, Lv, NULL}, {c, cv, NULL}};
    IrNode *keep[] = {out};
    int ok = fails_with(g, v, 5, keep, 1, n1, n2);
    ir_graph_free(g);
    return ok;
}

TEST(error_index_out_of_range)
{
    const int32_t bad[3] = {0, 7, 1}, neg[3] = {0, -1, 1}, big[3] = {1, 2, 4}, ok[3] = {0, 1, 3};
    CHECK(index_case(0, bad, "index 7 (element 1) is outside [0, 5)", NULL));
    CHECK(index_case(0, bad, "GATHER %", NULL));
    CHECK(index_case(0, neg, "index -1 ", "[0, 5)"));
    CHECK(index_case(1, big, "SCATTER_ADD %", "index 4 (element 2) is outside [0, 4)"));
    CHECK(index_case(2, big, "CROSS_ENTROPY %", "target 4 (element 2) is outside [0, 4)"));
    CHECK(index_case(3, neg, "CE_BWD %", "target -1 "));
    quiet = 1;                                              /* in range: the runs succeed */
    CHECK(!index_case(2, ok, "target", NULL));
    CHECK(!index_case(0, big, "index", NULL));
    quiet = 0;
}

/* i32 arithmetic and comparisons, exactly: + - * wrap around modulo 2^32, // and % round
 * down (the sign of the divisor), comparisons give 0 or 1 */
TEST(i32_binary_values)
{
    enum { N = 9 };
    IrGraph *g = ir_graph_new();
    int64_t s[1] = {N};
    IrNode *a = ints(g, "a", 1, s), *b = ints(g, "b", 1, s);
    const IrOp ops[] = {IR_ADD, IR_SUB, IR_MUL, IR_FLOORDIV, IR_MOD, IR_EQ, IR_NE, IR_LT, IR_LE};
    enum { NOPS = sizeof ops / sizeof ops[0] };
    int32_t av[N] = {7, -7, 7, -7, 0, 5, INT32_MAX, INT32_MIN, -1};
    int32_t bv[N] = {2, 2, -2, -2, 3, 5, 1, -1, 40};
    const double want[NOPS][N] = {
        {9, -5, 5, -9, 3, 10, INT32_MIN, INT32_MAX, 39},
        {5, -9, 9, -5, -3, 0, INT32_MAX - 1, -INT32_MAX, -41},
        {14, -14, -14, 14, 0, 25, INT32_MAX, INT32_MIN, -40},
        {3, -4, -4, 3, 0, 1, INT32_MAX, INT32_MIN, -1},
        {1, 1, -1, -1, 0, 0, 0, 0, 39},
        {0, 0, 0, 0, 0, 1, 0, 0, 0},
        {1, 1, 1, 1, 1, 0, 1, 1, 1},
        {0, 1, 0, 1, 1, 0, 0, 1, 1},
        {0, 1, 0, 1, 1, 1, 0, 1, 1},
    };
    IrNode *outs[NOPS];
    for (int k = 0; k < NOPS; k++) outs[k] = ir_binary(g, ops[k], a, b);
    RtRef *r = rt_ref_new(g, RT_F64);
    rt_ref_set_i32(r, a, av);
    rt_ref_set_i32(r, b, bv);
    char err[256];
    CHECK(rt_ref_run(r, outs, NOPS, err, sizeof err) == 0);
    for (int k = 0; k < NOPS; k++) {
        CHECK(outs[k]->dtype == IR_I32);
        double got[N];
        rt_ref_get(r, outs[k], got);
        for (int i = 0; i < N; i++)
            if (got[i] != want[k][i]) {
                fprintf(stderr, "  %s(%d, %d) = %.17g, want %.17g\n", ir_op_name(ops[k]), av[i], bv[i], got[i], want[k][i]);
                CHECK(!"exact i32 result");
            }
    }
    rt_ref_free(r);
    ir_graph_free(g);
}

/* an i32 division by zero and a CAST out of the i32 range name their node */
TEST(error_i32_division_and_cast)
{
    IrGraph *g = ir_graph_new();
    int64_t s[1] = {2};
    IrNode *i = ints(g, "i", 1, s), *j = ints(g, "j", 1, s), *x = param(g, "x", 1, s);
    IrNode *md = ir_binary(g, IR_MOD, i, j), *dv = ir_binary(g, IR_FLOORDIV, i, ir_binary(g, IR_SUB, j, j));
    int32_t iv[2] = {1, 2}, jv[2] = {3, 0};
    double xv[2] = {1, 3e9};
    IrNode *k1[] = {md}, *k2[] = {dv};
    Val v[] = {{i, NULL, iv}, {j, NULL, jv}, {x, xv, NULL}};
    CHECK(fails_with(g, v, 3, k1, 1, "MOD", "division by zero (element 1: 2 by 0)"));
    jv[1] = 5;                               /* the MOD runs; j - j is 0 everywhere */
    CHECK(fails_with(g, v, 3, k2, 1, "FLOORDIV", "division by zero (element 0: 1 by 0)"));
    IrGraph *g2 = ir_graph_new();
    IrNode *x2 = param(g2, "x", 1, s), *xi = ir_cast(g2, x2, IR_I32);
    IrNode *k3[] = {xi};
    Val v2[] = {{x2, xv, NULL}};
    CHECK(fails_with(g2, v2, 1, k3, 1, "CAST", "does not fit i32"));
    ir_graph_free(g);
    ir_graph_free(g2);
}

/* ---- memory ----------------------------------------------------------------------------- */

TEST(buffers_freed_after_last_use)
{
    enum { N = 1000 };
    IrGraph *g = ir_graph_new();
    int64_t s[1] = {N};
    IrNode *x = param(g, "x", 1, s);
    IrNode *e = ir_unary(g, IR_EXP, x), *ng = ir_unary(g, IR_NEG, e);
    IrNode *sum = ir_reduce(g, IR_SUM, ng, 0);
    IrNode *dead = ir_unary(g, IR_SQUARE, x);                /* no consumer, not kept */
    (void)dead;
    double *xv = rnd(N, -1, 1), want = 0, got;
    for (int i = 0; i < N; i++) want -= exp(xv[i]);
    for (int p = 0; p < 2; p++) {
        const size_t es = precs[p] == RT_F64 ? 8 : 4;
        RtRef *r = rt_ref_new(g, precs[p]);
        CHECK(rt_ref_live_bytes(r) == 0);
        rt_ref_set(r, x, xv);
        CHECK(rt_ref_live_bytes(r) == N * es);
        IrNode *keep[] = {sum};
        char err[128];
        CHECK(rt_ref_run(r, keep, 1, err, sizeof err) == 0);
        /* x, e, ng are live together; then e is freed before sum is made; dead comes last */
        CHECK(rt_ref_live_bytes(r) == (N + 1) * es);
        CHECK(rt_ref_peak_bytes(r) == 3 * N * es);
        rt_ref_get(r, sum, &got);
        CHECK_NEAR(got, want, tol_of(precs[p]) * fabs(want));
        IrNode *keep2[] = {sum, e};                             /* a probe keeps e alive */
        CHECK(rt_ref_run(r, keep2, 2, err, sizeof err) == 0);
        CHECK(rt_ref_live_bytes(r) == (2 * N + 1) * es);
        double ev[N];
        rt_ref_get(r, e, ev);
        CHECK_NEAR(ev[7], exp(xv[7]), tol_of(precs[p]) * exp(xv[7]));
        CHECK(rt_ref_run(r, NULL, 0, err, sizeof err) == 0);   /* nothing kept */
        CHECK(rt_ref_live_bytes(r) == N * es);
        rt_ref_free(r);
    }
    free(xv);
    ir_graph_free(g);
}

/* the graph may grow between runs (autodiff appends nodes); runs repeat */
TEST(graph_grows_between_runs)
{
    IrGraph *g = ir_graph_new();
    int64_t s[1] = {3};
    IrNode *x = param(g, "x", 1, s);
    IrNode *y = ir_unary(g, IR_SQUARE, x);
    RtRef *r = rt_ref_new(g, RT_F64);
    double xv[3] = {1, 2, 3}, out[3];
    rt_ref_set(r, x, xv);
    IrNode *k1[] = {y};
    char err[128];
    CHECK(rt_ref_run(r, k1, 1, err, sizeof err) == 0);
    IrNode *u = param(g, "u", 1, s);
    for (int i = 0; i < 300; i++) y = ir_binary(g, IR_ADD, y, u);   /* past the first 256 */
    double uv[3] = {0.5, 0.5, 0.5};
    rt_ref_set(r, u, uv);
    IrNode *k2[] = {y};
    CHECK(rt_ref_run(r, k2, 1, err, sizeof err) == 0);
    rt_ref_get(r, y, out);
    CHECK_NEAR(out[0], 151, 0);
    CHECK_NEAR(out[2], 159, 0);
    rt_ref_free(r);
    ir_graph_free(g);
}

/* ---- large tensors: the OpenMP paths ------------------------------------------------------ */

TEST(large_tensors_parallel_paths)
{
    enum { R = 300, C = 200, V = 50 };
    IrGraph *g = ir_graph_new();
    int64_t s[2] = {R, C}, sv[2] = {V, C}, si[1] = {R};
    IrNode *a = param(g, "a", 2, s), *b = param(g, "b", 2, s), *tab = param(g, "tab", 2, sv);
    IrNode *idx = ints(g, "idx", 1, si);
    IrNode *add = ir_binary(g, IR_ADD, a, b), *ex = ir_unary(g, IR_EXP, a);
    IrNode *s0 = ir_reduce(g, IR_SUM, a, 0), *m1 = ir_reduce(g, IR_MAX, a, 1);
    const int perm[2] = {1, 0};
    IrNode *pt = ir_permute(g, a, perm);
    IrNode *ga = ir_gather(g, tab, idx), *sc = ir_scatter_add(g, a, idx, V);
    IrNode *ce = ir_cross_entropy(g, a, idx);
    double *av = rnd(R * C, -1, 1), *bv = rnd(R * C, -1, 1), *tv = rnd(V * C, -1, 1);
    int32_t iv[R];
    for (int i = 0; i < R; i++) iv[i] = (i * 7) % V;
    double *w_add = dalloc(R * C), *w_ex = dalloc(R * C), *w_s0 = dalloc(C), *w_m1 = dalloc(R);
    double *w_pt = dalloc(R * C), *w_ga = dalloc(R * C), *w_sc = dalloc(V * C), *w_ce = dalloc(R);
    for (int i = 0; i < R; i++) {
        double m = -INFINITY, z = 0;
        for (int j = 0; j < C; j++) {
            double v = av[i * C + j];
            w_add[i * C + j] = v + bv[i * C + j];
            w_ex[i * C + j] = exp(v);
            w_s0[j] += v;
            m = fmax(m, v);
            w_pt[j * R + i] = v;
            w_ga[i * C + j] = tv[iv[i] * C + j];
            w_sc[iv[i] * C + j] += v;
        }
        w_m1[i] = m;
        for (int j = 0; j < C; j++) z += exp(av[i * C + j] - m);
        w_ce[i] = m + log(z) - av[i * C + iv[i]];
    }
    IrNode *outs[] = {add, ex, s0, m1, pt, ga, sc, ce};
    const double *want[] = {w_add, w_ex, w_s0, w_m1, w_pt, w_ga, w_sc, w_ce};
    Val vals[] = {{a, av, NULL}, {b, bv, NULL}, {tab, tv, NULL}, {idx, NULL, iv}};
    check_all(g, vals, 4, outs, want, 8, "large");
    for (int k = 0; k < 8; k++) free((void *)want[k]);
    free(av), free(bv), free(tv);
    ir_graph_free(g);
}

/* a batched matmul big enough per product for OpenBLAS to thread, and one small enough for
 * the OpenMP loop over the batch */
TEST(large_batched_matmul)
{
    const int dims[2][4] = {{2, 96, 80, 72}, {16, 8, 6, 5}};   /* batch, M, K, N */
    for (int c = 0; c < 2; c++) {
        const int bt = dims[c][0], M = dims[c][1], K = dims[c][2], N = dims[c][3];
        IrGraph *g = ir_graph_new();
        int64_t sa[3] = {bt, K, M}, sb[3] = {bt, N, K};
        IrNode *a = param(g, "a", 3, sa), *b = param(g, "b", 3, sb);
        IrNode *m = ir_matmul_t(g, a, b, true, true);
        double *av = rnd(bt * M * K, -1, 1), *bv = rnd(bt * K * N, -1, 1), *w = dalloc(bt * M * N);
        naive_mm(av, bv, w, bt, M, N, K, 1, 1);
        IrNode *outs[] = {m};
        const double *want[] = {w};
        Val vals[] = {{a, av, NULL}, {b, bv, NULL}};
        check_all(g, vals, 2, outs, want, 1, "batched matmul");
        free(av), free(bv), free(w);
        ir_graph_free(g);
    }
}

int main(void)
{
    RUN(unary_ops);
    RUN(binary_ops);
    RUN(const_and_cast);
    RUN(rope_tables);
    RUN(reductions);
    RUN(reshape_permute_3d);
    RUN(slice_pad_concat);
    RUN(broadcast);
    RUN(i32_movement);
    RUN(gather_scatter_values);
    RUN(gather_scatter_transpose);
    RUN(matmul_transposes_and_batch);
    RUN(cross_entropy_and_bwd);
    RUN(attention_matches_kernels);
    RUN(error_unset_leaves);
    RUN(error_index_out_of_range);
    RUN(i32_binary_values);
    RUN(error_i32_division_and_cast);
    RUN(buffers_freed_after_last_use);
    RUN(graph_grows_between_runs);
    RUN(large_tensors_parallel_paths);
    RUN(large_batched_matmul);
    return test_summary();
}
