/* cpu_kernels.c — library ops of the cpu backend (contract: cpu_kernels.h). */
#include "runtime/cpu_kernels.h"
#include "base/base.h"
#include "codegen/codegen.h"

#include "runtime/ref_kernels.h"
#include "runtime/sgemm.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* Attention by query tiles: for the QT queries [q0, q1) of head h the keys that any of
 * them may see form one range [k0, q1) (the window start and the document of q0 are the
 * earliest; documents are contiguous), so the scores are one matrix product
 * S = scale · Q K^T (QT × nk) with OpenBLAS, a row softmax over each query's own keys, and
 * the outputs again matrix products. Rows of one head are strided by H·D floats, which
 * sgemm takes as the leading dimension.
 *
 * A query's allowed keys (rt_ref_allowed) are one range, [max(window start, document
 * start), q]: documents are contiguous and the window starts at a block boundary. So the
 * softmax masks by bounds, not key by key, and its loops vectorize: the row functions are
 * compiled for AVX-512 and AVX2 too (target_clones; the CPU picks one when the program
 * loads), with an exponential of arithmetic only (cg_expf). */
enum { QT = 64 };

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ROW_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ROW_CLONES
#endif

typedef struct {
    int T, H, D, block, window;
    float scale;
    const int32_t *doc;
    const int32_t *doc_start;   /* [T]: the first position of t's document */
} Attn;

/* the generated kernels' exponential (codegen.h), so both round alike */
CG_EXPF_DEFINITION

/* the first key query q may see */
static int first_key(const Attn *a, int q)
{
    int w = rt_ref_window_begin(q, a->block, a->window);
    return w > a->doc_start[q] ? w : a->doc_start[q];
}

/* row[0, n) = softmax of row[lo, hi] (inclusive), 0 outside */
ROW_CLONES static void softmax_range(float *row, int n, int lo, int hi)
{
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int j = lo; j <= hi; j++) mx = row[j] > mx ? row[j] : mx;
    double l = 0;
#pragma omp simd reduction(+ : l)
    for (int j = lo; j <= hi; j++) {
        row[j] = cg_expf(row[j] - mx);
        l += row[j];
    }
    const float inv = (float)(1.0 / l);
    for (int j = 0; j < lo; j++) row[j] = 0;
#pragma omp simd
    for (int j = lo; j <= hi; j++) row[j] *= inv;
    for (int j = hi + 1; j < n; j++) row[j] = 0;
}

/* P (nq × nk, row stride nk) = softmax over allowed keys of scale · Q K^T */
static void tile_probs(const Attn *a, const float *q, const float *k, int h, int q0, int nq, int k0, int nk, float *P)
{
    const int ld = a->H * a->D;
    rt_sgemm(false, true, nq, nk, a->D, a->scale, q + (int64_t)q0 * ld + h * a->D, ld, k + (int64_t)k0 * ld + h * a->D,
             ld, 0, P, nk);
    for (int i = 0; i < nq; i++) softmax_range(P + (int64_t)i * nk, nk, first_key(a, q0 + i) - k0, q0 + i - k0);
}

/* dS row: p ∘ (dp − Di) · scale over the row's nk keys, where Di = Σ dO∘O = Σ_j p_j dp_j
 * (O = P V, dP = dO Vᵀ): the row of P is the query's whole softmax, so O is not needed */
ROW_CLONES static void dscores_row(const float *p, float *dp, int nk, float scale)
{
    double sum = 0;   /* up to T terms: summed in double */
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < nk; j++) sum += p[j] * dp[j];
    const float di = (float)sum;
#pragma omp simd
    for (int j = 0; j < nk; j++) dp[j] = p[j] * (dp[j] - di) * scale;
}

static int32_t *doc_starts(const int32_t *doc, int T)
{
    int32_t *s = xmalloc(sizeof *s * (size_t)(T ? T : 1));
    for (int t = 0; t < T; t++) s[t] = t > 0 && doc[t] == doc[t - 1] ? s[t - 1] : t;
    return s;
}

static void *scratch(size_t floats)
{
    float *p = xmalloc(sizeof(float) * (floats ? floats : 1));
    return p;
}

void rt_cpu_attn_fwd(const float *q, const float *k, const float *v, const int32_t *doc, int T, int H, int D,
                     int block, int window, double scale, float *o)
{
    const Attn a = {T, H, D, block, window, (float)scale, doc, doc_starts(doc, T)};
    const int ntiles = (T + QT - 1) / QT, ld = H * D;
#pragma omp parallel
    {
        float *P = scratch((size_t)QT * (size_t)T);
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < ntiles; t++) {
                const int q0 = t * QT, nq = q0 + QT <= T ? QT : T - q0, k0 = first_key(&a, q0), nk = q0 + nq - k0;
                tile_probs(&a, q, k, h, q0, nq, k0, nk, P);
                rt_sgemm(false, false, nq, D, nk, 1, P, nk, v + (int64_t)k0 * ld + h * D, ld, 0,
                         o + (int64_t)q0 * ld + h * D, ld);
            }
        free(P);
    }
    free((void *)a.doc_start);
}

/* One head at a time per thread (dk and dv of a key gather from every tile that sees it):
 * dP = dO V^T, Di = rowsum(P ∘ dP) (= rowsum(dO ∘ O), without recomputing O = P V),
 * dS = scale · P ∘ (dP − Di), dQ = dS K, dK += dS^T Q, dV += P^T dO. */
