/* sgemm.c — gptc's own float32 product for AVX-512 CPUs, and the choice between it and
 * OpenBLAS's (contract: sgemm.h).
 *
 * Why a kernel of our own: OpenBLAS picks its kernels once, when it loads (blas.c). Where
 * they are AVX2 kernels on an AVX-512 CPU — OPENBLAS_CORETYPE=Haswell set by the user or
 * the machine — every product runs at the AVX2 rate: on a 2-core AMD EPYC with AVX-512,
 * Haswell's sgemm does about 105 GFLOP/s a core where this kernel does 160-200. Where
 * OpenBLAS runs its own AVX-512 kernels (SkylakeX, Cooperlake, SapphireRapids) those are
 * 5-12 % faster than this one, and rt_sgemm keeps them.
 *
 * The kernel is the classic blocked product: for each block of NC columns and KC depth,
 * op(b) is packed into panels of KC × NR (a row of NR floats per k), and for each block of
 * MC rows op(a) into panels of MR × KC (a column of MR floats per k), padded with zeros to
 * whole panels, so the transposes are handled by the packing alone (pack_panels). The
 * micro-kernel keeps a 12 × 32 tile of c in 24 zmm registers and adds one rank-1 update
 * per k: two loads of b, twelve broadcasts of a, 24 fused multiply-adds. An A block (144 ×
 * 384 floats, 221 KB) stays in L2 while a B panel (384 × 32, 48 KB) streams through L1.
 * Edge tiles are computed into a buffer and copied. Sums run in float, k in order within a
 * block of KC. */
#include "runtime/sgemm.h"
#include "runtime/runtime.h"
#include "base/base.h"

#include <cblas.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX512_KERNEL 1
#endif

enum { MR = 12, NR = 32, KC = 384, MC = 144, NC = 3072 };

/* ---- the kernel --------------------------------------------------------------------- */

#if HAVE_AVX512_KERNEL
/* c [MR, NR] (leading dimension ldc) = alpha · Σ_p a[p] b[p] + beta · c, a packed [k][MR],
 * b packed [k][NR]; beta 0: c not read */
__attribute__((target("avx512f"))) static void micro_tile(int k, const float *a, const float *b, float alpha,
                                                           float beta, float *c, int64_t ldc)
{
    __m512 lo[MR], hi[MR];
    for (int i = 0; i < MR; i++) lo[i] = hi[i] = _mm512_setzero_ps();
    for (int p = 0; p < k; p++, a += MR, b += NR) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            const __m512 ai = _mm512_set1_ps(a[i]);
            lo[i] = _mm512_fmadd_ps(ai, b0, lo[i]);
            hi[i] = _mm512_fmadd_ps(ai, b1, hi[i]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int i = 0; i < MR; i++) {
        float *ci = c + i * ldc;
        __m512 x = _mm512_mul_ps(lo[i], va), y = _mm512_mul_ps(hi[i], va);
        if (beta != 0) {
            x = _mm512_fmadd_ps(_mm512_loadu_ps(ci), vb, x);
            y = _mm512_fmadd_ps(_mm512_loadu_ps(ci + 16), vb, y);
        }
        _mm512_storeu_ps(ci, x);
        _mm512_storeu_ps(ci + 16, y);
    }
}

/* One panel of R rows and k steps, dst[p·R + r] = element (r, p), from its layouts. These
 * are inlined where R is MR or NR, a constant: a memcpy of a constant 128 bytes is four
 * moves, of R bytes a library call per step (the large product 10 % slower). */
#define PACK static inline __attribute__((always_inline)) void

/* element (r, p) at src[p·stride + r]: R contiguous floats a step */
PACK pack_contiguous(const float *src, int64_t stride, int R, int k, float *dst)
{
    for (int p = 0; p < k; p++) memcpy(dst + (int64_t)p * R, src + p * stride, sizeof(float) * (size_t)R);
}

/* element (r, p) at src[r·stride + p], R a multiple of 4: rows read 4 steps at a time and
 * turned by 4 × 4 transposes (a float at a time would cost a cycle each) */
