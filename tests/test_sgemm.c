/* test_sgemm.c — gptc's own AVX-512 float32 product (runtime/sgemm.c) against a product
 * summed in double: every transpose, edge tiles, several depth and column blocks, alpha and
 * beta, padded leading dimensions; the upper-triangle form used for Gram products; and the
 * product rt_sgemm dispatches to. Skipped where the CPU has no AVX-512F. */
#include "tests/test.h"
#include "runtime/sgemm.h"

#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>

/* deterministic values in [-1, 1) */
static void fill(float *x, size_t n, unsigned seed)
{
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) / 8388608.0 - 1.0);
    }
}

typedef struct {
    int m, n, k, at, bt, lda, ldb, ldc;
    float *a, *b, *c;
} Case;

static Case make_case(int m, int n, int k, int at, int bt, unsigned seed)
{
    Case q = {m, n, k, at, bt, (at ? m : k) + 3, (bt ? k : n) + 5, n + 2, NULL, NULL, NULL};
    size_t na = (size_t)(at ? k : m) * q.lda, nb = (size_t)(bt ? n : k) * q.ldb, nc = (size_t)m * q.ldc;
    q.a = malloc(sizeof(float) * (na ? na : 1));
    q.b = malloc(sizeof(float) * (nb ? nb : 1));
    q.c = malloc(sizeof(float) * (nc ? nc : 1));
    fill(q.a, na, seed);
    fill(q.b, nb, seed + 7);
    fill(q.c, nc, seed + 13);
    return q;
}

static void free_case(Case *q)
{
    free(q->a);
    free(q->b);
    free(q->c);
}

static double elem_a(const Case *q, int i, int p) { return q->at ? q->a[(size_t)p * q->lda + i] : q->a[(size_t)i * q->lda + p]; }
static double elem_b(const Case *q, int p, int j) { return q->bt ? q->b[(size_t)j * q->ldb + p] : q->b[(size_t)p * q->ldb + j]; }

/* checks c against alpha op(a) op(b) + beta c0 (c0: c before the product), in double; the
 * padding columns of c must be untouched. Entries with !want(i, j) are not checked. */
static int check_product(const Case *q, const float *c0, float alpha, float beta, int upper)
{
    int bad = 0;
    for (int i = 0; i < q->m; i++) {
        for (int j = 0; j < q->n; j++) {
            if (upper && j < i) continue;
            double s = 0, mag = 0;
            for (int p = 0; p < q->k; p++) {
                double t = elem_a(q, i, p) * elem_b(q, p, j);
                s += t;
                mag += fabs(t);
            }
            size_t at = (size_t)i * q->ldc + j;
            double want = alpha * s + (beta != 0 ? beta * c0[at] : 0), tol = 2e-6 * (fabs(alpha) * mag + 1) + 1e-6;
            if (!(fabs(q->c[at] - want) <= tol) && bad++ < 3)
                fprintf(stderr, "  [%d x %d x %d at=%d bt=%d] c[%d][%d] = %.9g, want %.9g\n", q->m, q->n, q->k,
                        q->at, q->bt, i, j, q->c[at], want);
        }
        for (int j = q->n; j < q->ldc; j++)
            if (memcmp(&q->c[(size_t)i * q->ldc + j], &c0[(size_t)i * q->ldc + j], sizeof(float)) && bad++ < 3)
                fprintf(stderr, "  padding c[%d][%d] written\n", i, j);
    }
    return bad;
}

static float *copy_of(const float *x, size_t n)
{
    float *y = malloc(sizeof(float) * (n ? n : 1));
    memcpy(y, x, sizeof(float) * n);
    return y;
}

static bool have_avx512(void)
{
    if (rt_sgemm_avx512_here()) return true;
    printf("skip: this CPU has no AVX-512F\n");
    return false;
}

/* every transpose over shapes with edge tiles (12 × 32 micro-tiles), several depth blocks
 * (384) and row blocks (144), alpha and beta */
TEST(avx512_against_double)
{
    if (!have_avx512()) return;
    static const int ms[] = {1, 12, 13, 150, 301}, ns[] = {1, 31, 32, 33, 97}, ks[] = {1, 7, 384, 800};
    static const float ab[][2] = {{1, 0}, {0.5f, 1}, {-2, -0.25f}};
    unsigned seed = 1;
    for (size_t x = 0; x < sizeof ms / sizeof *ms; x++)
        for (size_t y = 0; y < sizeof ns / sizeof *ns; y++)
            for (size_t z = 0; z < sizeof ks / sizeof *ks; z++)
                for (int t = 0; t < 4; t++) {
                    Case q = make_case(ms[x], ns[y], ks[z], t & 1, t >> 1, seed++);
                    const float *w = ab[seed % 3];
                    float *c0 = copy_of(q.c, (size_t)q.m * q.ldc);
                    rt_sgemm_avx512(q.at, q.bt, q.m, q.n, q.k, w[0], q.a, q.lda, q.b, q.ldb, w[1], q.c, q.ldc);
                    CHECK(check_product(&q, c0, w[0], w[1], 0) == 0);
                    free(c0);
                    free_case(&q);
                }
}