void rt_cpu_attn_bwd(const float *dout, const float *q, const float *k, const float *v, const int32_t *doc, int T,
                     int H, int D, int block, int window, double scale, float *dq, float *dk, float *dv)
{
    const Attn a = {T, H, D, block, window, (float)scale, doc, doc_starts(doc, T)};
    const int ntiles = (T + QT - 1) / QT, ld = H * D;
    for (int64_t t = 0; t < (int64_t)T; t++)
        for (int h = 0; h < H; h++) {
            memset(dk + t * ld + h * D, 0, sizeof(float) * (size_t)D);
            memset(dv + t * ld + h * D, 0, sizeof(float) * (size_t)D);
        }
#pragma omp parallel
    {
        float *P = scratch((size_t)QT * (size_t)T), *dP = scratch((size_t)QT * (size_t)T);
#pragma omp for schedule(dynamic, 1)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < ntiles; t++) {
                const int q0 = t * QT, nq = q0 + QT <= T ? QT : T - q0, k0 = first_key(&a, q0), nk = q0 + nq - k0;
                const float *dO = dout + (int64_t)q0 * ld + h * D, *Q = q + (int64_t)q0 * ld + h * D;
                const float *K = k + (int64_t)k0 * ld + h * D, *V = v + (int64_t)k0 * ld + h * D;
                tile_probs(&a, q, k, h, q0, nq, k0, nk, P);
                rt_sgemm(false, true, nq, nk, D, 1, dO, ld, V, ld, 0, dP, nk);
                for (int i = 0; i < nq; i++) dscores_row(P + (int64_t)i * nk, dP + (int64_t)i * nk, nk, a.scale);
                rt_sgemm(false, false, nq, D, nk, 1, dP, nk, K, ld, 0, dq + (int64_t)q0 * ld + h * D, ld);
                rt_sgemm(true, false, nk, D, nq, 1, dP, nk, Q, ld, 1, dk + (int64_t)k0 * ld + h * D, ld);
                rt_sgemm(true, false, nk, D, nq, 1, P, nk, dO, ld, 1, dv + (int64_t)k0 * ld + h * D, ld);
            }
        free(P);
        free(dP);
    }
    free((void *)a.doc_start);
}

void rt_cpu_scatter_add(const float *x, const int32_t *idx, int64_t n, int64_t V, int64_t row, float *y)
{
    memset(y, 0, sizeof(float) * (size_t)(V * row));
    const int64_t CH = 64, nch = (row + CH - 1) / CH;
#pragma omp parallel for if (n * row > 32768)
    for (int64_t c = 0; c < nch; c++) {
        const int64_t j0 = c * CH, j1 = j0 + CH < row ? j0 + CH : row;
        for (int64_t i = 0; i < n; i++) {
            const int64_t r = idx[i] < 0 ? 0 : idx[i] >= V ? V - 1 : idx[i];   /* a computed index: clamped */
            float *yr = y + r * row;
            const float *xr = x + i * row;
            for (int64_t j = j0; j < j1; j++) yr[j] += xr[j];
        }
    }
}

/* ---- Gram products --------------------------------------------------------------------- */

/* rows [r0, r1) of the upper triangle of c = x xᵀ (x [n, k]) or xᵀ x (x [k, n], trans):
 * with gptc's own product, one call that skips the micro-tiles below the diagonal; with
 * OpenBLAS's, the diagonal block by ssyrk and the block right of it by sgemm */
static void gram_band(const float *x, float *c, int n, int k, int trans, int r0, int r1)
{
    const int m = r1 - r0, ld = trans ? n : k;
    const float *xr = trans ? x + r0 : x + (int64_t)r0 * k;
    if (rt_sgemm_own()) {
        rt_sgemm_upper(trans, !trans, m, n - r0, k, xr, ld, xr, ld, c + (int64_t)r0 * n + r0, n);
        return;
    }
    const float *xs = trans ? x + r1 : x + (int64_t)r1 * k;
    cblas_ssyrk(CblasRowMajor, CblasUpper, trans ? CblasTrans : CblasNoTrans, m, k, 1, xr, ld, 0,
                c + (int64_t)r0 * n + r0, n);
    if (r1 < n)
        cblas_sgemm(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, trans ? CblasNoTrans : CblasTrans, m, n - r1, k, 1,
                    xr, ld, xs, ld, 0, c + (int64_t)r0 * n + r1, n);
}

/* the lower triangle of rows [r0, r1) from the upper */
static void mirror_rows(float *c, int n, int r0, int r1)
{
    for (int i = r0; i < r1; i++)
        for (int j = 0; j < i; j++) c[(int64_t)i * n + j] = c[(int64_t)j * n + i];
}

/* the first row of band p of P over an upper triangle of n rows, bands of equal work (row
 * i has n − i entries: rows [0, r) hold r·n − r²/2 of the n²/2) */
static int band_start(int n, int p, int P)
{
    return p >= P ? n : (int)lround(n * (1 - sqrt(1 - (double)p / P)));
}

void rt_cpu_gram(const float *x, float *c, int64_t batch, int n, int k, int trans)
{
    if (batch > 1) {
#pragma omp parallel for schedule(static)
        for (int64_t b = 0; b < batch; b++) {
            gram_band(x + b * n * k, c + b * n * n, n, k, trans, 0, n);
            mirror_rows(c + b * n * n, n, 0, n);
        }
        return;
    }
    const int P = omp_in_parallel() ? 1 : omp_get_max_threads();   /* in a group: one thread */
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int p = 0; p < P; p++) {
            int r0 = band_start(n, p, P), r1 = band_start(n, p + 1, P);
            if (r1 > r0) gram_band(x, c, n, k, trans, r0, r1);
        }
#pragma omp for schedule(static)   /* after the barrier: every band's upper part is there */
        for (int i = 0; i < n; i++) mirror_rows(c, n, i, i + 1);
    }
}