PACK pack_transposed(const float *src, int64_t stride, int R, int k, float *dst)
{
    int p = 0;
    for (; p + 4 <= k; p += 4)
        for (int r = 0; r < R; r += 4) {
            const float *s = src + r * stride + p;
            __m128 x0 = _mm_loadu_ps(s), x1 = _mm_loadu_ps(s + stride), x2 = _mm_loadu_ps(s + 2 * stride),
                   x3 = _mm_loadu_ps(s + 3 * stride);
            _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
            float *d = dst + (int64_t)p * R + r;
            _mm_storeu_ps(d, x0);
            _mm_storeu_ps(d + R, x1);
            _mm_storeu_ps(d + 2 * R, x2);
            _mm_storeu_ps(d + 3 * R, x3);
        }
    for (; p < k; p++)
        for (int r = 0; r < R; r++) dst[(int64_t)p * R + r] = src[r * stride + p];
}

/* element (r, p) at src[r·rs + p·cs] for r < n, zero for n <= r < R */
PACK pack_general(const float *src, int64_t rs, int64_t cs, int n, int R, int k, float *dst)
{
    for (int p = 0; p < k; p++) {
        float *d = dst + (int64_t)p * R;
        for (int r = 0; r < n; r++) d[r] = src[r * rs + p * cs];
        for (int r = n; r < R; r++) d[r] = 0;
    }
}

/* panels of R rows of an [n, k] matrix, element (r, p) at x[r·rs + p·cs]: [n/R][k][R],
 * the last one zero-padded. op(a) [m, k] is packed in panels of MR rows; op(b) [k, n] in
 * panels of NR of its columns, as the rows of op(b)ᵀ. */
PACK pack_panels(const float *x, int64_t rs, int64_t cs, int n, int k, int R, float *dst)
{
    for (int r0 = 0; r0 < n; r0 += R, dst += (int64_t)R * k) {
        const float *src = x + r0 * rs;
        if (n - r0 < R) pack_general(src, rs, cs, n - r0, R, k, dst);
        else if (rs == 1) pack_contiguous(src, cs, R, k, dst);
        else if (cs == 1) pack_transposed(src, rs, R, k, dst);
        else pack_general(src, rs, cs, R, R, k, dst);
    }
}

typedef struct {
    const float *a, *b;
    int64_t ars, acs, brs, bcs;   /* op(a)(i, p) = a[i·ars + p·acs]; op(b)(p, j) = b[p·brs + j·bcs] */
    int m, n, k;
    float alpha, beta;
    float *c;
    int64_t ldc;
    bool upper;                   /* only the micro-tiles holding some j >= i */
} Product;

/* the micro-tiles of one MC × NC block of c at depth [p0, p0 + kc): beta applies to the
 * first depth block only, the later ones add to what it left */
static void block(const Product *q, const float *pa, const float *pb, int i0, int mc, int j0, int nc, int kc, int p0)
{
    const float beta = p0 == 0 ? q->beta : 1;
    float edge[MR * NR];
    for (int jr = 0; jr < nc; jr += NR)
        for (int ir = 0; ir < mc; ir += MR) {
            const int mr = mc - ir < MR ? mc - ir : MR, nr = nc - jr < NR ? nc - jr : NR;
            if (q->upper && j0 + jr + nr - 1 < i0 + ir) continue;   /* wholly below the diagonal */
            float *c = q->c + (int64_t)(i0 + ir) * q->ldc + j0 + jr;
            const float *a = pa + (int64_t)ir * kc, *b = pb + (int64_t)jr * kc;
            if (mr == MR && nr == NR) {
                micro_tile(kc, a, b, q->alpha, beta, c, q->ldc);
                continue;
            }
            micro_tile(kc, a, b, 1, 0, edge, NR);
            for (int i = 0; i < mr; i++)
                for (int j = 0; j < nr; j++) {
                    float *cij = c + i * q->ldc + j;
                    *cij = q->alpha * edge[i * NR + j] + (beta != 0 ? beta * *cij : 0);
                }
        }
}

static int round_up(int x, int to) { return (x + to - 1) / to * to; }

static void product(const Product *q)
{
    const size_t depth = q->k < KC ? q->k : KC;   /* the packed blocks, sized to the product */
    float *pa = xmalloc(sizeof(float) * depth * (size_t)round_up(q->m < MC ? q->m : MC, MR)),
          *pb = xmalloc(sizeof(float) * depth * (size_t)round_up(q->n < NC ? q->n : NC, NR));
    for (int j0 = 0; j0 < q->n; j0 += NC) {
        const int nc = q->n - j0 < NC ? q->n - j0 : NC;
        for (int p0 = 0; p0 < q->k; p0 += KC) {
            const int kc = q->k - p0 < KC ? q->k - p0 : KC;
            pack_panels(q->b + p0 * q->brs + j0 * q->bcs, q->bcs, q->brs, nc, kc, NR, pb);
            for (int i0 = 0; i0 < q->m; i0 += MC) {
                const int mc = q->m - i0 < MC ? q->m - i0 : MC;
                if (q->upper && j0 + nc - 1 < i0) continue;
                pack_panels(q->a + i0 * q->ars + p0 * q->acs, q->ars, q->acs, mc, kc, MR, pa);
                block(q, pa, pb, i0, mc, j0, nc, kc, p0);
            }
        }
    }
    free(pa);
    free(pb);
}
#endif