/* more columns than one column block (3072) */
TEST(avx512_wide)
{
    if (!have_avx512()) return;
    Case q = make_case(13, 3200, 40, 0, 1, 99);
    float *c0 = copy_of(q.c, (size_t)q.m * q.ldc);
    rt_sgemm_avx512(false, true, q.m, q.n, q.k, 1, q.a, q.lda, q.b, q.ldb, 0, q.c, q.ldc);
    CHECK(check_product(&q, c0, 1, 0, 0) == 0);
    free(c0);
    free_case(&q);
}

/* beta 0 does not read c (NaN there stays out), alpha 0 or depth 0 scale c by beta */
TEST(avx512_beta_alpha_depth)
{
    if (!have_avx512()) return;
    Case q = make_case(20, 40, 30, 0, 0, 5);
    for (int i = 0; i < q.m * q.ldc; i++) q.c[i] = NAN;
    rt_sgemm_avx512(false, false, q.m, q.n, q.k, 1, q.a, q.lda, q.b, q.ldb, 0, q.c, q.ldc);
    int finite = 1;
    for (int i = 0; i < q.m; i++)
        for (int j = 0; j < q.n; j++) finite &= isfinite(q.c[i * q.ldc + j]);
    CHECK(finite);
    fill(q.c, (size_t)q.m * q.ldc, 3);
    float *c0 = copy_of(q.c, (size_t)q.m * q.ldc);
    rt_sgemm_avx512(false, false, q.m, q.n, 0, 1, q.a, q.lda, q.b, q.ldb, 0.5f, q.c, q.ldc);
    CHECK_NEAR(q.c[5 * q.ldc + 7], 0.5 * c0[5 * q.ldc + 7], 1e-7);
    rt_sgemm_avx512(false, false, q.m, q.n, q.k, 0, q.a, q.lda, q.b, q.ldb, 0, q.c, q.ldc);
    CHECK(q.c[5 * q.ldc + 7] == 0);
    free(c0);
    free_case(&q);
}

/* x xᵀ and xᵀ x by the upper form: every entry on or above the diagonal right, the
 * micro-tiles wholly below it untouched */
TEST(avx512_upper)
{
    if (!have_avx512()) return;
    static const int ns[] = {5, 37, 64, 300};
    for (size_t s = 0; s < sizeof ns / sizeof *ns; s++)
        for (int trans = 0; trans < 2; trans++) {
            const int n = ns[s], k = 50;
            Case q = make_case(n, n, k, trans, !trans, 40 + (unsigned)s);
            q.ldb = q.lda;
            free(q.b);
            q.b = copy_of(q.a, (size_t)(trans ? k : n) * q.lda);   /* op(b) = op(a)ᵀ */
            for (int i = 0; i < q.m * q.ldc; i++) q.c[i] = NAN;
            float *c0 = copy_of(q.c, (size_t)q.m * q.ldc);
            rt_sgemm_upper(q.at, q.bt, n, n, k, q.a, q.lda, q.b, q.ldb, q.c, q.ldc);
            CHECK(check_product(&q, c0, 1, 0, 1) == 0);
            if (n >= 64) CHECK(isnan(q.c[40 * q.ldc + 0]));   /* rows 36..47 × columns 0..31: below */
            free(c0);
            free_case(&q);
        }
}

/* rt_sgemm, whichever kernel it runs, against OpenBLAS */
TEST(dispatch_matches_openblas)
{
    Case q = make_case(70, 90, 130, 1, 0, 77);
    float *r = copy_of(q.c, (size_t)q.m * q.ldc);
    rt_sgemm(true, false, q.m, q.n, q.k, 0.75f, q.a, q.lda, q.b, q.ldb, 1, q.c, q.ldc);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, q.m, q.n, q.k, 0.75f, q.a, q.lda, q.b, q.ldb, 1, r, q.ldc);
    double worst = 0;
    for (int i = 0; i < q.m * q.ldc; i++) worst = fmax(worst, fabs(q.c[i] - r[i]));
    CHECK(worst < 1e-4);
    printf("  rt_sgemm runs %s\n", rt_sgemm_own() ? "gptc's AVX-512 kernel" : "OpenBLAS");
    free(r);
    free_case(&q);
}

int main(void)
{
    RUN(avx512_against_double);
    RUN(avx512_wide);
    RUN(avx512_beta_alpha_depth);
    RUN(avx512_upper);
    RUN(dispatch_matches_openblas);
    return test_summary();
}
