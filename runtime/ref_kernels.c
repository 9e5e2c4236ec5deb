/* ref_kernels.c — reference ("ref") backend kernels: mask, attention, soft-capped CE.
 * See ref_kernels.h for the contracts. The precision-generic bodies live in
 * ref_kernels_impl.h, instantiated below for double and for float. */
#include "runtime/ref_kernels.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- documents and the mask ------------------------------------------------------- */

void rt_ref_doc_ids(const int32_t *tokens, int T, int32_t eot, int32_t *doc)
{
    assert(T >= 0);
    int32_t n = 0;
    for (int t = 0; t < T; t++) {
        if (tokens[t] == eot) n++;
        doc[t] = n;
    }
}

static int window_blocks(int window) { return window < 1 ? 1 : window; }

int rt_ref_allowed(int q, int k, const int32_t *doc, int block, int window)
{
    assert(block >= 1 && q >= 0 && k >= 0);
    return k <= q && doc[k] == doc[q] && q / block - k / block < window_blocks(window);
}

int rt_ref_window_begin(int q, int block, int window)
{
    assert(block >= 1 && q >= 0);
    long long b = (long long)(q / block) - window_blocks(window) + 1;   /* first key block */
    return b <= 0 ? 0 : (int)(b * block);
}

/* One past the last query that key k can be visible to, by the window alone:
 * q/B - k/B < W  <=>  q < (k/B + W) * B. */
static int window_query_end(int k, int T, int block, int window)
{
    long long e = ((long long)(k / block) + window_blocks(window)) * block;
    return e >= T ? T : (int)e;
}

void rt_ref_mask_dense(const int32_t *doc, int T, int block, int window, uint8_t *mask)
{
    assert(T >= 0 && block >= 1);
    for (int q = 0; q < T; q++)
        for (int k = 0; k < T; k++)
            mask[(size_t)q * T + k] = (uint8_t)rt_ref_allowed(q, k, doc, block, window);
}

void rt_ref_block_lists(const int32_t *doc, int T, int block,
                        int *nP, int *P, int *nF, int *F)
{
    assert(T >= 0 && block >= 1 && T % block == 0);
    int N = T / block;
    for (int i = 0; i < N; i++) {
        int32_t lo_i = doc[i * block], hi_i = doc[i * block + block - 1];
        int np = 0, nf = 0;
        for (int j = N - 1; j >= 0; j--) {            /* descending key-block index */
            int32_t lo_j = doc[j * block], hi_j = doc[j * block + block - 1];
            int touch = j <= i && lo_i <= hi_j && hi_i >= lo_j;
            int whole = j < i && lo_i == hi_j && hi_i == lo_j;
            if (whole) F[i * N + nf++] = j;           /* full */
            else if (touch) P[i * N + np++] = j;      /* partial */
        }
        for (int x = np; x < N; x++) P[i * N + x] = -1;
        for (int x = nf; x < N; x++) F[i * N + x] = -1;
        nP[i] = np;
        nF[i] = nf;
    }
}

void rt_ref_mask_blocks(const int32_t *doc, int T, int block, int window, uint8_t *mask)
{
    assert(T >= 0 && block >= 1 && T % block == 0);
    int N = T / block;
    memset(mask, 0, (size_t)T * T);
    if (N == 0) return;
    int *nP = malloc(sizeof(int) * (size_t)N), *nF = malloc(sizeof(int) * (size_t)N);
    int *P = malloc(sizeof(int) * (size_t)N * N), *F = malloc(sizeof(int) * (size_t)N * N);
    uint8_t *kind = calloc((size_t)N * N, 1);        /* 0 skipped, 1 partial, 2 full */
    if (!nP || !nF || !P || !F || !kind) { fprintf(stderr, "rt_ref_mask_blocks: out of memory\n"); abort(); }
    rt_ref_block_lists(doc, T, block, nP, P, nF, F);
    for (int i = 0; i < N; i++) {
        /* S-5.3 clamps, literally (w may be 0 or negative) */
        long long kp = (long long)window - nF[i];      /* min(nP, max(w - nF, 1)) */
        if (kp < 1) kp = 1;
        if (kp > nP[i]) kp = nP[i];
        long long kf = (long long)window - 1;          /* min(nF, w - 1) */
        if (kf > nF[i]) kf = nF[i];
        if (kf < 0) kf = 0;                           /* a negative count selects nothing */
        for (int x = 0; x < kp; x++) kind[i * N + P[i * N + x]] = 1;
        for (int x = 0; x < kf; x++) kind[i * N + F[i * N + x]] = 2;
    }
    for (int q = 0; q < T; q++)
        for (int k = 0; k < T; k++) {
            int c = kind[(q / block) * N + k / block];
            int dc = k <= q && doc[k] == doc[q];
            mask[(size_t)q * T + k] = (uint8_t)(c == 2 || (c == 1 && dc));
        }
    free(nP); free(nF); free(P); free(F); free(kind);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "ref_kernels: out of memory (%zu bytes)\n", n); abort(); }
    return p;
}

/* cap(z) = c z / sqrt(z^2 + c^2)  and  d cap / dz = c^3 / (z^2 + c^2)^(3/2)  (S-3) */
static double ref_softcap(double z, double c) { return c * z / sqrt(z * z + c * c); }
static double ref_softcap_grad(double z, double c)
{
    const double u = c / sqrt(z * z + c * c);
    return u * u * u;
}

/* ---- precision-generic kernels -------------------------------------------------------- */

#define REAL double
#define SFX(name) name##_f64
#include "runtime/ref_kernels_impl.h"
#undef REAL
#undef SFX

#define REAL float
#define SFX(name) name##_f32
#include "runtime/ref_kernels_impl.h"
#undef REAL
#undef SFX
