/* cpu_kernels.c — library ops of the cpu backend (contract: cpu_kernels.h). */
#include "runtime/cpu_kernels.h"
#include "base/base.h"

#include "runtime/ref_kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* Attention by query tiles: for the QT queries [q0, q1) of head h the keys that any of
 * them may see form one range [k0, q1) (the window start and the document of q0 are the
 * earliest; documents are contiguous), so the scores are one matrix product
 * S = scale · Q K^T (QT × nk) with OpenBLAS, masked element by element (rt_ref_allowed),
 * a row softmax, and the outputs again matrix products. Rows of one head are strided by
 * H·D floats, which sgemm takes as the leading dimension. */
enum { QT = 64 };

typedef struct {
    int T, H, D, block, window;
    float scale;
    const int32_t *doc;
} Attn;

/* the first key any query of [q0, …) may see */
static int tile_first_key(const Attn *a, int q0)
{
    int k = rt_ref_window_begin(q0, a->block, a->window);
    while (k < q0 && a->doc[k] != a->doc[q0]) k++;
    return k;
}

/* P (nq × nk, row stride nk) = softmax over allowed keys of scale · Q K^T */
static void tile_probs(const Attn *a, const float *q, const float *k, int h, int q0, int nq, int k0, int nk, float *P)
{
    const int ld = a->H * a->D;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, a->D, a->scale, q + (int64_t)q0 * ld + h * a->D, ld,
                k + (int64_t)k0 * ld + h * a->D, ld, 0, P, nk);
    for (int i = 0; i < nq; i++) {
        float *row = P + (int64_t)i * nk, mx = -INFINITY;
        for (int j = 0; j < nk; j++) {
            if (!rt_ref_allowed(q0 + i, k0 + j, a->doc, a->block, a->window)) row[j] = -INFINITY;
            if (row[j] > mx) mx = row[j];
        }
        double l = 0;
        for (int j = 0; j < nk; j++) {
            row[j] = row[j] == -INFINITY ? 0.0f : expf(row[j] - mx);
            l += row[j];
        }
        const float inv = (float)(1.0 / l);
        for (int j = 0; j < nk; j++) row[j] *= inv;
    }
}

static void *scratch(size_t floats)
{
    float *p = xmalloc(sizeof(float) * (floats ? floats : 1));
    return p;
}

void rt_cpu_attn_fwd(const float *q, const float *k, const float *v, const int32_t *doc, int T, int H, int D,
                     int block, int window, double scale, float *o)
{
    const Attn a = {T, H, D, block, window, (float)scale, doc};
    const int ntiles = (T + QT - 1) / QT, ld = H * D;
#pragma omp parallel
    {
        float *P = scratch((size_t)QT * (size_t)T);
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < ntiles; t++) {
                const int q0 = t * QT, nq = q0 + QT <= T ? QT : T - q0, k0 = tile_first_key(&a, q0), nk = q0 + nq - k0;
                tile_probs(&a, q, k, h, q0, nq, k0, nk, P);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, nk, 1, P, nk,
                            v + (int64_t)k0 * ld + h * D, ld, 0, o + (int64_t)q0 * ld + h * D, ld);
            }
        free(P);
    }
}

/* One head at a time per thread (dk and dv of a key gather from every tile that sees it):
 * O = P V, Di = rowsum(dO ∘ O), dP = dO V^T, dS = scale · P ∘ (dP − Di), dQ = dS K,
 * dK += dS^T Q, dV += P^T dO. */
void rt_cpu_attn_bwd(const float *dout, const float *q, const float *k, const float *v, const int32_t *doc, int T,
                     int H, int D, int block, int window, double scale, float *dq, float *dk, float *dv)
{
    const Attn a = {T, H, D, block, window, (float)scale, doc};
    const int ntiles = (T + QT - 1) / QT, ld = H * D;
    for (int64_t t = 0; t < (int64_t)T; t++)
        for (int h = 0; h < H; h++) {
            memset(dk + t * ld + h * D, 0, sizeof(float) * (size_t)D);
            memset(dv + t * ld + h * D, 0, sizeof(float) * (size_t)D);
        }
#pragma omp parallel
    {
        float *P = scratch((size_t)QT * (size_t)T), *dP = scratch((size_t)QT * (size_t)T);
        float *O = scratch((size_t)QT * (size_t)D);
#pragma omp for schedule(dynamic, 1)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < ntiles; t++) {
                const int q0 = t * QT, nq = q0 + QT <= T ? QT : T - q0, k0 = tile_first_key(&a, q0), nk = q0 + nq - k0;
                const float *dO = dout + (int64_t)q0 * ld + h * D, *Q = q + (int64_t)q0 * ld + h * D;
                const float *K = k + (int64_t)k0 * ld + h * D, *V = v + (int64_t)k0 * ld + h * D;
                tile_probs(&a, q, k, h, q0, nq, k0, nk, P);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, nk, 1, P, nk, V, ld, 0, O, D);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, 1, dO, ld, V, ld, 0, dP, nk);
                for (int i = 0; i < nq; i++) {
                    float di = 0;
                    for (int f = 0; f < D; f++) di += dO[(int64_t)i * ld + f] * O[(int64_t)i * D + f];
                    float *dpr = dP + (int64_t)i * nk;
                    const float *pr = P + (int64_t)i * nk;
                    for (int j = 0; j < nk; j++) dpr[j] = pr[j] * (dpr[j] - di) * a.scale;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, nk, 1, dP, nk, K, ld, 0,
                            dq + (int64_t)q0 * ld + h * D, ld);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nq, 1, dP, nk, Q, ld, 1,
                            dk + (int64_t)k0 * ld + h * D, ld);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nq, 1, P, nk, dO, ld, 1,
                            dv + (int64_t)k0 * ld + h * D, ld);
            }
        free(P);
        free(dP);
        free(O);
    }
}

void rt_cpu_scatter_add(const float *x, const int32_t *idx, int64_t n, int64_t V, int64_t row, float *y)
{
    memset(y, 0, sizeof(float) * (size_t)(V * row));
    const int64_t CH = 64, nch = (row + CH - 1) / CH;
#pragma omp parallel for if (n * row > 32768)
    for (int64_t c = 0; c < nch; c++) {
        const int64_t j0 = c * CH, j1 = j0 + CH < row ? j0 + CH : row;
        for (int64_t i = 0; i < n; i++) {
            float *yr = y + (int64_t)idx[i] * row;
            const float *xr = x + i * row;
            for (int64_t j = j0; j < j1; j++) yr[j] += xr[j];
        }
    }
}
