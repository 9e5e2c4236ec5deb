/* cpu_kernels.c — library ops of the cpu backend (contract: cpu_kernels.h). */
#include "runtime/cpu_kernels.h"

#include "runtime/ref_kernels.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define GEMM_SMALL 262144.0   /* M*N*K at or below which a product is not split */

void rt_cpu_matmul(const float *a, const float *b, float *c, int64_t batch, int M, int N, int K, int at, int bt)
{
    if (M == 0 || N == 0 || batch == 0) return;
    if (K == 0) {
        memset(c, 0, sizeof(float) * (size_t)(batch * M * N));
        return;
    }
    const int lda = at ? M : K, ldb = bt ? K : N;
    const CBLAS_TRANSPOSE ta = at ? CblasTrans : CblasNoTrans, tb = bt ? CblasTrans : CblasNoTrans;
    if (batch > 1 || (double)M * N * K <= GEMM_SMALL) {
#pragma omp parallel for if (batch > 1)
        for (int64_t i = 0; i < batch; i++)
            cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1, a + i * M * K, lda, b + i * K * N, ldb, 0, c + i * M * N, N);
        return;
    }
    /* one large product: a block of rows of c per thread (OpenBLAS runs single-threaded) */
    const int parts = omp_get_max_threads(), rows = (M + parts - 1) / parts;
#pragma omp parallel for
    for (int p = 0; p < parts; p++) {
        const int m0 = p * rows, m = m0 + rows <= M ? rows : M - m0;
        if (m > 0)
            cblas_sgemm(CblasRowMajor, ta, tb, m, N, K, 1, a + (at ? m0 : (int64_t)m0 * K), lda, b, ldb, 0,
                        c + (int64_t)m0 * N, N);
    }
}

/* eight partial sums, so the loop vectorizes without reassociation flags */
static float dot(const float *x, const float *y, int D)
{
    float p[8] = {0};
    int i = 0;
    for (; i + 8 <= D; i += 8)
        for (int j = 0; j < 8; j++) p[j] += x[i + j] * y[i + j];
    float s = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
    for (; i < D; i++) s += x[i] * y[i];
    return s;
}

/* first allowed key of q: the window's start, past keys of earlier documents */
static int first_key(int q, const int32_t *doc, int block, int window)
{
    int k = rt_ref_window_begin(q, block, window);
    while (k < q && doc[k] != doc[q]) k++;
    return k;
}

/* scores of query q of head h: p[k - k0] = exp(s - max) for k0 <= k <= q; returns the sum */
static double probs(const float *q, const float *k, const int32_t *doc, int T, int H, int D, int block, int window,
                    double scale, int qi, int h, int k0, float *p)
{
    const float *qr = q + ((int64_t)qi * H + h) * D;
    float mx = -INFINITY;
    for (int kk = k0; kk <= qi; kk++) {
        float s = dot(qr, k + ((int64_t)kk * H + h) * D, D) * (float)scale;
        p[kk - k0] = s;
        if (s > mx) mx = s;
    }
    double l = 0;
    for (int kk = k0; kk <= qi; kk++) {
        p[kk - k0] = expf(p[kk - k0] - mx);
        l += p[kk - k0];
    }
    (void)T;
    return l;
}

void rt_cpu_attn_fwd(const float *q, const float *k, const float *v, const int32_t *doc, int T, int H, int D,
                     int block, int window, double scale, float *o)
{
#pragma omp parallel
    {
        float *p = malloc(sizeof(float) * (size_t)(T > 0 ? T : 1));
#pragma omp for collapse(2) schedule(dynamic, 16)
        for (int h = 0; h < H; h++)
            for (int qi = 0; qi < T; qi++) {
                const int k0 = first_key(qi, doc, block, window);
                const float inv = (float)(1.0 / probs(q, k, doc, T, H, D, block, window, scale, qi, h, k0, p));
                float *out = o + ((int64_t)qi * H + h) * D;
                memset(out, 0, sizeof(float) * (size_t)D);
                for (int kk = k0; kk <= qi; kk++) {
                    const float w = p[kk - k0] * inv;
                    const float *vr = v + ((int64_t)kk * H + h) * D;
                    for (int f = 0; f < D; f++) out[f] += w * vr[f];
                }
            }
        free(p);
    }
}

/* Keys of query q are a contiguous range [first_key(q), q] (documents are contiguous and
 * the window is a range), so each head is one pass over its queries. */
void rt_cpu_attn_bwd(const float *dout, const float *q, const float *k, const float *v, const int32_t *doc, int T,
                     int H, int D, int block, int window, double scale, float *dq, float *dk, float *dv)
{
    memset(dk, 0, sizeof(float) * (size_t)T * (size_t)H * (size_t)D);
    memset(dv, 0, sizeof(float) * (size_t)T * (size_t)H * (size_t)D);
#pragma omp parallel for schedule(dynamic, 1)
    for (int h = 0; h < H; h++) {
        float *p = malloc(sizeof(float) * (size_t)(T > 0 ? T : 1)), *dp = malloc(sizeof(float) * (size_t)(T > 0 ? T : 1));
        float *o = malloc(sizeof(float) * (size_t)(D > 0 ? D : 1));
        for (int qi = 0; qi < T; qi++) {
            const int k0 = first_key(qi, doc, block, window), n = qi - k0 + 1;
            const float inv = (float)(1.0 / probs(q, k, doc, T, H, D, block, window, scale, qi, h, k0, p));
            const float *dor = dout + ((int64_t)qi * H + h) * D, *qr = q + ((int64_t)qi * H + h) * D;
            memset(o, 0, sizeof(float) * (size_t)D);
            for (int j = 0; j < n; j++) {
                p[j] *= inv;
                const float *vr = v + ((int64_t)(k0 + j) * H + h) * D;
                dp[j] = dot(dor, vr, D);
                for (int f = 0; f < D; f++) o[f] += p[j] * vr[f];
            }
            const float di = dot(dor, o, D);
            float *dqr = dq + ((int64_t)qi * H + h) * D;
            memset(dqr, 0, sizeof(float) * (size_t)D);
            for (int j = 0; j < n; j++) {
                const float ds = p[j] * (dp[j] - di) * (float)scale;
                const float *kr = k + ((int64_t)(k0 + j) * H + h) * D;
                float *dkr = dk + ((int64_t)(k0 + j) * H + h) * D, *dvr = dv + ((int64_t)(k0 + j) * H + h) * D;
                for (int f = 0; f < D; f++) {
                    dqr[f] += ds * kr[f];
                    dkr[f] += ds * qr[f];
                    dvr[f] += p[j] * dor[f];
                }
            }
        }
        free(p);
        free(dp);
        free(o);
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