static void openblas_product(bool at, bool bt, int m, int n, int k, float alpha, const float *a, int lda,
                             const float *b, int ldb, float beta, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, at ? CblasTrans : CblasNoTrans, bt ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda,
                b, ldb, beta, c, ldc);
}

/* c = beta c where there is nothing to add (k == 0): what cblas_sgemm does */
static void scale_only(int m, int n, float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) c[(int64_t)i * ldc + j] = beta != 0 ? beta * c[(int64_t)i * ldc + j] : 0;
}

static void own_product(bool at, bool bt, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                        int ldb, float beta, float *c, int ldc, bool upper)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0) {
        scale_only(m, n, beta, c, ldc);
        return;
    }
#if HAVE_AVX512_KERNEL
    Product q = {a, b, at ? 1 : lda, at ? lda : 1, bt ? 1 : ldb, bt ? ldb : 1, m, n, k, alpha, beta, c, ldc, upper};
    product(&q);
#else   /* never chosen without the kernel (rt_sgemm_avx512_here is false): the whole product */
    openblas_product(at, bt, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    (void)upper;
#endif
}

/* ---- the choice --------------------------------------------------------------------- */

bool rt_sgemm_avx512_here(void)
{
#if HAVE_AVX512_KERNEL
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

/* GPTC_SGEMM: unset, empty or auto; openblas; avx512; or something else (an error) */
typedef enum { SGEMM_AUTO, SGEMM_OPENBLAS, SGEMM_AVX512, SGEMM_BAD } SgemmSetting;

static SgemmSetting sgemm_setting(void)
{
    const char *env = getenv("GPTC_SGEMM");
    if (!env || !*env || !strcmp(env, "auto")) return SGEMM_AUTO;
    if (!strcmp(env, "openblas")) return SGEMM_OPENBLAS;
    return !strcmp(env, "avx512") ? SGEMM_AVX512 : SGEMM_BAD;
}

static bool own_chosen;
static pthread_once_t choice_once = PTHREAD_ONCE_INIT;

/* a bad setting is refused by rt_sgemm_check_env in main; here it counts as auto */
static void choose(void)
{
    switch (sgemm_setting()) {
    case SGEMM_OPENBLAS: own_chosen = false; break;
    case SGEMM_AVX512: own_chosen = rt_sgemm_avx512_here(); break;
    default: own_chosen = rt_sgemm_avx512_here() && !rt_blas_core_avx512();
    }
}

bool rt_sgemm_own(void)
{
    pthread_once(&choice_once, choose);
    return own_chosen;
}

int rt_sgemm_check_env(char *err, size_t errlen)
{
    SgemmSetting s = sgemm_setting();
    if (s == SGEMM_BAD) {
        snprintf(err, errlen, "GPTC_SGEMM is '%s': it must be auto, openblas or avx512", getenv("GPTC_SGEMM"));
        return -1;
    }
    if (s == SGEMM_AVX512 && !rt_sgemm_avx512_here()) {
        snprintf(err, errlen, "GPTC_SGEMM=avx512, but this CPU has no AVX-512F: unset it, or set openblas");
        return -1;
    }
    return 0;
}

const char *rt_sgemm_describe(void)
{
    return rt_sgemm_own() ? "gptc's AVX-512 kernel" : "OpenBLAS";
}

void rt_sgemm(bool at, bool bt, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
              float beta, float *c, int ldc)
{
    if (rt_sgemm_own()) own_product(at, bt, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, false);
    else openblas_product(at, bt, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void rt_sgemm_avx512(bool at, bool bt, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                     int ldb, float beta, float *c, int ldc)
{
    own_product(at, bt, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, false);
}

void rt_sgemm_upper(bool at, bool bt, int m, int n, int k, const float *a, int lda, const float *b, int ldb, float *c,
                    int ldc)
{
    own_product(at, bt, m, n, k, 1, a, lda, b, ldb, 0, c, ldc, true);
}
